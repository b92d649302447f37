"""Signed BOSS pushes (接口签名): HMAC-SHA256 over "<timestamp>." + body with the source's own secret.

The BOSS signs, the adapter verifies; both use this module, so the two cannot drift apart. The body is
signed as sent (gzip bytes when gzip), so the adapter verifies before it inflates or parses anything.
"""

from __future__ import annotations

import gzip as gzip_codec
import hashlib
import hmac
import json
import time
from typing import Any

SOURCE_HEADER = "X-Boss-Source"
TIMESTAMP_HEADER = "X-Boss-Timestamp"
SIGNATURE_HEADER = "X-Boss-Signature"
SCHEME = "sha256="
REPLAY_WINDOW_SECONDS = 300
DEV_SOURCE = "boss"
DEV_SECRET = "dev-boss-secret-change-me"  # noqa: S105 - the laptop default; production sets its own per source
"""The source and secret `make run`, the demo load and the tests sign with; never for production."""


class SignatureError(Exception):
    """Why a push's signature was refused; the text is safe to show the caller.

    `reason` is a stable code for logs and metrics: missing_header, bad_timestamp, stale_timestamp, bad_signature.
    `header` is the header at fault.
    """

    def __init__(self, message: str, *, reason: str, header: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.header = header


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Boss-Signature value for `body` sent at `timestamp` (Unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return SCHEME + digest


def signed_headers(source: str, secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """The three headers a BOSS push carries."""
    timestamp = int(now if now is not None else time.time())
    return {
        SOURCE_HEADER: source,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }


def signed_push(
    records_or_body: list[Any] | bytes,
    source: str,
    secret: str,
    *,
    content_type: str = "application/json",
    gzip: bool = False,
    now: float | None = None,
) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of a push: records as `{"records": [...]}` (or a body as given), gzip-compressed when
    asked, signed over exactly the bytes that go out. Send the body as is (`content=`), never re-serialised."""
    body = (
        records_or_body
        if isinstance(records_or_body, bytes)
        else json.dumps({"records": records_or_body}, ensure_ascii=False).encode()
    )
    headers = {"Content-Type": content_type}
    if gzip:
        body = gzip_codec.compress(body)
        headers["Content-Encoding"] = "gzip"
    return body, {**headers, **signed_headers(source, secret, body, now)}


def verify(
    secret: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    *,
    now: float | None = None,
    window_seconds: int = REPLAY_WINDOW_SECONDS,
) -> int:
    """The push's timestamp when its signature is good and fresh; SignatureError saying why otherwise.

    A timestamp outside ±window of our clock is refused even with a good signature: a captured request
    cannot be replayed later (within the window, the BOSS event ids make a replay a set of duplicates).
    """
    if not timestamp or not signature:
        missing = TIMESTAMP_HEADER if not timestamp else SIGNATURE_HEADER
        raise SignatureError(
            f"{TIMESTAMP_HEADER} and {SIGNATURE_HEADER} are required; {missing} is missing",
            reason="missing_header",
            header=missing,
        )
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureError(
            f"{TIMESTAMP_HEADER} must be Unix seconds", reason="bad_timestamp", header=TIMESTAMP_HEADER
        )
    sent_at = int(timestamp)
    skew = (now if now is not None else time.time()) - sent_at
    if abs(skew) > window_seconds:
        raise SignatureError(
            f"{TIMESTAMP_HEADER} is {abs(skew):.0f} s {'old' if skew > 0 else 'ahead'}; "
            f"the window is {window_seconds} s (check the BOSS clock)",
            reason="stale_timestamp",
            header=TIMESTAMP_HEADER,
        )
    if not signature.startswith(SCHEME):
        raise SignatureError(
            f"{SIGNATURE_HEADER} must be '{SCHEME}<hex digest>'", reason="bad_signature", header=SIGNATURE_HEADER
        )
    if not hmac.compare_digest(signature.encode(), sign(secret, sent_at, body).encode()):
        raise SignatureError(
            f"{SIGNATURE_HEADER} does not match the body and timestamp for this source",
            reason="bad_signature",
            header=SIGNATURE_HEADER,
        )
    return sent_at
