"""What every service's API shapes stand on: TMF naming, strict request bodies, zoned times."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict


class TmfModel(BaseModel):
    """TM Forum resources: camelCase and `@type` names on the wire, Python names in code."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class Strict(BaseModel):
    """A request body: an unknown field is a mistake worth naming, not something to ignore."""

    model_config = ConfigDict(extra="forbid")


def _rfc3339_string(value: Any) -> Any:
    """A date-time travels as an RFC 3339 string with its zone offset; not a number of seconds."""
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 date-time string with a zone offset")
    return value


ZonedTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339_string)]
