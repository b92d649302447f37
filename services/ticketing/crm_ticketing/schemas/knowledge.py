"""Knowledge-base (知识库) shapes: the articles agents and the self-service channel look answers up in, a search hit
with its score and highlighted snippet, and the was-this-helpful feedback."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import (
    AfterValidator,
    AwareDatetime,
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
    model_validator,
)

from crm_kit.shapes import TmfModel
from crm_ticketing.schemas.trouble_ticket import Category, TmfBody

Audience = Literal["agent", "public"]
"""agent: internal (内部口径, e.g. how to waive a fee); public: also shown to customers in the app and web self-service
(自助服务)."""
AUDIENCES: tuple[Audience, ...] = get_args(Audience)

ArticleStatus = Literal["draft", "published", "retired"]
"""草稿, 已发布, 已下线: only published articles are searched; an article moves between them freely through PATCH."""
ARTICLE_STATUSES: tuple[ArticleStatus, ...] = get_args(ArticleStatus)

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Body = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20_000)]
Keyword = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]

_SERVER_KEEPS = {
    "id": "assigned on create",
    "href": "derived from the id",
    "author": "the authenticated caller who creates the article",
    "version": "raised by every change",
    "helpful": "counted from feedback",
    "notHelpful": "counted from feedback",
    "creationDate": "the time the article was created",
    "lastUpdate": "the time of the last change",
}


def _distinct(keywords: list[str]) -> list[str]:
    """Keywords are matched case-insensitively, so 'WiFi' and 'wifi' are one: the first spelling is kept."""
    seen: set[str] = set()
    kept = []
    for keyword in keywords:
        if keyword.casefold() not in seen:
            seen.add(keyword.casefold())
            kept.append(keyword)
    return kept


Keywords = Annotated[
    list[Keyword],
    Field(max_length=20, description="Search terms the text may not use itself (同义词, e.g. 猫 for 光猫)"),
    AfterValidator(_distinct),
]


class ArticleCreate(TmfBody):
    """A new article, written by a supervisor or an administrator; a draft unless published at once."""

    server_owned: ClassVar[Mapping[str, str]] = _SERVER_KEEPS

    title: Title
    body: Body
    category: Category | None = Field(None, description="The ticket category it answers; null: general (通用)")
    keywords: Keywords = Field(default_factory=list)
    audience: Audience = "agent"
    status: ArticleStatus = "draft"


class ArticleUpdate(TmfBody):
    """A JSON merge-patch (RFC 7396) of an article: a member present is set, one absent is kept; `category` null makes
    it general; `keywords` replaces the list; `status` publishes (发布) or retires (下线) it."""

    server_owned: ClassVar[Mapping[str, str]] = {
        **_SERVER_KEEPS,
        "author": "the article's author does not change",
    }

    title: Title | None = None
    body: Body | None = None
    category: Category | None = None
    keywords: Keywords | None = None
    audience: Audience | None = None
    status: ArticleStatus | None = None

    @field_validator("title", "body", "keywords", "audience", "status", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null: an article always has one; leave it out to keep it as it is")
        return value

    @model_validator(mode="after")
    def _something(self) -> ArticleUpdate:
        if not self.model_fields_set:
            raise ValueError("a patch must change at least one field")
        return self


class Feedback(TmfBody):
    """Whether the article answered the question (有用/没用)."""

    helpful: StrictBool


class KnowledgeArticle(TmfModel):
    id: str
    href: str
    title: str
    body: str
    category: Category | None = None
    keywords: list[str]
    audience: Audience
    status: ArticleStatus
    author: str
    version: int = Field(ge=1, description="1 when created, raised by every change")
    helpful: int = Field(ge=0)
    not_helpful: int = Field(ge=0, alias="notHelpful")
    creation_date: AwareDatetime = Field(alias="creationDate")
    last_update: AwareDatetime = Field(alias="lastUpdate")


SNIPPET_DESCRIPTION = (
    "Part of the body, HTML-escaped, the query's matches in <mark>…</mark>; the body's start when nothing in it matched"
)


class ArticleHit(TmfModel):
    """An article in a list or a search: enough to pick it; the body is one GET away."""

    id: str
    href: str
    title: str
    category: Category | None = None
    keywords: list[str]
    audience: Audience
    status: ArticleStatus
    version: int
    last_update: AwareDatetime = Field(alias="lastUpdate")
    score: float | None = Field(None, description="Relevance to the query, higher first; null when not searched")
    snippet: str = Field(description=SNIPPET_DESCRIPTION)


class Answer(TmfModel):
    """A public article answering a customer's question in the self-service channel (自助服务), whole."""

    id: str
    href: str
    title: str
    category: Category | None = None
    score: float
    snippet: str = Field(description=SNIPPET_DESCRIPTION)
    body: str


class FeedbackTally(TmfModel):
    id: str
    helpful: int
    not_helpful: int = Field(alias="notHelpful")
