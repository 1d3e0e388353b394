"""A rough hourly on-demand price for the instance types a deployment uses.

GPU endpoints bill every hour they exist, which is why `deploy --dry-run` shows an estimate before anything
is created. These are SageMaker real-time inference list prices for us-east-1, copied by hand; they drift
and differ by region, so every figure is shown as an estimate with `PRICES_AS_OF` and `PRICES_REGION`.
"""

from __future__ import annotations

PRICES_AS_OF = "2024-06"
PRICES_REGION = "us-east-1"
PRICING_URL = "https://aws.amazon.com/sagemaker/pricing/"

# USD per instance-hour, SageMaker real-time inference, on-demand, us-east-1.
HOURLY_USD: dict[str, float] = {
    "ml.t2.medium": 0.056,
    "ml.m5.large": 0.115,
    "ml.m5.xlarge": 0.23,
    "ml.m5.2xlarge": 0.461,
    "ml.c5.large": 0.102,
    "ml.c5.xlarge": 0.204,
    "ml.c5.2xlarge": 0.408,
    "ml.g4dn.xlarge": 0.736,
    "ml.g4dn.2xlarge": 0.94,
    "ml.g5.xlarge": 1.408,
    "ml.g5.2xlarge": 1.515,
    "ml.g5.4xlarge": 2.03,
    "ml.g5.8xlarge": 3.06,
    "ml.g5.12xlarge": 7.09,
    "ml.g5.48xlarge": 20.36,
    "ml.p3.2xlarge": 3.825,
}


def hourly_usd(instance_type: str, count: int = 1) -> float | None:
    """Estimated USD per hour for `count` instances, or None where the type is not in the table."""
    price = HOURLY_USD.get(instance_type)
    return None if price is None else round(price * count, 3)


def estimate_note(region: str) -> str:
    """The caveat printed next to every estimate."""
    where = "" if region == PRICES_REGION else f"; prices in {region} differ"
    return f"estimate: {PRICES_REGION} on-demand list prices as of {PRICES_AS_OF}{where}; see {PRICING_URL}"
