"""knowledge base (知识库): articles and their search index

An article keeps its distinct search terms in `search_text` (Latin words and CJK character bigrams, computed by
crm_ticketing.domain.knowledge). SQLite indexes them in an external-content FTS5 table over that column, kept in step
by triggers; the unicode61 tokenizer without diacritic folding takes each space-separated term as one token. On
PostgreSQL a GIN index over `string_to_array(search_text, ' ')` serves `&&` (holds any of the terms), whatever the
database's locale: pg_trgm would need three characters, and most Chinese words have two. No articles are seeded.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 09:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_kit.db

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_INDEX = [
    "CREATE VIRTUAL TABLE knowledge_article_fts USING fts5("
    "search_text, content='knowledge_article', content_rowid='id', tokenize='unicode61 remove_diacritics 0')",
    "CREATE TRIGGER knowledge_article_fts_insert AFTER INSERT ON knowledge_article BEGIN "
    "INSERT INTO knowledge_article_fts(rowid, search_text) VALUES (new.id, new.search_text); END",
    "CREATE TRIGGER knowledge_article_fts_delete AFTER DELETE ON knowledge_article BEGIN "
    "INSERT INTO knowledge_article_fts(knowledge_article_fts, rowid, search_text) "
    "VALUES ('delete', old.id, old.search_text); END",
    "CREATE TRIGGER knowledge_article_fts_update AFTER UPDATE OF search_text ON knowledge_article BEGIN "
    "INSERT INTO knowledge_article_fts(knowledge_article_fts, rowid, search_text) "
    "VALUES ('delete', old.id, old.search_text); "
    "INSERT INTO knowledge_article_fts(rowid, search_text) VALUES (new.id, new.search_text); END",
]
POSTGRES_INDEX = "ix_knowledge_article_search_terms"


def upgrade() -> None:
    op.create_table(
        "knowledge_article",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=True),
        sa.Column("keywords", sa.JSON(), nullable=False),
        sa.Column("audience", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("author", sa.String(length=128), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("helpful", sa.Integer(), nullable=False),
        sa.Column("not_helpful", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", crm_kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("audience IN ('agent', 'public')", name=op.f("ck_knowledge_article_audience")),
        sa.CheckConstraint("status IN ('draft', 'published', 'retired')", name=op.f("ck_knowledge_article_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_article")),
    )
    with op.batch_alter_table("knowledge_article", schema=None) as batch_op:
        batch_op.create_index("ix_knowledge_article_status_audience", ["status", "audience"], unique=False)
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for statement in SQLITE_INDEX:
            op.execute(statement)
    elif dialect == "postgresql":
        op.create_index(
            POSTGRES_INDEX, "knowledge_article", [sa.text("string_to_array(search_text, ' ')")], postgresql_using="gin"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER knowledge_article_fts_{trigger}")
        op.execute("DROP TABLE knowledge_article_fts")
    elif dialect == "postgresql":
        op.drop_index(POSTGRES_INDEX, table_name="knowledge_article")
    with op.batch_alter_table("knowledge_article", schema=None) as batch_op:
        batch_op.drop_index("ix_knowledge_article_status_audience")
    op.drop_table("knowledge_article")
