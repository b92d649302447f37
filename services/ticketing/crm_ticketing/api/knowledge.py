"""The knowledge base (知识库) over HTTP: supervisors and administrators write the articles, agents search them and get
suggestions for the ticket in hand, and the app and web self-service channel (自助服务) finds the public ones."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from sqlalchemy import ColumnElement, Select, and_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from crm_kit.auth import Caller, Principal
from crm_kit.errors import Conflict, Forbidden, InvalidInput, NotFound, UnsupportedMediaType
from crm_kit.presentation import SHANGHAI, JSONResponse
from crm_kit.service import DbSession
from crm_ticketing.api.access import READERS, Admin, ExistingTicket, Reader
from crm_ticketing.api.tickets import MAX_OFFSET, PATCH_TYPES, Now
from crm_ticketing.domain import knowledge
from crm_ticketing.domain.knowledge import PUBLISHED, Hit
from crm_ticketing.models import KnowledgeArticle as Article
from crm_ticketing.schemas.knowledge import (
    AUDIENCES,
    Answer,
    ArticleCreate,
    ArticleHit,
    ArticleStatus,
    ArticleUpdate,
    Feedback,
    FeedbackTally,
    KnowledgeArticle,
)
from crm_ticketing.schemas.trouble_ticket import Category

ARTICLES = "/api/v1/knowledge/articles"
ONE = f"{ARTICLES}/{{article_id}}"
FEEDBACK = f"{ONE}/feedback"
ANSWERS = "/api/v1/knowledge/answers"
SUGGESTED = "/api/v1/tickets/{ticket_id}/suggested-articles"
AUTHORS = ("supervisor", "admin")
PUBLIC = "public"
MAX_ID = 2**63 - 1
router = APIRouter(tags=["Knowledge base"], responses={401: {}, 403: {}})


async def author(principal: Caller) -> Principal:
    """Articles are the answers the team agrees on (统一口径): supervisors (班长) and administrators write them."""
    principal.require_role(*AUTHORS)
    return principal


Author = Annotated[Principal, Depends(author)]
ArticleId = Annotated[int, Path(ge=1, le=MAX_ID, description="The article id, e.g. 42")]
SEARCH = "Words or a question, Chinese or English, e.g. 光猫红灯 or 5G signal; 200 characters at most"
SearchText = Annotated[str, Query(min_length=1, max_length=200, description=SEARCH)]


class NotPublished(Conflict):
    slug = "article-not-published"
    title = "Only a published article takes feedback"


def readable(principal: Principal) -> ColumnElement[bool]:
    """The articles `principal` may read, as a WHERE clause: authors all of them; staff and key-account managers the
    published ones; any other caller (the self-service channel's token) the published public ones."""
    if principal.has_role(*AUTHORS):
        return true()
    published = Article.status == PUBLISHED
    if principal.has_role(*READERS):
        return published
    return and_(published, Article.audience == PUBLIC)


async def _one(session: AsyncSession, query: Select[tuple[Article]], article_id: int) -> Article:
    article = await session.scalar(query)
    if article is None:
        raise NotFound(f"No knowledge article {article_id}", field="id")
    return article


async def readable_article(article_id: ArticleId, session: DbSession, principal: Caller) -> Article:
    """The article, if the caller may read it (404 otherwise: a draft is nobody's business but its authors')."""
    return await _one(session, select(Article).where(Article.id == article_id, readable(principal)), article_id)


async def article_for_update(article_id: ArticleId, session: DbSession, principal: Author) -> Article:
    """Locked (PostgreSQL), so two authors' patches apply one after the other and each raises the version."""
    return await _one(session, select(Article).where(Article.id == article_id).with_for_update(), article_id)


async def article_for_delete(article_id: ArticleId, session: DbSession, principal: Admin) -> Article:
    return await _one(session, select(Article).where(Article.id == article_id).with_for_update(), article_id)


ReadableArticle = Annotated[Article, Depends(readable_article)]
ArticleForUpdate = Annotated[Article, Depends(article_for_update)]
ArticleForDelete = Annotated[Article, Depends(article_for_delete)]


def _terms(q: str) -> list[str]:
    terms = knowledge.query_terms(q)
    if not terms:
        raise InvalidInput("The query has nothing to search for: no word of two letters or digits, no CJK", field="q")
    return terms


def _href(article: Article) -> str:
    return f"{ARTICLES}/{article.id}"


def article_resource(article: Article) -> dict[str, Any]:
    """The article as served, its times in China Standard Time."""
    resource = KnowledgeArticle.model_validate(
        {
            "id": str(article.id),
            "href": _href(article),
            "title": article.title,
            "body": article.body,
            "category": article.category,
            "keywords": article.keywords,
            "audience": article.audience,
            "status": article.status,
            "author": article.author,
            "version": article.version,
            "helpful": article.helpful,
            "notHelpful": article.not_helpful,
            "creationDate": article.created_at.astimezone(SHANGHAI),
            "lastUpdate": article.updated_at.astimezone(SHANGHAI),
        }
    )
    return resource.model_dump(mode="json", by_alias=True)


def _hit(article: Article, score: float | None, snippet: str) -> dict[str, Any]:
    hit = ArticleHit.model_validate(
        {
            "id": str(article.id),
            "href": _href(article),
            "title": article.title,
            "category": article.category,
            "keywords": article.keywords,
            "audience": article.audience,
            "status": article.status,
            "version": article.version,
            "lastUpdate": article.updated_at.astimezone(SHANGHAI),
            "score": score,
            "snippet": snippet,
        }
    )
    return hit.model_dump(mode="json", by_alias=True)


def _page(items: list[dict[str, Any]], total: int) -> JSONResponse:
    return JSONResponse(items, headers={"X-Total-Count": str(total), "X-Result-Count": str(len(items))})


def _hits(total: int, hits: list[Hit]) -> JSONResponse:
    return _page([_hit(h.article, h.score, h.snippet) for h in hits], total)


# --- routes ------------------------------------------------------------------------------------------------------


@router.post(
    ARTICLES,
    summary="Write a knowledge article (supervisors, administrators); a draft unless published at once",
    status_code=201,
    response_model=KnowledgeArticle,
    responses={422: {}},
)
async def create_article(body: ArticleCreate, session: DbSession, principal: Author, now: Now) -> JSONResponse:
    article = await knowledge.create_article(session, body, author=principal.subject, now=now)
    return JSONResponse(article_resource(article), status_code=201, headers={"Location": _href(article)})


@router.get(
    ARTICLES,
    summary="Search the published articles (q), best first with a highlighted snippet; or list them by status",
    response_model=list[ArticleHit],
    responses={422: {}},
)
async def list_articles(
    session: DbSession,
    principal: Reader,
    q: Annotated[str | None, Query(min_length=1, max_length=200, description=SEARCH)] = None,
    category: Annotated[Category | None, Query(description="Only articles of this ticket category")] = None,
    status: Annotated[
        ArticleStatus | None,
        Query(description="Without q: drafts and retired articles are for authors only; with q: published only"),
    ] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> JSONResponse:
    if q is not None:
        if status not in (None, PUBLISHED):
            raise InvalidInput("Only published articles are searched; list the others without q", field="status")
        total, hits = await knowledge.search(
            session, _terms(q), audiences=AUDIENCES, category=category, offset=offset, limit=limit
        )
        return _hits(total, hits)
    if status not in (None, PUBLISHED) and not principal.has_role(*AUTHORS):
        raise Forbidden("Drafts and retired articles are their authors' (supervisors, administrators)", field="status")
    where = [readable(principal)]
    if status is not None:
        where.append(Article.status == status)
    if category is not None:
        where.append(Article.category == category)
    total, page = await knowledge.list_articles(session, where, offset=offset, limit=limit)
    return _page([_hit(a, None, knowledge.snippet(a.body, ())) for a in page], total)


@router.get(ONE, summary="Read a knowledge article", response_model=KnowledgeArticle, responses={404: {}})
async def retrieve_article(article: ReadableArticle) -> JSONResponse:
    return JSONResponse(article_resource(article))


async def merge_patch_body(request: Request, principal: Author) -> None:
    """A JSON merge-patch (RFC 7396), as tickets take it; who may not patch hears 401/403 before 415."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in PATCH_TYPES:
        raise UnsupportedMediaType(
            f"Send the patch as {' or '.join(PATCH_TYPES)}, not {media_type or 'no content type'}",
            field="Content-Type",
        )


@router.patch(
    ONE,
    summary="Change a knowledge article (JSON merge-patch): its text, or publish (发布) or retire (下线) it",
    response_model=KnowledgeArticle,
    dependencies=[Depends(merge_patch_body)],
    responses={404: {}, 415: {}, 422: {}},
    openapi_extra={
        "requestBody": {
            "content": {"application/merge-patch+json": {"schema": {"$ref": "#/components/schemas/ArticleUpdate"}}}
        }
    },
)
async def patch_article(article: ArticleForUpdate, body: ArticleUpdate, session: DbSession, now: Now) -> JSONResponse:
    await knowledge.patch_article(session, article, body, now=now)
    return JSONResponse(article_resource(article))


@router.delete(
    ONE,
    summary="Delete a knowledge article (administrators; authors retire it instead)",
    status_code=204,
    responses={404: {}},
)
async def delete_article(article: ArticleForDelete, session: DbSession) -> Response:
    await knowledge.delete_article(session, article)
    return Response(status_code=204)


@router.post(
    FEEDBACK,
    summary="Say whether an article helped (有用/没用), from the agent console or the self-service channel",
    response_model=FeedbackTally,
    responses={404: {}, 409: {}, 422: {}},
)
async def give_feedback(article: ReadableArticle, body: Feedback, session: DbSession) -> JSONResponse:
    if article.status != PUBLISHED:
        raise NotPublished(f"Knowledge article {article.id} is {article.status}", field="status")
    helpful, not_helpful = await knowledge.record_feedback(session, article.id, helpful=body.helpful)
    tally = FeedbackTally(id=str(article.id), helpful=helpful, not_helpful=not_helpful)
    return JSONResponse(tally.model_dump(mode="json", by_alias=True))


@router.get(
    ANSWERS,
    summary="Answers for the self-service channel (自助服务): the public published articles, best first, whole",
    response_model=list[Answer],
    responses={422: {}},
)
async def answers(
    session: DbSession,
    principal: Caller,
    q: SearchText,
    category: Annotated[Category | None, Query(description="Only articles of this ticket category")] = None,
    limit: Annotated[int, Query(ge=1, le=20)] = 5,
) -> JSONResponse:
    """Any authenticated caller: the app and web channels call with their own tokens, and a public article is for
    anyone to read."""
    total, hits = await knowledge.search(session, _terms(q), audiences=(PUBLIC,), category=category, limit=limit)
    items = [
        Answer(
            id=str(h.article.id),
            href=_href(h.article),
            title=h.article.title,
            category=h.article.category,
            score=h.score,
            snippet=h.snippet,
            body=h.article.body,
        ).model_dump(mode="json", by_alias=True)
        for h in hits
    ]
    return _page(items, total)


@router.get(
    SUGGESTED,
    summary="Articles that may answer a ticket (推荐知识): searched with its title and description, its category first",
    response_model=list[ArticleHit],
    responses={404: {}, 422: {}},
)
async def suggested_articles(
    ticket: ExistingTicket, session: DbSession, limit: Annotated[int, Query(ge=1, le=20)] = 5
) -> JSONResponse:
    terms = knowledge.query_terms(f"{ticket.name or ''}\n{ticket.description}")
    if not terms:
        return _page([], 0)
    total, hits = await knowledge.search(
        session, terms, audiences=AUDIENCES, boost_category=ticket.category, limit=limit
    )
    return _hits(total, hits)
