"""Encode AWS binary event-stream frames, as SageMaker's response-stream route sends them.

Frame: prelude (total length, headers length: big-endian u32 each) + CRC32 of the prelude, headers,
payload, CRC32 of everything before it. Headers here are all strings (type 7: u16 length + UTF-8).
botocore's `EventStreamBuffer` decodes these; the tests use it to check our frames.
"""

from __future__ import annotations

import json
import struct
import zlib

_STRING_HEADER = 7


def _encode_headers(headers: dict[str, str]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode("utf-8"), value.encode("utf-8")
        out += struct.pack("!B", len(raw_name)) + raw_name
        out += struct.pack("!BH", _STRING_HEADER, len(raw_value)) + raw_value
    return bytes(out)


def encode_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message."""
    raw_headers = _encode_headers(headers)
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack("!II", total, len(raw_headers))
    head = prelude + struct.pack("!I", zlib.crc32(prelude)) + raw_headers + payload
    return head + struct.pack("!I", zlib.crc32(head))


def payload_part(payload: bytes) -> bytes:
    """A `PayloadPart` event carrying raw response bytes."""
    return encode_frame(
        {":event-type": "PayloadPart", ":content-type": "application/octet-stream", ":message-type": "event"},
        payload,
    )


def model_stream_error(message: str, error_code: str = "ModelStreamError") -> bytes:
    """An exception frame, as SageMaker sends when the model fails mid-stream."""
    body = json.dumps({"Message": message, "ErrorCode": error_code}).encode("utf-8")
    return encode_frame(
        {
            ":exception-type": "ModelStreamError",
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        body,
    )
