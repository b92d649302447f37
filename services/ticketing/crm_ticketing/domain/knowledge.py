"""The knowledge base (知识库): the articles agents and customers look answers up in, and the search over them.

The same search on SQLite and PostgreSQL: the database only finds the candidates, the ranking is done here.

- Terms. Text is NFKC-normalised (full-width ＡＢＣ１２ → ABC12) and case-folded. Runs of letters and digits are words
  ("5g", "roaming"); Chinese has no spaces and most of its words are two characters, so a CJK run is cut into
  overlapping character bigrams (光猫红灯 → 光猫 猫红 红灯), and a two-character query (退订) is a term like any
  other; a lone CJK character between other text (SIM卡) is a term of its own.
- Index. An article keeps its distinct terms in `search_text`; SQLite indexes them in an FTS5 table its triggers keep
  in step, PostgreSQL in a GIN index over them as an array (migration 0004). Both match whole terms exactly, so both
  find the same candidates: the published articles holding any term of the query.
- Ranking. BM25 over the candidates, the title weighing 3, the keywords 2 and the body 1. Every article holding a
  query term is a candidate, so a term's document frequency counted among them is its frequency in the whole scope.
"""

from __future__ import annotations

import html
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Text, case, column, func, literal, select, table, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from crm_ticketing.models import KnowledgeArticle
from crm_ticketing.schemas.knowledge import ArticleCreate, ArticleUpdate

PUBLISHED = "published"

MAX_QUERY_TERMS = 32
"""Terms of a query beyond these are dropped: the rest of a long text (a ticket's description) adds cost, not aim."""
MAX_CANDIDATES = 200
"""Articles ranked per search at most: those holding the most query terms. Searches are paged within them."""

FIELD_WEIGHTS = (3, 2, 1)
"""A term in the title counts 3 times, in the keywords twice, in the body once."""
K1 = 1.2
B = 0.75
CATEGORY_BOOST = 1.5
"""Suggestions for a ticket: an article of the ticket's own category scores half as much again."""

SNIPPET_CHARS = 120
SNIPPET_LEAD = 20
"""The snippet starts this many characters before its first match, so the match is read in its sentence."""

FTS_TABLE = "knowledge_article_fts"
_fts = table(FTS_TABLE, column("rowid"), column("search_text"))

# --- terms -------------------------------------------------------------------------------------------------------

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_RUNS = re.compile(rf"(?P<cjk>[{_CJK}]+)|(?P<word>(?:(?![{_CJK}])[^\W_])+)")
MIN_WORD = 2
"""A single letter or digit says nothing on its own ("a", the 5 of "5 G")."""


def _scan(folded: str) -> Iterator[tuple[str, int, int]]:
    """(term, start, end) in normalised text."""
    for run in _RUNS.finditer(folded):
        start, end = run.span()
        if run.lastgroup == "word":
            if end - start >= MIN_WORD:
                yield run.group(), start, end
        elif end - start == 1:
            yield run.group(), start, end
        else:
            for i in range(start, end - 1):
                yield folded[i : i + 2], i, i + 2


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def terms(text: str) -> list[str]:
    """The terms of `text`, in order, repeated as often as they occur."""
    return [term for term, _, _ in _scan(_fold(text))]


@dataclass(frozen=True)
class Token:
    """A term and where it stands in the original text, to highlight it."""

    term: str
    start: int
    end: int


def tokens(text: str) -> list[Token]:
    """The terms of `text` with their places in it: folded character by character, so that each folded character
    still points to the one it came from (NFKC may turn one into several: ㎡ → m2)."""
    folded: list[str] = []
    origin: list[int] = []
    for i, char in enumerate(text):
        piece = _fold(char)
        folded.append(piece)
        origin.extend([i] * len(piece))
    return [Token(term, origin[start], origin[end - 1] + 1) for term, start, end in _scan("".join(folded))]


def query_terms(text: str) -> list[str]:
    """The distinct terms of a query, first come first kept, at most MAX_QUERY_TERMS."""
    return list(dict.fromkeys(terms(text)))[:MAX_QUERY_TERMS]


def _fields(title: str, keywords: Sequence[str], body: str) -> tuple[str, str, str]:
    """Keywords one per line, so no bigram spans two of them."""
    return title, "\n".join(keywords), body


def index_text(title: str, keywords: Sequence[str], body: str) -> str:
    """What `search_text` holds: the article's distinct terms, separated by spaces."""
    return " ".join(sorted({term for text in _fields(title, keywords, body) for term in terms(text)}))


# --- ranking -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Document:
    """An article as the ranking sees it: how often each term occurs, and its length, both weighted by field."""

    tf: Counter[str]
    length: int


def document(title: str, keywords: Sequence[str], body: str) -> Document:
    tf: Counter[str] = Counter()
    length = 0
    for weight, text in zip(FIELD_WEIGHTS, _fields(title, keywords, body), strict=True):
        found = terms(text)
        length += weight * len(found)
        for term in found:
            tf[term] += weight
    return Document(tf, length)


def rank(query: Collection[str], documents: Mapping[int, Document], population: int) -> dict[int, float]:
    """BM25 of each document for the distinct `query` terms. `documents` must hold every document of the scope that
    has any of them (so document frequencies are counted among them); `population` is the size of the scope."""
    if not documents:
        return {}
    n = max(population, len(documents))
    average = sum(d.length for d in documents.values()) / len(documents) or 1.0
    idf = {}
    for term in query:
        df = sum(term in d.tf for d in documents.values())
        idf[term] = math.log(1 + (n - df + 0.5) / (df + 0.5))
    scores = {}
    for key, d in documents.items():
        norm = K1 * (1 - B + B * d.length / average)
        scores[key] = sum(idf[t] * d.tf[t] * (K1 + 1) / (d.tf[t] + norm) for t in query if d.tf[t])
    return scores


def snippet(body: str, query: Collection[str]) -> str:
    """SNIPPET_CHARS of `body` around the stretch where most distinct query terms meet, HTML-escaped (an article is
    text, and the snippet is meant to be shown as HTML), the matches in <mark>, on one line; "…" where cut."""
    hits = [t for t in tokens(body) if t.term in query]
    start = 0
    if hits:
        best, most, seen, j = 0, 0, Counter[str](), 0
        for i, hit in enumerate(hits):
            while j < len(hits) and hits[j].end <= hit.start + SNIPPET_CHARS:
                seen[hits[j].term] += 1
                j += 1
            if len(seen) > most:
                best, most = i, len(seen)
            seen[hit.term] -= 1
            if not seen[hit.term]:
                del seen[hit.term]
        start = max(0, hits[best].start - SNIPPET_LEAD)
    end = min(len(body), start + SNIPPET_CHARS)
    start = max(0, min(start, end - SNIPPET_CHARS))
    marks: list[list[int]] = []
    for hit in hits:
        if hit.start >= start and hit.end <= end:
            if marks and hit.start <= marks[-1][1]:
                marks[-1][1] = max(marks[-1][1], hit.end)
            else:
                marks.append([hit.start, hit.end])
    pieces, at = [], start
    for mark_start, mark_end in marks:
        pieces.append(_plain(body[at:mark_start]))
        pieces.append(f"<mark>{_plain(body[mark_start:mark_end])}</mark>")
        at = mark_end
    pieces.append(_plain(body[at:end]))
    return ("…" if start else "") + "".join(pieces).strip() + ("…" if end < len(body) else "")


def _plain(text: str) -> str:
    return html.escape(re.sub(r"\s+", " ", text), quote=False)


# --- articles ----------------------------------------------------------------------------------------------------


async def create_article(session: AsyncSession, body: ArticleCreate, *, author: str, now: datetime) -> KnowledgeArticle:
    article = KnowledgeArticle(
        title=body.title,
        body=body.body,
        category=body.category,
        keywords=body.keywords,
        audience=body.audience,
        status=body.status,
        author=author,
        search_text=index_text(body.title, body.keywords, body.body),
        helpful=0,
        not_helpful=0,
        version=1,
        created_at=now,
        updated_at=now,
    )
    session.add(article)
    await session.flush()
    return article


async def patch_article(
    session: AsyncSession, article: KnowledgeArticle, patch: ArticleUpdate, *, now: datetime
) -> None:
    """Apply a merge-patch to the (locked) article: its terms follow its text, its version goes up by one."""
    for name in patch.model_fields_set:
        setattr(article, name, getattr(patch, name))
    article.search_text = index_text(article.title, article.keywords, article.body)
    article.version += 1
    article.updated_at = max(now, article.updated_at)
    await session.flush()


async def delete_article(session: AsyncSession, article: KnowledgeArticle) -> None:
    await session.delete(article)
    await session.flush()


async def record_feedback(session: AsyncSession, article_id: int, *, helpful: bool) -> tuple[int, int]:
    """Count one answer to "was this helpful?" in the database itself, so concurrent answers all count; the tallies
    (helpful, not helpful) after it. Not a change of the article: neither its version nor its lastUpdate move."""
    counter = KnowledgeArticle.helpful if helpful else KnowledgeArticle.not_helpful
    tally = await session.execute(
        update(KnowledgeArticle)
        .where(KnowledgeArticle.id == article_id)
        .values({counter: counter + 1})
        .returning(KnowledgeArticle.helpful, KnowledgeArticle.not_helpful)
    )
    helpful_count, not_helpful_count = tally.one()
    return helpful_count, not_helpful_count


async def list_articles(
    session: AsyncSession, where: Sequence[ColumnElement[bool]], *, offset: int, limit: int
) -> tuple[int, list[KnowledgeArticle]]:
    """Articles as their authors manage them, most recently changed first; the total and a page."""
    total = await session.scalar(select(func.count()).select_from(KnowledgeArticle).where(*where)) or 0
    page = await session.scalars(
        select(KnowledgeArticle)
        .options(defer(KnowledgeArticle.search_text))
        .where(*where)
        .order_by(KnowledgeArticle.updated_at.desc(), KnowledgeArticle.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return total, list(page)


# --- search ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    article: KnowledgeArticle
    score: float
    snippet: str


def _holding_any(dialect: str, query: Sequence[str]) -> ColumnElement[bool]:
    """Articles holding any of the terms, through the index: FTS5 on SQLite, the GIN array index on PostgreSQL."""
    if dialect == "sqlite":
        expression = " OR ".join(f'"{term}"' for term in query)  # terms are letters and digits: no quote to escape
        return KnowledgeArticle.id.in_(select(_fts.c.rowid).where(_fts.c.search_text.match(expression)))
    held = func.string_to_array(KnowledgeArticle.search_text, literal(" ", literal_execute=True), type_=ARRAY(Text))
    return held.overlap(literal(list(query), ARRAY(Text)))


def _terms_held(query: Sequence[str]) -> ColumnElement[Any]:
    """How many of the terms an article holds, the same on both databases: it picks the candidates ranked."""
    padded = " " + KnowledgeArticle.search_text + " "
    return sum((case((padded.like(f"% {term} %"), 1), else_=0) for term in query), literal(0))


async def search(
    session: AsyncSession,
    query: Sequence[str],
    *,
    audiences: Sequence[str],
    category: str | None = None,
    boost_category: str | None = None,
    offset: int = 0,
    limit: int = 20,
) -> tuple[int, list[Hit]]:
    """Published articles for `audiences` (and of `category`) holding the query's terms, best first (ties: oldest
    first): how many were ranked, and the page. `boost_category`: the category of the ticket suggestions are for."""
    where = [KnowledgeArticle.status == PUBLISHED, KnowledgeArticle.audience.in_(audiences)]
    if category is not None:
        where.append(KnowledgeArticle.category == category)
    dialect = session.get_bind().dialect.name
    candidates = list(
        await session.scalars(
            select(KnowledgeArticle)
            .options(defer(KnowledgeArticle.search_text))
            .where(*where, _holding_any(dialect, query))
            .order_by(_terms_held(query).desc(), KnowledgeArticle.id)
            .limit(MAX_CANDIDATES)
        )
    )
    population = await session.scalar(select(func.count()).select_from(KnowledgeArticle).where(*where)) or 0
    scores = rank(query, {a.id: document(a.title, a.keywords, a.body) for a in candidates}, population)
    if boost_category is not None:
        scores = {a.id: scores[a.id] * (CATEGORY_BOOST if a.category == boost_category else 1) for a in candidates}
    ranked = sorted(candidates, key=lambda a: (-scores[a.id], a.id))
    terms_wanted = set(query)
    page = [Hit(a, round(scores[a.id], 4), snippet(a.body, terms_wanted)) for a in ranked[offset : offset + limit]]
    return len(ranked), page
