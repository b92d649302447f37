"""Signed BOSS pushes (接口签名): HMAC-SHA256 over "<timestamp>." + body with the source's own secret.

The BOSS signs, the adapter verifies; both use this module, so the two cannot drift apart. The body is
signed as sent (gzip bytes when gzip), so the adapter verifies before it inflates or parses anything.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SOURCE_HEADER = "X-Boss-Source"
TIMESTAMP_HEADER = "X-Boss-Timestamp"
SIGNATURE_HEADER = "X-Boss-Signature"
SCHEME = "sha256="
REPLAY_WINDOW_SECONDS = 300


class SignatureError(Exception):
    """Why a push's signature was refused; the text is safe to show the caller."""


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
        raise SignatureError(f"{TIMESTAMP_HEADER} and {SIGNATURE_HEADER} are required")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureError(f"{TIMESTAMP_HEADER} must be Unix seconds")
    sent_at = int(timestamp)
    skew = (now if now is not None else time.time()) - sent_at
    if abs(skew) > window_seconds:
        raise SignatureError(
            f"{TIMESTAMP_HEADER} is {abs(skew):.0f} s {'old' if skew > 0 else 'ahead'}; "
            f"the window is {window_seconds} s (check the BOSS clock)"
        )
    if not signature.startswith(SCHEME):
        raise SignatureError(f"{SIGNATURE_HEADER} must be '{SCHEME}<hex digest>'")
    if not hmac.compare_digest(signature.encode(), sign(secret, sent_at, body).encode()):
        raise SignatureError(f"{SIGNATURE_HEADER} does not match the body and timestamp for this source")
    return sent_at
