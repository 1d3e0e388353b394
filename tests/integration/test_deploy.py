"""deploy / status / teardown against moto's SageMaker control plane on 127.0.0.1, and offline dry runs."""

from __future__ import annotations

import json
import os
import socket
import sys
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner

pytest.importorskip("moto.server")
from moto.server import ThreadedMotoServer

from sagerag.cli import app
from sagerag.cli.deploy import register
from sagerag.deploy import aws, images
from sagerag.deploy.plan import DeployOptions, build_plan
from sagerag.errors import ConfigurationError, InputError

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/sagerag-test"
TOKEN = "hf_TESTtoken0123456789secret"
# moto accepts these; ml.g5.* (the real defaults) it rejects, which the failure tests rely on.
MOTO_OK = ["--llm-instance-type", "ml.g4dn.xlarge", "--embeddings-instance-type", "ml.m5.xlarge"]
LOOPBACK = {"127.0.0.1", "::1", "localhost"}

register(app)
runner = CliRunner()


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Refuse, record and fail on any attempt to reach beyond loopback (DNS included): SDK telemetry,
    STS, S3 and AWS itself. A test that expects an attempt checks the record and clears it."""
    blocked: list[str] = []
    real_connect = socket.socket.connect
    real_create = socket.create_connection
    real_getaddrinfo = socket.getaddrinfo

    def check(host: Any) -> None:
        if host is not None and str(host) not in LOOPBACK:
            blocked.append(str(host))
            raise OSError(f"test tried to reach {host!r}: only loopback is allowed")

    def connect(self: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple):
            check(address[0])
        return real_connect(self, address)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        check(address[0])
        return real_create(address, *args, **kwargs)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        check(host.decode() if isinstance(host, bytes) else host)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield blocked
    assert not blocked, f"tried to reach non-loopback hosts: {sorted(set(blocked))}"


@pytest.fixture(autouse=True)
def no_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No credentials, profiles or config from the machine; a throwaway sagerag config file."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "SAGERAG_", "HF_", "HUGGING_FACE")):
            monkeypatch.delenv(name)
    (tmp_path / "aws_config").write_text("")
    (tmp_path / "aws_credentials").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws_config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws_credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    (tmp_path / "sagerag.toml").touch()
    monkeypatch.setenv("SAGERAG_CONFIG", str(tmp_path / "sagerag.toml"))
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    return tmp_path / "sagerag.toml"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def sm(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh moto account, fake credentials, and boto3 pointed at it through the standard env var."""
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")).read()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", moto_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_APPLICATION_AUTO_SCALING", moto_url)
    return boto3.client("sagemaker", region_name=REGION)


def cli(*args: str, input: str | None = None) -> Any:
    return runner.invoke(app, list(args), input=input, catch_exceptions=False)


def user_resources(sm: Any) -> None:
    """Resources someone else made by hand: teardown must leave them alone."""
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mine:1"
    sm.create_model(ModelName="user-model", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": image})
    sm.create_endpoint_config(
        EndpointConfigName="user-config",
        ProductionVariants=[
            {
                "VariantName": "v",
                "ModelName": "user-model",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
        Tags=[{"Key": "team", "Value": "search"}],
    )
    sm.create_endpoint(EndpointName="user-endpoint", EndpointConfigName="user-config")


def names(sm: Any) -> dict[str, set[str]]:
    return {
        "endpoint": {e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]},
        "endpoint-config": {c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]},
        "model": {m["ModelName"] for m in sm.list_models()["Models"]},
    }


USER = {"endpoint": {"user-endpoint"}, "endpoint-config": {"user-config"}, "model": {"user-model"}}


# --- dry run: offline, no credentials --------------------------------------------------------------


def test_dry_run_needs_no_credentials_and_resolves_real_image_uris() -> None:
    result = cli("deploy", "--dry-run", "--json", "--region", "eu-west-1")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["dry_run"] is True and plan["region"] == "eu-west-1"
    llm, emb = plan["endpoints"]
    for spec in (llm, emb):
        assert "dkr.ecr.eu-west-1.amazonaws.com/huggingface" in spec["image"]
    assert "tgi" in llm["image"] and llm["instance_type"] == "ml.g5.4xlarge"
    assert llm["environment"]["HF_MODEL_ID"] == "meta-llama/Llama-2-7b-chat-hf"
    assert llm["environment"]["HUGGING_FACE_HUB_TOKEN"] == "***"
    assert emb["environment"] == {
        "HF_MODEL_ID": "sentence-transformers/all-MiniLM-L6-v2",
        "HF_TASK": "feature-extraction",
        "SAGEMAKER_MODEL_SERVER_WORKERS": "4",  # ml.m5.xlarge's vCPUs
    }
    assert "cpu" in emb["image"] and emb["instance_type"] == "ml.m5.xlarge"
    assert plan["estimated_hourly_usd_total"] == pytest.approx(2.26)
    assert "estimate" in plan["price_note"]
    assert any("IAM role" in w for w in plan["warnings"])
    assert TOKEN not in result.output


@pytest.mark.parametrize(
    ("region", "instance_type", "image"),
    [
        ("eu-west-1", "ml.m5.xlarge", "dkr.ecr.eu-west-1.amazonaws.com/tei-cpu:"),
        ("us-east-1", "ml.g5.xlarge", "dkr.ecr.us-east-1.amazonaws.com/tei:"),
    ],
)
def test_dry_run_tei_shows_the_tei_image_for_the_region(region: str, instance_type: str, image: str) -> None:
    common = [
        "--region",
        region,
        "--embeddings-container",
        "tei",
        "--embeddings-instance-type",
        instance_type,
    ]
    result = cli("deploy", "--dry-run", "--json", *common)
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    emb = plan["endpoints"][1]
    assert image in emb["image"] and plan["embeddings_kind"] == "tei"
    assert emb["environment"] == {
        "HF_MODEL_ID": "sentence-transformers/all-MiniLM-L6-v2",
        "MAX_CLIENT_BATCH_SIZE": "32",
    }
    table = cli("deploy", "--dry-run", *common)
    assert table.exit_code == 0 and emb["image"] in table.stdout and "embeddings_kind tei" in table.stdout


@pytest.mark.parametrize(
    ("extra", "workers"),
    [
        (["--embeddings-instance-type", "ml.g5.xlarge"], "4"),  # one GPU: the container alone starts 1
        (["--embeddings-instance-type", "ml.g5.2xlarge"], "8"),
        (["--embeddings-instance-type", "ml.g5.xlarge", "--embeddings-workers", "2"], "2"),
    ],
)
def test_dry_run_toolkit_workers_default_to_the_instance_s_vcpus(extra: list[str], workers: str) -> None:
    result = cli("deploy", "--dry-run", "--json", *extra)
    assert result.exit_code == 0, result.output
    emb = json.loads(result.stdout)["endpoints"][1]
    assert emb["environment"]["SAGEMAKER_MODEL_SERVER_WORKERS"] == workers


def test_embeddings_workers_with_tei_or_below_one_is_a_one_line_input_error() -> None:
    tei = cli("deploy", "--dry-run", "--embeddings-container", "tei", "--embeddings-workers", "4")
    assert tei.exit_code == 2 and "--embeddings-workers applies to the huggingface container" in tei.output
    zero = cli("deploy", "--dry-run", "--embeddings-workers", "0")
    assert zero.exit_code == 2 and "--embeddings-workers 0: give 1 or more" in zero.output


def test_unknown_embeddings_container_is_a_one_line_input_error() -> None:
    result = cli("deploy", "--dry-run", "--embeddings-container", "onnx")
    assert result.exit_code == 2
    assert "embeddings container 'onnx' is not one of huggingface, tei" in result.output


def test_dry_run_table_masks_token_and_shows_cost() -> None:
    result = cli("deploy", "--dry-run", "--role", ROLE)
    assert result.exit_code == 0, result.output
    assert "dkr.ecr.us-east-1.amazonaws.com" in result.stdout
    assert "HUGGING_FACE_HUB_TOKEN=***" in result.stdout.replace("\n", "")
    assert "$2.26/hour" in result.stdout and "estimate" in result.stdout
    assert TOKEN not in result.output


def test_dry_run_jumpstart_says_it_cannot_resolve_offline() -> None:
    result = cli("deploy", "--dry-run", "--json", "--jumpstart-model-id", "meta-textgeneration-llama-2-7b-f")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    llm = plan["endpoints"][0]
    assert plan["llm_kind"] == "jumpstart-chat"
    assert llm["image"] is None and "network" in llm["image_note"]


def test_plan_never_shows_the_token() -> None:
    from pydantic import SecretStr

    plan = build_plan(DeployOptions(role_arn=ROLE, hf_token=SecretStr(TOKEN), name_suffix="s1"))
    llm = plan.endpoint("llm")
    assert TOKEN not in repr(plan) and TOKEN not in json.dumps(plan.to_dict())
    assert llm.model.container_environment()["HUGGING_FACE_HUB_TOKEN"] == TOKEN
    assert llm.model.name == "sagerag-llm-s1" and llm.config_name == "sagerag-llm-s1"
    assert not plan.warnings


@pytest.mark.parametrize(
    "options",
    [
        DeployOptions(llm_endpoint="bad_name!"),
        DeployOptions(llm_endpoint="same", embeddings_endpoint="same"),
        DeployOptions(role_arn="not-an-arn"),
        DeployOptions(llm_instance_type="g5.4xlarge"),
    ],
)
def test_plan_rejects_bad_options(options: DeployOptions) -> None:
    with pytest.raises(InputError):
        build_plan(options)


def test_missing_sdk_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sagemaker.core.image_uris", None)
    with pytest.raises(ConfigurationError, match=r"sagerag\[deploy\]"):
        images.resolve_tgi_image(REGION, "ml.g5.4xlarge")


# --- deploy, status, teardown against moto ---------------------------------------------------------


def test_deploy_status_teardown_touches_only_sagerag_resources(sm: Any, no_aws_env: Path) -> None:
    user_resources(sm)
    result = cli("deploy", "--role", ROLE, "--poll-interval", "0", "--json", *MOTO_OK)
    assert result.exit_code == 0, result.output
    assert TOKEN not in result.output
    out = json.loads(result.stdout)
    assert out["endpoint_status"] == {"sagerag-llm": "InService", "sagerag-minilm": "InService"}
    assert len(out["created"]) == 6

    ours = {kind: got - USER[kind] for kind, got in names(sm).items()}
    assert ours["endpoint"] == {"sagerag-llm", "sagerag-minilm"}
    assert len(ours["endpoint-config"]) == 2 and len(ours["model"]) == 2
    for found in aws.find_managed(sm):
        tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=found.arn)["Tags"]}
        assert tags["sagerag:managed"] == "true" and tags["sagerag:deployment"] == "default"
        assert tags["sagerag:role"] in {"llm", "embeddings"}
    model = sm.describe_model(ModelName=next(n for n in ours["model"] if n.startswith("sagerag-llm")))
    env = model["PrimaryContainer"]["Environment"]
    assert (
        env["HUGGING_FACE_HUB_TOKEN"] == TOKEN
        and "huggingface-pytorch-tgi" in model["PrimaryContainer"]["Image"]
    )

    config = tomllib.loads(no_aws_env.read_text())["sagemaker"]
    assert config == {
        "region": REGION,
        "llm_endpoint": "sagerag-llm",
        "llm_kind": "tgi",
        "embeddings_endpoint": "sagerag-minilm",
        "embeddings_kind": "feature-extraction",
    }

    status = cli("status", "--json")
    assert status.exit_code == 0, status.output
    listed = json.loads(status.stdout)["resources"]
    assert len(listed) == 6 and {r["name"] for r in listed} >= {"sagerag-llm", "sagerag-minilm"}
    assert {r["status"] for r in listed if r["kind"] == "endpoint"} == {"InService"}
    table = cli("status")
    assert "sagerag-minilm" in table.stdout and "user-endpoint" not in table.stdout

    refused = cli("teardown", input="n\n")
    assert refused.exit_code == 1 and "nothing was deleted" in refused.output
    assert len(aws.find_managed(sm)) == 6

    gone = cli("teardown", "--yes", "--json")
    assert gone.exit_code == 0, gone.output
    assert len(json.loads(gone.stdout)["deleted"]) == 6
    assert names(sm) == USER
    assert json.loads(cli("status", "--json").stdout) == {"resources": [], "autoscaling": []}


def test_deploy_tei_then_teardown(sm: Any, no_aws_env: Path) -> None:
    result = cli(
        "deploy", "--role", ROLE, "--poll-interval", "0", "--json", "--embeddings-container", "tei", *MOTO_OK
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["plan"]["embeddings_kind"] == "tei"
    model_name = next(n for n in names(sm)["model"] if n.startswith("sagerag-minilm"))
    container = sm.describe_model(ModelName=model_name)["PrimaryContainer"]
    assert "/tei-cpu:" in container["Image"]
    assert container["Environment"]["HF_MODEL_ID"] == "sentence-transformers/all-MiniLM-L6-v2"
    config = tomllib.loads(no_aws_env.read_text())["sagemaker"]
    assert config["embeddings_kind"] == "tei" and config["embeddings_endpoint"] == "sagerag-minilm"
    gone = cli("teardown", "--yes", "--json")
    assert gone.exit_code == 0, gone.output
    assert len(json.loads(gone.stdout)["deleted"]) == 6 and aws.find_managed(sm) == []


def test_deploy_reuses_endpoints_that_are_in_service(sm: Any) -> None:
    assert cli("deploy", "--role", ROLE, "--poll-interval", "0", *MOTO_OK).exit_code == 0
    before = names(sm)
    again = cli("deploy", "--role", ROLE, "--poll-interval", "0", "--json", *MOTO_OK)
    assert again.exit_code == 0, again.output
    out = json.loads(again.stdout)
    assert out["created"] == [] and sorted(out["reused_endpoints"]) == ["sagerag-llm", "sagerag-minilm"]
    assert names(sm) == before


def test_teardown_is_scoped_to_its_deployment(sm: Any) -> None:
    common = ["--role", ROLE, "--poll-interval", "0", *MOTO_OK, "--no-write-config"]
    assert cli("deploy", *common).exit_code == 0
    other = ["--deployment", "b", "--llm-endpoint", "b-llm", "--embeddings-endpoint", "b-minilm"]
    assert cli("deploy", *common, *other).exit_code == 0
    assert cli("teardown", "--yes", "--deployment", "b").exit_code == 0
    left = aws.find_managed(sm)
    assert len(left) == 6 and {r.deployment for r in left} == {"default"}
    assert cli("teardown", "--yes", "--all").exit_code == 0
    assert aws.find_managed(sm) == []


# --- failures: nothing half-created, or exactly what is left ---------------------------------------


def test_rejected_instance_type_rolls_back_everything(sm: Any, no_aws_env: Path) -> None:
    user_resources(sm)
    result = cli("deploy", "--role", ROLE, "--poll-interval", "0")  # ml.g5.4xlarge: moto rejects it
    assert result.exit_code == 1
    assert "ml.g5.4xlarge" in result.output and "Rolled back" in result.output
    assert TOKEN not in result.output
    assert names(sm) == USER
    assert no_aws_env.read_text() == ""  # nothing recorded


def test_missing_role_is_refused_before_any_call(sm: Any) -> None:
    result = cli("deploy", "--json", *MOTO_OK)
    assert result.exit_code == 1 and "IAM execution role" in result.output
    assert names(sm) == {"endpoint": set(), "endpoint-config": set(), "model": set()}


class FlakyClient:
    """The real (moto) client, with chosen calls replaced to simulate AWS failing in other ways."""

    def __init__(self, real: Any, **overrides: Any) -> None:
        self.real = real
        self.overrides = overrides
        self.created_endpoints: set[str] = set()

    def create_endpoint(self, **kwargs: Any) -> Any:
        self.created_endpoints.add(kwargs["EndpointName"])
        return self.real.create_endpoint(**kwargs)

    def describe_endpoint(self, EndpointName: str) -> Any:
        if EndpointName in self.created_endpoints and "status" in self.overrides:
            return {"EndpointStatus": self.overrides["status"], "FailureReason": "CUDA out of memory"}
        return self.real.describe_endpoint(EndpointName=EndpointName)

    def __getattr__(self, name: str) -> Any:
        return self.overrides.get(name) or getattr(self.real, name)


def moto_plan() -> Any:
    options = DeployOptions(
        role_arn=ROLE,
        llm_instance_type="ml.g4dn.xlarge",
        embeddings_instance_type="ml.m5.xlarge",
        name_suffix="t",
    )
    return build_plan(options)


def test_endpoint_that_fails_is_rolled_back(sm: Any) -> None:
    user_resources(sm)
    with pytest.raises(aws.DeployError, match=r"CUDA out of memory.*Rolled back") as info:
        aws.apply_plan(FlakyClient(sm, status="Failed"), moto_plan(), poll_interval=0)
    assert info.value.left == []
    assert names(sm) == USER


def test_leftovers_are_named_with_the_teardown_hint(sm: Any) -> None:
    def refuse(**kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "DeleteModel")

    client = FlakyClient(sm, status="Failed", delete_model=refuse)
    with pytest.raises(aws.DeployError) as info:
        aws.apply_plan(client, moto_plan(), poll_interval=0)
    message = str(info.value)
    assert "Could not delete: model sagerag-minilm-t" in message and "model sagerag-llm-t (" in message
    assert "sagerag teardown --deployment default" in message
    assert {(r.kind, r.name) for r in info.value.left} == {
        ("model", "sagerag-llm-t"),
        ("model", "sagerag-minilm-t"),
    }
    assert names(sm)["model"] == {"sagerag-llm-t", "sagerag-minilm-t"} and not names(sm)["endpoint"]
    assert aws.teardown(sm, aws.find_managed(sm)) == []
    assert names(sm)["model"] == set()


def test_timeout_leaves_endpoints_and_says_so(sm: Any) -> None:
    with pytest.raises(aws.DeployError, match="not InService after") as info:
        aws.apply_plan(FlakyClient(sm, status="Creating"), moto_plan(), timeout=0, poll_interval=0)
    assert "sagerag teardown --deployment default" in str(info.value)
    assert len(info.value.left) == 6 and len(aws.find_managed(sm)) == 6


def test_status_without_credentials_is_a_clear_error() -> None:
    result = cli("status", "--region", REGION)
    assert result.exit_code == 2 and "credentials" in result.output


def test_jumpstart_deploy_offline_fails_cleanly(sm: Any, no_network: list[str]) -> None:
    model = "meta-textgeneration-llama-2-7b-f"
    result = cli("deploy", "--role", ROLE, "--jumpstart-model-id", model, *MOTO_OK)
    assert result.exit_code == 1, result.output
    assert f"cannot resolve JumpStart model {model}" in result.output and "network" in result.output
    assert any("jumpstart" in host for host in no_network)  # the SDK tried S3; the guard stopped it
    no_network.clear()
    assert names(sm) == {"endpoint": set(), "endpoint-config": set(), "model": set()}


def test_main_entry_point_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    from sagerag.cli import main

    with pytest.raises(SystemExit) as bad:
        main(["deploy", "--dry-run", "--llm-endpoint", "bad_name!"])
    assert bad.value.code == 2 and "not a valid SageMaker name" in capsys.readouterr().err
    with pytest.raises(SystemExit) as ok:
        main(["deploy", "--dry-run", "--json", "--region", "us-west-2"])
    out = capsys.readouterr()
    assert ok.value.code == 0 and json.loads(out.out)["region"] == "us-west-2"
    assert TOKEN not in out.out + out.err


# --- autoscaling: Application Auto Scaling on moto --------------------------------------------------

SCALE = ["--max-instances", "3", "--embeddings-max-instances", "2"]
LLM_RID = "endpoint/sagerag-llm/variant/AllTraffic"
EMB_RID = "endpoint/sagerag-minilm/variant/AllTraffic"
USER_RID = "endpoint/user-endpoint/variant/v"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"


@pytest.fixture
def aas(sm: Any) -> Any:
    """Application Auto Scaling on the same moto server (the `sm` fixture sets its endpoint variable)."""
    return boto3.client("application-autoscaling", region_name=REGION)


def targets(aas: Any) -> dict[str, tuple[int, int]]:
    found = aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    return {t["ResourceId"]: (t["MinCapacity"], t["MaxCapacity"]) for t in found}


def policies(aas: Any) -> dict[tuple[str, str], dict[str, Any]]:
    found = aas.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    return {(p["ResourceId"], p["PolicyName"]): p for p in found}


def scaling_by_hand(
    aas: Any,
    resource_id: str = USER_RID,
    policy: str = "theirs",
    max_capacity: int = 5,
    target: float = 100.0,
) -> None:
    """Autoscaling registered outside sagerag (the console, another tool): someone else's endpoint by
    default, which teardown must leave alone."""
    aas.register_scalable_target(
        ServiceNamespace="sagemaker",
        ResourceId=resource_id,
        ScalableDimension=DIMENSION,
        MinCapacity=1,
        MaxCapacity=max_capacity,
    )
    aas.put_scaling_policy(
        PolicyName=policy,
        ServiceNamespace="sagemaker",
        ResourceId=resource_id,
        ScalableDimension=DIMENSION,
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": target,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
            },
        },
    )


def test_dry_run_shows_scaling_target_policy_and_cost_range() -> None:
    result = cli("deploy", "--dry-run", "--json", *SCALE)
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    llm, emb = plan["endpoints"]
    assert llm["autoscaling"] == {
        "resource_id": LLM_RID,
        "min_instances": 1,
        "max_instances": 3,
        "policy_name": "sagerag-invocations",
        "metric": "SageMakerVariantInvocationsPerInstance",
        "target_invocations_per_instance_per_minute": 30.0,
        "scale_in_cooldown_s": 600,
        "scale_out_cooldown_s": 300,
    }
    assert emb["autoscaling"]["max_instances"] == 2 and emb["autoscaling"]["resource_id"] == EMB_RID
    assert emb["autoscaling"]["target_invocations_per_instance_per_minute"] == 60.0
    assert llm["instance_count"] == 1 and llm["estimated_hourly_usd_range"] == pytest.approx([2.03, 6.09])
    assert emb["estimated_hourly_usd_range"] == pytest.approx([0.23, 0.46])
    assert plan["estimated_hourly_usd_total"] == pytest.approx(2.26)
    assert plan["estimated_hourly_usd_total_max"] == pytest.approx(6.55)

    text = cli("deploy", "--dry-run", *SCALE, "--llm-target-invocations", "12", "--scale-in-cooldown", "900")
    assert text.exit_code == 0, text.output
    out = text.stdout.replace("\n", " ")
    assert f"scalable target {LLM_RID}" in out and f"scalable target {EMB_RID}" in out
    assert "1..3 instances (~$2.030..6.090/hour), target 12 SageMakerVariantInvocationsPerInstance" in out
    assert "scale-in 900 s" in out and "sagerag-invocations" in out
    assert "$2.26/hour at the start, up to $6.55/hour" in out


def test_dry_run_without_max_registers_nothing() -> None:
    plan = json.loads(cli("deploy", "--dry-run", "--json", "--min-instances", "2").stdout)
    assert [e["autoscaling"] for e in plan["endpoints"]] == [None, None]
    assert [e["instance_count"] for e in plan["endpoints"]] == [2, 2]
    assert plan["estimated_hourly_usd_total_max"] == plan["estimated_hourly_usd_total"]
    assert "autoscaling   none: fixed at 1" in cli("deploy", "--dry-run").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--min-instances", "3", "--max-instances", "2"], "--llm-max-instances 2 is below the minimum 3"),
        (
            ["--embeddings-min-instances", "4", "--embeddings-max-instances", "2"],
            "--embeddings-max-instances 2",
        ),
        (["--min-instances", "0", "--max-instances", "2"], "--llm-min-instances 0: an endpoint of plain"),
        (["--llm-min-instances", "-1"], "--llm-min-instances -1"),
        (
            ["--llm-instance-count", "5", "--llm-min-instances", "1", "--llm-max-instances", "2"],
            "--llm-instance-count 5 is outside the autoscaling range 1..2",
        ),
        (
            ["--max-instances", "2", "--embeddings-target-invocations", "0"],
            "--embeddings-target-invocations 0",
        ),
        (["--scale-in-cooldown", "-5"], "--scale-in-cooldown -5"),
    ],
)
def test_bad_scaling_ranges_exit_2_naming_the_option(args: list[str], message: str) -> None:
    result = cli("deploy", "--dry-run", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_deploy_with_autoscaling_status_teardown_leaves_nothing(sm: Any, aas: Any) -> None:
    user_resources(sm)
    scaling_by_hand(aas)
    result = cli("deploy", "--role", ROLE, "--poll-interval", "0", "--json", *MOTO_OK, *SCALE)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert len(out["created"]) == 6
    assert {(r["kind"], r["name"], r["status"]) for r in out["autoscaling"]} == {
        ("scalable-target", LLM_RID, "registered"),
        ("scalable-target", EMB_RID, "registered"),
        ("scaling-policy", "sagerag-invocations", None),
    }
    assert targets(aas) == {LLM_RID: (1, 3), EMB_RID: (1, 2), USER_RID: (1, 5)}
    policy = policies(aas)[(LLM_RID, "sagerag-invocations")]
    assert policy["PolicyType"] == "TargetTrackingScaling"
    assert policy["TargetTrackingScalingPolicyConfiguration"] == {
        "TargetValue": 30.0,
        "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
        "ScaleInCooldown": 600,
        "ScaleOutCooldown": 300,
    }
    emb_policy = policies(aas)[(EMB_RID, "sagerag-invocations")]
    assert emb_policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 60.0

    status = cli("status", "--json")
    assert status.exit_code == 0, status.output
    scaling = {s["endpoint"]: s for s in json.loads(status.stdout)["autoscaling"]}
    assert set(scaling) == {"sagerag-llm", "sagerag-minilm"}  # not the user's endpoint
    llm = scaling["sagerag-llm"]
    assert (llm["min_instances"], llm["max_instances"], llm["desired_instances"]) == (1, 3, 1)
    assert llm["role"] == "llm" and llm["deployment"] == "default" and llm["resource_id"] == LLM_RID
    assert [(p["name"], p["target_value"]) for p in llm["policies"]] == [("sagerag-invocations", 30.0)]
    table = cli("status").stdout
    row = next(
        line for line in table.splitlines() if "sagerag-llm " in line and "sagerag-invocations" in line
    )
    assert row.split("│")[2:8] == [
        " 1   ",
        " 3   ",
        " 1       ",
        " 1       ",
        " sagerag-invocations ",
        " 30     ",
    ]

    rerun = cli("deploy", "--role", ROLE, "--poll-interval", "0", *MOTO_OK, *SCALE)  # reuses, updates
    assert rerun.exit_code == 0, rerun.output
    assert (
        "llm: endpoint sagerag-llm InService (reused); autoscaling 1..3 instances (updated)" in rerun.stdout
    )
    assert targets(aas) == {LLM_RID: (1, 3), EMB_RID: (1, 2), USER_RID: (1, 5)}

    gone = cli("teardown", "--yes", "--json")
    assert gone.exit_code == 0, gone.output
    deleted = json.loads(gone.stdout)["deleted"]
    assert len(deleted) == 10 and {d["kind"] for d in deleted} >= {"scaling-policy", "scalable-target"}
    assert targets(aas) == {USER_RID: (1, 5)}
    assert list(policies(aas)) == [(USER_RID, "theirs")]
    assert names(sm) == USER
    again = cli("teardown", "--yes", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout) == {"deleted": [], "failed": []}


class Recorder:
    """A real (moto) client whose chosen calls are logged, in one log shared between clients."""

    def __init__(self, real: Any, log: list[str], *calls: str, fail: str | None = None) -> None:
        self.real, self.log, self.calls, self.fail = real, log, calls, fail

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.real, name)
        if name not in self.calls and name != self.fail:
            return method

        def call(**kwargs: Any) -> Any:
            if name == self.fail:
                raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, name)
            self.log.append(f"{name} {kwargs.get('EndpointName') or kwargs.get('ResourceId')}")
            return method(**kwargs)

        return call


def test_teardown_removes_scaling_first_and_finds_what_others_registered(sm: Any, aas: Any) -> None:
    assert cli("deploy", "--role", ROLE, "--poll-interval", "0", *MOTO_OK).exit_code == 0
    assert targets(aas) == {}  # no --max-instances: nothing registered
    # registered by hand (the console, another tool), with a policy name sagerag never uses
    scaling_by_hand(aas, LLM_RID, "console-policy", max_capacity=2, target=70.0)
    log: list[str] = []
    client = Recorder(sm, log, "delete_endpoint")
    scaling_client = Recorder(aas, log, "delete_scaling_policy", "deregister_scalable_target")
    endpoints = aws.find_managed(sm)
    states = aws.find_scaling(aas, endpoints, sm)
    assert [(s.endpoint, s.min_instances, s.max_instances, [p.name for p in s.policies]) for s in states] == [
        ("sagerag-llm", 1, 2, ["console-policy"])
    ]
    resources = [r for s in states for r in s.resources()] + endpoints
    assert aws.teardown(client, resources, scaling_client) == []
    assert log[:2] == [f"delete_scaling_policy {LLM_RID}", f"deregister_scalable_target {LLM_RID}"]
    assert sorted(log[2:]) == ["delete_endpoint sagerag-llm", "delete_endpoint sagerag-minilm"]
    assert targets(aas) == {} and policies(aas) == {} and aws.find_managed(sm) == []
    # a second pass over the same (now missing) resources is not an error
    assert aws.teardown(sm, resources, aas) == []


def test_endpoint_is_kept_when_its_scaling_cannot_be_removed(sm: Any, aas: Any) -> None:
    assert cli("deploy", "--role", ROLE, "--poll-interval", "0", *MOTO_OK, *SCALE).exit_code == 0
    endpoints = aws.find_managed(sm)
    resources = [r for s in aws.find_scaling(aas, endpoints) for r in s.resources()] + endpoints
    failed = aws.teardown(sm, resources, Recorder(aas, [], fail="deregister_scalable_target"))
    assert {(r.kind, r.name) for r, _ in failed} == {
        ("scalable-target", LLM_RID),
        ("scalable-target", EMB_RID),
        ("endpoint", "sagerag-llm"),
        ("endpoint", "sagerag-minilm"),
    }
    assert all("kept" in why for r, why in failed if r.kind == "endpoint")
    assert names(sm)["endpoint"] == {"sagerag-llm", "sagerag-minilm"}  # still findable by tag
    gone = cli("teardown", "--yes", "--json")
    assert gone.exit_code == 0, gone.output
    assert targets(aas) == {} and policies(aas) == {} and names(sm)["endpoint"] == set()


def scaled_plan(**overrides: Any) -> Any:
    options = DeployOptions(
        role_arn=ROLE,
        llm_instance_type="ml.g4dn.xlarge",
        embeddings_instance_type="ml.m5.xlarge",
        name_suffix="t",
        **{"llm_max_instances": 3, "embeddings_max_instances": 2, **overrides},
    )
    return build_plan(options)


class SlowStart(FlakyClient):
    """Endpoints report Creating for their first polls, as on SageMaker, and the log says when."""

    def __init__(self, real: Any, log: list[str], polls: int = 2) -> None:
        super().__init__(real)
        self.log, self.polls = log, polls
        self.seen: dict[str, int] = {}

    def describe_endpoint(self, EndpointName: str) -> Any:
        self.seen[EndpointName] = self.seen.get(EndpointName, 0) + 1
        described = self.real.describe_endpoint(EndpointName=EndpointName)
        if self.seen[EndpointName] <= self.polls:
            described["EndpointStatus"] = "Creating"
        self.log.append(f"{described['EndpointStatus']} {EndpointName}")
        return described


def test_scaling_is_registered_only_after_every_endpoint_is_in_service(sm: Any, aas: Any) -> None:
    log: list[str] = []
    result = aws.apply_plan(
        SlowStart(sm, log),
        scaled_plan(),
        poll_interval=0,
        scaling_client=Recorder(aas, log, "register_scalable_target", "put_scaling_policy"),
    )
    first = next(i for i, line in enumerate(log) if line.startswith("register_scalable_target"))
    before, after = log[:first], log[first:]
    assert "Creating sagerag-llm" in before and "Creating sagerag-minilm" in before
    assert "InService sagerag-llm" in before and "InService sagerag-minilm" in before
    assert not any(line.startswith(("Creating", "InService")) for line in after)
    assert sorted(r.name for r in result.scaling if r.kind == "scalable-target") == [LLM_RID, EMB_RID]


def test_a_timeout_registers_no_scaling(sm: Any, aas: Any) -> None:
    with pytest.raises(aws.DeployError, match="not InService after"):
        aws.apply_plan(
            FlakyClient(sm, status="Creating"), scaled_plan(), timeout=0, poll_interval=0, scaling_client=aas
        )
    assert targets(aas) == {}


def test_failed_registration_keeps_endpoints_and_a_rerun_registers(sm: Any, aas: Any) -> None:
    with pytest.raises(aws.DeployError) as info:
        aws.apply_plan(
            sm, scaled_plan(), poll_interval=0, scaling_client=Recorder(aas, [], fail="put_scaling_policy")
        )
    message = str(info.value)
    assert "autoscaling was not registered: AccessDeniedException" in message
    assert "run the same deploy again" in message and "sagerag teardown --deployment default" in message
    assert targets(aas) == {}  # the target this run registered was undone
    assert names(sm)["endpoint"] == {"sagerag-llm", "sagerag-minilm"}  # InService, kept

    # the second endpoint's policy fails: the first endpoint's new target and policy are undone as well
    calls: list[str] = []

    class SecondPolicyFails(Recorder):
        def put_scaling_policy(self, **kwargs: Any) -> Any:
            if self.log:
                raise ClientError({"Error": {"Code": "LimitExceededException", "Message": "too many"}}, "Put")
            self.log.append(f"put_scaling_policy {kwargs['ResourceId']}")
            return self.real.put_scaling_policy(**kwargs)

    refuse_second = SecondPolicyFails(aas, calls)
    with pytest.raises(aws.DeployError, match="LimitExceededException"):
        aws.apply_plan(sm, scaled_plan(), poll_interval=0, scaling_client=refuse_second)
    assert calls == [f"put_scaling_policy {LLM_RID}"]
    assert targets(aas) == {} and policies(aas) == {}

    result = aws.apply_plan(sm, scaled_plan(), poll_interval=0, scaling_client=aas)
    assert result.created == [] and sorted(result.reused) == ["sagerag-llm", "sagerag-minilm"]
    assert {r.status for r in result.scaling if r.kind == "scalable-target"} == {"registered"}
    again = aws.apply_plan(
        sm, scaled_plan(llm_min_instances=1, llm_max_instances=5), poll_interval=0, scaling_client=aas
    )
    assert {r.status for r in again.scaling if r.kind == "scalable-target"} == {"updated"}
    assert targets(aas) == {LLM_RID: (1, 5), EMB_RID: (1, 2)}


def test_status_without_autoscaling_permission_shows_the_rest(
    sm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("deploy", "--role", ROLE, "--poll-interval", "0", *MOTO_OK).exit_code == 0

    def denied(*args: Any, **kwargs: Any) -> Any:
        error = {"Error": {"Code": "AccessDeniedException", "Message": "not authorized"}}
        raise ClientError(error, "DescribeScalableTargets")

    monkeypatch.setattr(aws, "find_scaling", denied)
    result = cli("status", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert len(out["resources"]) == 6 and out["autoscaling"] is None
    assert "warning: autoscaling not shown" in result.stderr and "AccessDeniedException" in result.stderr


def test_teardown_that_cannot_read_autoscaling_deletes_nothing(
    sm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("deploy", "--role", ROLE, "--poll-interval", "0", *MOTO_OK).exit_code == 0

    def denied(*args: Any, **kwargs: Any) -> Any:
        error = {"Error": {"Code": "AccessDeniedException", "Message": "not authorized"}}
        raise ClientError(error, "DescribeScalableTargets")

    monkeypatch.setattr(aws, "find_scaling", denied)
    result = cli("teardown", "--yes")
    assert result.exit_code == 1
    assert "cannot read the endpoints' autoscaling (AccessDeniedException: not authorized)" in result.output
    assert "Nothing was deleted" in result.output and len(aws.find_managed(sm)) == 6
