"""Keyed pseudonyms (HMAC-SHA256) computed inside the JVM, so personal fields never reach silver in clear.

HMAC(K, m) = H((K0 xor opad) || H((K0 xor ipad) || m)), with K0 the key hashed when longer than the
64-byte SHA-256 block and zero-padded to it (RFC 2104). The two padded keys are computed here once
and enter the plan as binary literals, so Spark needs only its built-in sha2/concat/unhex: no
Python UDF, and the result equals `hmac.new(key, value.encode(), hashlib.sha256).hexdigest()`.

The padded keys reveal the key, and Spark prints literals in query plans (EXPLAIN, the SQL tab of
the UI, some error messages): set `spark.sql.redaction.string.regex` to hide them (`KEY_REDACTION`).
"""

from __future__ import annotations

import hashlib
import logging

from pyspark.sql import Column
from pyspark.sql import functions as F

from bigbilbao.errors import PipelineError

log = logging.getLogger(__name__)

BLOCK_SIZE = 64  # bytes, SHA-256's block
MIN_KEY_BYTES = 16
# The two 64-byte literals as Spark prints them (0x... or X'...'), for spark.sql.redaction.string.regex.
KEY_REDACTION = "(?:0x|X')[0-9A-Fa-f]{128}"


def padded_keys(key: bytes) -> tuple[bytes, bytes]:
    """Return (K0 xor ipad, K0 xor opad), the two block-sized keys of HMAC-SHA256."""
    if not isinstance(key, (bytes, bytearray)) or len(key) < MIN_KEY_BYTES:
        message = f"the pseudonymisation key must be at least {MIN_KEY_BYTES} bytes (use 32 random bytes)"
        raise PipelineError(message)
    block = hashlib.sha256(key).digest() if len(key) > BLOCK_SIZE else bytes(key)
    block = block.ljust(BLOCK_SIZE, b"\0")
    return bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)


def hmac_sha256_hex(value: Column, key: bytes) -> Column:
    """Lower-case hex HMAC-SHA256 of a string column's UTF-8 bytes under `key`; null stays null."""
    inner_key, outer_key = padded_keys(key)
    inner = F.unhex(F.sha2(F.concat(F.lit(inner_key), F.encode(value, "UTF-8")), 256))
    return F.sha2(F.concat(F.lit(outer_key), inner), 256)
