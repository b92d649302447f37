"""Work queues (工单队列): the supervisors define them and staff them with agents (坐席); every member of the staff
reads them with their live backlog; an agent pulls the next waiting ticket (工单池) of a queue they work.

Not a TM Forum resource, so under /api/v1. Agents move single tickets with a PATCH of `queue`/`assignee` on the
TMF621 resource (转派)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_kit.errors import NotFound
from crm_kit.presentation import SHANGHAI, JSONResponse
from crm_kit.service import DbSession
from crm_ticketing.api.access import Writer, supervisor
from crm_ticketing.api.tickets import MAX_OFFSET, Now
from crm_ticketing.domain import queues, representation
from crm_ticketing.domain.representation import ticket_resource
from crm_ticketing.models import Queue, QueueAgent
from crm_ticketing.schemas.queues import MembershipInput, QueueAgentOut, QueueInput, QueueOut
from crm_ticketing.schemas.trouble_ticket import TroubleTicket

QUEUES = "/api/v1/queues"
ONE = f"{QUEUES}/{{queue_id}}"
MEMBER = f"{ONE}/agents/{{agent_id}}"
NEXT = f"{ONE}/next"
router = APIRouter(tags=["Work queues"], responses={401: {}, 403: {}})


QueueId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_.-]+$", description="e.g. billing, key-accounts")]
AgentId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="The agent's id")]


async def _queue(session: AsyncSession, queue_id: str) -> Queue:
    queue = await session.get(Queue, queue_id)
    if queue is None:
        raise NotFound(f"No queue {queue_id}", field="id")
    return queue


async def _render(session: AsyncSession, found: list[Queue], now: datetime) -> list[dict[str, Any]]:
    """The queues with their agents (by id) and backlogs as they stand at `now`."""
    ids = [q.id for q in found]
    members = list(
        await session.scalars(select(QueueAgent).where(QueueAgent.queue_id.in_(ids)).order_by(QueueAgent.agent_id))
    )
    agent_loads = await queues.agent_loads(session, sorted({m.agent_id for m in members}))
    backlogs = await queues.loads(session, ids)
    rendered = []
    for q in found:
        backlog = backlogs[q.id]
        oldest = backlog.oldest_unassigned
        resource = QueueOut.model_validate(
            {
                "id": q.id,
                "href": f"{QUEUES}/{q.id}",
                "name": q.name,
                "categories": q.categories,
                "keyAccounts": q.key_accounts,
                "strategy": q.strategy,
                "lastAssignee": q.last_assignee,
                "agents": [_member(m, agent_loads[m.agent_id]) for m in members if m.queue_id == q.id],
                "load": {
                    "openTickets": backlog.open,
                    "unassignedTickets": backlog.unassigned,
                    "oldestUnassignedDate": oldest.astimezone(SHANGHAI) if oldest else None,
                    "oldestUnassignedAgeSeconds": max(0, int((now - oldest).total_seconds())) if oldest else None,
                },
            }
        )
        rendered.append(resource.model_dump(mode="json", by_alias=True))
    return rendered


def _member(member: QueueAgent, open_tickets: int) -> QueueAgentOut:
    return QueueAgentOut.model_validate(
        {
            "agentId": member.agent_id,
            "available": member.available,
            "maxOpen": member.max_open,
            "joinedAt": member.joined_at.astimezone(SHANGHAI),
            "openTickets": open_tickets,
        }
    )


@router.get(QUEUES, summary="List the work queues with their agents and backlog", response_model=list[QueueOut])
async def list_queues(
    session: DbSession,
    principal: Writer,
    now: Now,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    total = await session.scalar(select(func.count()).select_from(Queue)) or 0
    page = list(await session.scalars(select(Queue).order_by(Queue.id).offset(offset).limit(limit)))
    items = await _render(session, page, now)
    return JSONResponse(items, headers={"X-Total-Count": str(total), "X-Result-Count": str(len(items))})


@router.get(ONE, summary="Retrieve a work queue", response_model=QueueOut, responses={404: {}})
async def retrieve_queue(queue_id: QueueId, session: DbSession, principal: Writer, now: Now) -> JSONResponse:
    [one] = await _render(session, [await _queue(session, queue_id)], now)
    return JSONResponse(one)


@router.put(
    ONE,
    summary="Create or replace a work queue (supervisors)",
    response_model=QueueOut,
    dependencies=[Depends(supervisor)],
    responses={201: {"model": QueueOut}, 422: {}},
)
async def put_queue(queue_id: QueueId, body: QueueInput, session: DbSession, now: Now) -> JSONResponse:
    """201 when created (with Location), 200 when replaced. An escalation queue (升级) is given no categories and no
    green channel (422): routing would send new tickets there."""
    queue, created = await queues.save_queue(
        session,
        queue_id,
        name=body.name,
        categories=list(body.categories),
        key_accounts=body.key_accounts,
        strategy=body.strategy,
        now=now,
    )
    [one] = await _render(session, [queue], now)
    headers = {"Location": one["href"]} if created else None
    return JSONResponse(one, status_code=201 if created else 200, headers=headers)


@router.put(
    MEMBER,
    summary="Add an agent to a work queue, or change their availability and limit (supervisors)",
    response_model=QueueAgentOut,
    dependencies=[Depends(supervisor)],
    responses={201: {"model": QueueAgentOut}, 404: {}, 422: {}},
)
async def put_member(
    queue_id: QueueId, agent_id: AgentId, body: MembershipInput, session: DbSession, now: Now
) -> JSONResponse:
    """201 when the agent joined, 200 when their membership changed."""
    await _queue(session, queue_id)
    member, joined = await queues.save_member(
        session, queue_id, agent_id, available=body.available, max_open=body.max_open, now=now
    )
    load = await queues.agent_loads(session, [agent_id])
    answer = _member(member, load[agent_id]).model_dump(mode="json", by_alias=True)
    return JSONResponse(answer, status_code=201 if joined else 200)


@router.delete(
    MEMBER,
    summary="Take an agent off a work queue (supervisors); the tickets they hold stay theirs",
    status_code=204,
    dependencies=[Depends(supervisor)],
    responses={404: {}},
)
async def delete_member(queue_id: QueueId, agent_id: AgentId, session: DbSession) -> Response:
    member = await session.get(QueueAgent, (queue_id, agent_id), with_for_update=True)
    if member is None:
        raise NotFound(f"{agent_id} does not work queue {queue_id}", field="agentId")
    await session.delete(member)
    return Response(status_code=204)


@router.post(
    NEXT,
    summary="Pull the next ticket of a queue (工单池): the most urgent, longest waiting unassigned one",
    response_model=TroubleTicket,
    responses={404: {}, 409: {}},
)
async def pull_next(queue_id: QueueId, session: DbSession, principal: Writer, now: Now) -> JSONResponse:
    """The caller takes it: it becomes theirs, recorded as a transfer. Whether they are available or at their limit
    does not matter here: those only steer what routing hands out unasked."""
    await _queue(session, queue_id)
    ticket = await queues.pull_next(session, queue_id, principal.subject, now)
    [view] = await representation.load_views(session, [ticket.id])
    return JSONResponse(ticket_resource(view, now))
