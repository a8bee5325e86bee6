"""The patient index's token lookups on PostgreSQL go through a hash index on the token.

At 10M stored tokens the B-tree keyed by (token, record) is about 740 MB, five times PostgreSQL's
default buffer pool, so nearly every one of a lookup's hundred-odd probes read a leaf page from the
operating system's cache and the slowest lookups took several milliseconds in the server alone. A hash
index keeps 4-byte hash codes (a third of the size), answers ``token = ANY(...)`` with one bucket page
per probe through a bitmap scan, and measured p99 1.2 ms against 4.8 ms for the same probes
(``benchmarks/README.md``, "Index lookup").

So that the planner takes the hash index, the primary key now leads with the record,
``(record_id, token)``: it still keeps a token unique within a record and serves replacing and
withdrawing a record's tokens. SQLite keeps its WITHOUT ROWID table keyed by the token (its lookups
seek the table itself) and gets the model's index as an empty partial index (``WHERE 0``): SQLite has
no hash index, and a second B-tree on the token would only duplicate the table.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.create_index("ix_index_token_hash", "index_token", ["token"], sqlite_where=sa.false())
        return
    op.drop_constraint("index_token_pkey", "index_token", type_="primary")
    op.create_primary_key("index_token_pkey", "index_token", ["record_id", "token"])
    op.create_index("ix_index_token_hash", "index_token", ["token"], postgresql_using="hash")


def downgrade() -> None:
    op.drop_index("ix_index_token_hash", table_name="index_token")
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_constraint("index_token_pkey", "index_token", type_="primary")
    op.execute(
        "ALTER TABLE index_token ADD CONSTRAINT index_token_pkey PRIMARY KEY (token, record_id) INCLUDE (variant_id)"
    )
