"""Segments (客户分群), /api/v1/segments: built-in tiers (value 价值, activity 活跃度, lifecycle 生命周期) and rule
segments defined by marketers and analysts.

The built-in tiers move with each customer's billing and line events (customer.segment.tier_changed.v1). Rule
segments are evaluated when created, when their rule changes, and on `POST /{id}/evaluate` (by hand or from a
periodic job); each evaluation publishes customer.segment.membership_changed.v1 for every customer who joined or
left.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from crm_customer import events
from crm_customer.api.access import StaffReader, visible
from crm_customer.domain import metrics, segments
from crm_customer.models import Segment
from crm_customer.schemas.billing import Amount
from crm_customer.schemas.segments import (
    CutoffsOut,
    EvaluationOut,
    MemberOut,
    PreviewIn,
    PreviewOut,
    RecomputeOut,
    SampleCustomer,
    SegmentIn,
    SegmentOut,
    SegmentPatch,
)
from crm_kit.auth import Caller, Principal
from crm_kit.db import utcnow
from crm_kit.errors import Conflict
from crm_kit.events import CloudEvent
from crm_kit.outbox import stage, stage_many
from crm_kit.presentation import JSONResponse, shanghai, yuan
from crm_kit.service import DbSession, RuntimeDep

BASE = "/api/v1/segments"
router = APIRouter(prefix=BASE, tags=["Segments"])
SEGMENT_WRITERS = ("marketer", "analyst", "supervisor", "admin")
TIER_OPERATORS = ("analyst", "supervisor", "admin")
EVENT_CHUNK = 5_000
"""A tier recompute moves up to 100k customers: their events are staged into the outbox this many per INSERT."""
EVALUATION = (
    "The evaluation is set-based and runs within the request, also for segments of hundreds of thousands of "
    "members over millions of customers; on PostgreSQL its statements may run up to "
    f"{segments.EVALUATION_TIMEOUT_SECONDS} s (instead of the service's query timeout), for this request only."
)
PROBLEMS: dict[int | str, dict[str, Any]] = {403: {}, 404: {}, 422: {}}


async def segment_writer(principal: Caller) -> Principal:
    principal.require_role(*SEGMENT_WRITERS)
    return principal


async def tier_operator(principal: Caller) -> Principal:
    principal.require_role(*TIER_OPERATORS)
    return principal


SegmentWriter = Annotated[Principal, Depends(segment_writer)]
TierOperator = Annotated[Principal, Depends(tier_operator)]
SegmentId = Annotated[str, Path(max_length=64)]


def builtin_out(builtin: segments.Builtin, count: int) -> SegmentOut:
    return SegmentOut(
        id=builtin.id,
        href=f"{BASE}/{builtin.id}",
        name=builtin.name,
        description=f"Built-in {builtin.dimension} tier (read-only), kept in step with billing events",
        kind="builtin",
        dimension=builtin.dimension,  # type: ignore[arg-type]
        rule=builtin.rule,
        status="active",
        member_count=count,
        evaluated_at=None,
        created_by=None,
        created_at=None,
        updated_at=None,
    )


def segment_out(segment: Segment) -> SegmentOut:
    return SegmentOut(
        id=segment.id,
        href=f"{BASE}/{segment.id}",
        name=segment.name,
        description=segment.description,
        kind="rule",
        dimension=None,
        rule=segment.rule or {},
        status=segment.status,  # type: ignore[arg-type]
        member_count=segment.member_count,
        evaluated_at=shanghai(segment.evaluated_at),
        created_by=segment.created_by,
        created_at=shanghai(segment.created_at),
        updated_at=shanghai(segment.updated_at),
    )


def _amount(fen: int) -> Amount:
    return Amount(fen=fen, yuan=yuan(fen))


async def stage_chunked(session: DbSession, rt: RuntimeDep, batch: list[CloudEvent]) -> None:
    for start in range(0, len(batch), EVENT_CHUNK):
        await stage(session, rt.contracts, batch[start : start + EVENT_CHUNK])


async def publish_diff(session: DbSession, rt: RuntimeDep, segment: Segment, diff: segments.Diff) -> None:
    """One membership_changed per customer who joined or left, staged in bulk (crm_kit.outbox.stage_many): the
    events of one change differ only in the customer id, an id the evaluation just read from the customer
    table, so one representative per chunk is checked against the contract in full and each chunk is one
    INSERT; 300k members stage in seconds, not minutes."""
    at = segment.evaluated_at or utcnow()
    for change, ids in (("joined", diff.joined), ("left", diff.left)):
        if ids:
            template = events.membership_changed(segment.id, segment.name, ids[0], change, at)
            await stage_many(
                session, rt.contracts, template, [(cid, {**template.data, "customer_id": cid}) for cid in ids]
            )


def _read_only(segment_id: str) -> None:
    if segment_id in segments.BUILTINS:
        raise Conflict(f"{segment_id} is a built-in tier segment: read-only", field="segment_id")


@router.get("", summary="Every segment: the built-in tiers, then the rule segments", responses=PROBLEMS)
async def list_segments(
    session: DbSession,
    _: StaffReader,
    status: Annotated[str | None, Query(pattern="^(active|archived)$", description="Rule segments only")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    counts = await segments.builtin_counts(session)
    found = [builtin_out(b, counts[b.id]) for b in segments.BUILTINS.values()] if status != "archived" else []
    found += [segment_out(s) for s in await segments.list_segments(session, status)]
    page = [s.model_dump(mode="json") for s in found[offset : offset + limit]]
    return JSONResponse(page, headers={"X-Total-Count": str(len(found)), "X-Result-Count": str(len(page))})


@router.post("/preview", summary="How many customers a rule selects now, with a masked sample", responses=PROBLEMS)
async def preview(body: PreviewIn, session: DbSession, _: SegmentWriter) -> PreviewOut:
    found = await segments.preview(session, body.rule, utcnow())
    return PreviewOut(
        count=found.count,
        sample=[SampleCustomer(customer_id=cid, name=segments.mask_name(name)) for cid, name in found.sample],
    )


@router.post(
    "",
    status_code=201,
    summary="Define a rule segment; its members are evaluated at once (membership_changed: joined)",
    description=EVALUATION,
    responses={**PROBLEMS, 409: {"description": "the name is taken"}},
)
async def create_segment(body: SegmentIn, session: DbSession, rt: RuntimeDep, principal: SegmentWriter) -> SegmentOut:
    segments.parse_rule(body.rule)
    await segments.check_name_free(session, body.name)
    now = utcnow()
    segment = Segment(
        id=segments.new_segment_id(),
        name=body.name,
        description=body.description,
        kind="rule",
        rule=body.rule,
        status="active",
        member_count=0,
        created_by=principal.subject,
        created_at=now,
        updated_at=now,
    )
    session.add(segment)
    await session.flush()
    diff = await segments.evaluate(session, segment, now)
    await publish_diff(session, rt, segment, diff)
    return segment_out(segment)


@router.post(
    "/tiers/recompute",
    summary="Recompute the value cutoffs (ARPU percentiles) and re-tier every customer against them",
    responses=PROBLEMS,
)
async def recompute_tiers(session: DbSession, rt: RuntimeDep, _: TierOperator) -> RecomputeOut:
    now = utcnow()
    done = await metrics.recompute_all(session, now)
    await stage_chunked(session, rt, [events.tier_changed(cid, change, now) for cid, change in done.changes])
    cutoffs = done.cutoffs
    return RecomputeOut(
        cutoffs=CutoffsOut(
            value_high_min=_amount(cutoffs.value_high_min_fen),
            value_mid_min=_amount(cutoffs.value_mid_min_fen),
            population=cutoffs.population,
            from_population=cutoffs.from_population,
            computed_at=shanghai(cutoffs.computed_at),
        ),
        retiered=len(done.changes),
        remaining=done.remaining,
    )


async def _segment_out(session: DbSession, segment_id: str) -> SegmentOut:
    builtin = segments.BUILTINS.get(segment_id)
    if builtin is not None:
        return builtin_out(builtin, (await segments.builtin_counts(session))[segment_id])
    return segment_out(await segments.get_segment(session, segment_id))


@router.get("/{segment_id}", summary="One segment", responses=PROBLEMS)
async def get_segment(segment_id: SegmentId, session: DbSession, _: StaffReader) -> SegmentOut:
    return await _segment_out(session, segment_id)


@router.get(
    "/{segment_id}/members",
    summary="A segment's members by customer id (rule segments: as last evaluated)",
    responses=PROBLEMS,
)
async def list_members(
    segment_id: SegmentId,
    session: DbSession,
    access: StaffReader,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    total, page = await segments.members(session, segment_id, visible(access.principal), offset, limit, utcnow())
    items = [
        MemberOut(customer_id=m.customer_id, name=segments.mask_name(m.name), since=shanghai(m.since)).model_dump(
            mode="json"
        )
        for m in page
    ]
    return JSONResponse(items, headers={"X-Total-Count": str(total), "X-Result-Count": str(len(items))})


async def _for_change(session: DbSession, segment_id: str) -> Segment:
    _read_only(segment_id)
    segment = await segments.get_segment(session, segment_id, for_update=True)
    if segment.status != "active":
        raise Conflict(f"Segment {segment_id} is archived", field="segment_id")
    return segment


@router.post(
    "/{segment_id}/evaluate",
    summary="Re-evaluate a rule segment now: who joined, who left (one membership_changed event each)",
    description=EVALUATION,
    responses={**PROBLEMS, 409: {"description": "built-in or archived"}},
)
async def evaluate_segment(
    segment_id: SegmentId, session: DbSession, rt: RuntimeDep, _: SegmentWriter
) -> EvaluationOut:
    segment = await _for_change(session, segment_id)
    diff = await segments.evaluate(session, segment, utcnow())
    await publish_diff(session, rt, segment, diff)
    return EvaluationOut(segment=segment_out(segment), joined=len(diff.joined), left=len(diff.left))


@router.patch(
    "/{segment_id}",
    summary="Rename, describe or change the rule of a rule segment (a new rule re-evaluates it at once)",
    description=EVALUATION,
    responses={**PROBLEMS, 409: {"description": "built-in, archived, or the name is taken"}},
)
async def patch_segment(
    segment_id: SegmentId, body: SegmentPatch, session: DbSession, rt: RuntimeDep, _: SegmentWriter
) -> EvaluationOut:
    segment = await _for_change(session, segment_id)
    if body.rule is not None:
        segments.parse_rule(body.rule)
    if body.name is not None:
        await segments.check_name_free(session, body.name, segment.id)
        segment.name = body.name
    if "description" in body.model_fields_set:
        segment.description = body.description
    now = utcnow()
    segment.updated_at = now
    diff = segments.Diff([], [])
    if body.rule is not None and body.rule != segment.rule:
        segment.rule = body.rule
        diff = await segments.evaluate(session, segment, now)
        await publish_diff(session, rt, segment, diff)
    await session.flush()
    return EvaluationOut(segment=segment_out(segment), joined=len(diff.joined), left=len(diff.left))


@router.delete(
    "/{segment_id}",
    summary="Archive a rule segment: every member leaves (membership_changed: left); it is kept, read-only",
    description=EVALUATION,
    responses={**PROBLEMS, 409: {"description": "built-in"}},
)
async def archive_segment(segment_id: SegmentId, session: DbSession, rt: RuntimeDep, _: SegmentWriter) -> EvaluationOut:
    _read_only(segment_id)
    segment = await segments.get_segment(session, segment_id, for_update=True)
    if segment.status == "archived":
        return EvaluationOut(segment=segment_out(segment), joined=0, left=0)
    segment.status = "archived"
    diff = await segments.evaluate(session, segment, utcnow())
    await publish_diff(session, rt, segment, diff)
    return EvaluationOut(segment=segment_out(segment), joined=0, left=len(diff.left))
