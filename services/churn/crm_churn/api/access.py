"""Who may do what: scores are read by the front line and the teams who act on them; models are the analysts'."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends

from crm_churn.domain import registry
from crm_churn.domain.predictor import ModelCorrupt
from crm_churn.domain.scoring import NotScorable, UnknownCustomer
from crm_kit.auth import Caller, Principal
from crm_kit.db import utcnow
from crm_kit.errors import Conflict, CrmError, NotFound

SCORE_READERS = ("agent", "supervisor", "key_account_manager", "marketer", "analyst", "admin")
MODEL_KEEPERS = ("analyst", "admin")


async def score_reader(principal: Caller) -> Principal:
    principal.require_role(*SCORE_READERS)
    return principal


async def model_keeper(principal: Caller) -> Principal:
    principal.require_role(*MODEL_KEEPERS)
    return principal


ScoreReader = Annotated[Principal, Depends(score_reader)]
ModelKeeper = Annotated[Principal, Depends(model_keeper)]


async def clock() -> datetime:
    """The instant a request happens at; tests put their own clock here."""
    return utcnow()


Now = Annotated[datetime, Depends(clock)]


class ModelUnavailable(CrmError):
    status = 503
    slug = "model-unavailable"
    title = "No usable model"


def problem_of(exc: Exception) -> CrmError:
    """The caller's view of what the domain refused."""
    if isinstance(exc, registry.NoModel):
        return ModelUnavailable(str(exc), reason="not-trained")
    if isinstance(exc, ModelCorrupt):
        return ModelUnavailable(str(exc), reason="corrupt")
    if isinstance(exc, UnknownCustomer):
        return NotFound(str(exc), field="customer_id")
    if isinstance(exc, NotScorable):
        return Conflict(str(exc), field="customer_id")
    if isinstance(exc, registry.NothingToRollBackTo):
        return Conflict(str(exc))
    raise exc
