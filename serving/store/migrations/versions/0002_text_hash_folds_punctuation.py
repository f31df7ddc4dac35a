"""Recompute complaints.text_hash: the hash now folds punctuation, symbols and spaces.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from model.normalize import text_hash

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_complaints = sa.table("complaints", sa.column("id", sa.String), sa.column("text", sa.Text),
                       sa.column("text_hash", sa.String))


def upgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(sa.select(_complaints.c.id, _complaints.c.text)).all()
    for id_, text in rows:
        connection.execute(_complaints.update().where(_complaints.c.id == id_)
                           .values(text_hash=text_hash(text)))


def downgrade() -> None:
    """The old hash (without folding) is not recomputed: exact repeats then differ only where
    punctuation differed, which the old code also missed."""
