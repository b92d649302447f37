"""How answers are shown: masked numbers (PIPL), Asia/Shanghai times, JSON bodies."""

from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from starlette.responses import JSONResponse as _StarletteJSONResponse

SHANGHAI = ZoneInfo("Asia/Shanghai")


def mask_msisdn(msisdn: str | None) -> str | None:
    """`13812345678` → `138****5678`."""
    if not msisdn or len(msisdn) < 7:
        return msisdn
    return f"{msisdn[:3]}{'*' * (len(msisdn) - 7)}{msisdn[-4:]}"


def mask_id_card(number: str | None) -> str | None:
    """`110101199003071234` → `110101********1234`: region code and the last four only."""
    if not number or len(number) < 10:
        return number
    return f"{number[:6]}{'*' * (len(number) - 10)}{number[-4:]}"


def yuan(fen: int) -> str:
    """Integer fen as a decimal yuan string: 14900 → '149.00', -320 → '-3.20'. Never a float."""
    return f"{Decimal(fen) / 100:.2f}"


def shanghai(moment: datetime | None) -> str | None:
    """Stored in UTC, shown in China Standard Time with its offset. A naive time has no instant: refused."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValueError("naive datetime; the CRM shows only timezone-aware times")
    return moment.astimezone(SHANGHAI).isoformat()


class JSONResponse(_StarletteJSONResponse):
    """A JSON body written by orjson: a 360 view renders several times faster than with `json.dumps`, and every
    service answers with it (it is each app's default response class)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
