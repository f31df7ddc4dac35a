"""What the similarity index is searched with (Query: a complaint being routed) and filled with
(Entry: a registered complaint), built from a complaint and its routing or from a store row."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from model.normalize import text_hash
from model.router import Routing
from model.taxonomy import aware_time
from serving.schemas import ComplaintIn
from serving.store.tables import Complaint

METADATA_KEYS = ("channel", "location")


@dataclass(frozen=True)
class Query:
    """One complaint to search for: its hash, embedding (of `model_version`), time, metadata."""

    id: str | None
    text: str
    text_hash: str
    embedding: np.ndarray | None
    model_version: str | None
    time: datetime
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Entry:
    """One registered complaint for the index; `embedding` is of `model_version` (or None)."""

    id: str
    text: str
    text_hash: str
    time: datetime
    metadata: Mapping[str, str]
    embedding: np.ndarray | None = None
    model_version: str | None = None


def query_of(complaint: ComplaintIn, routing: Routing) -> Query:
    return Query(id=complaint.id, text=complaint.text, text_hash=text_hash(complaint.text),
                 embedding=routing.embedding, model_version=routing.model_version,
                 time=aware_time(complaint.received_at) or datetime.now(UTC),
                 metadata=_metadata(complaint.channel, complaint.location))


def entry_of(row: Complaint, routing: Routing | None = None) -> Entry:
    return Entry(id=row.id, text=row.text, text_hash=row.text_hash,
                 time=row.received_at or row.registered_at,
                 metadata=_metadata(row.channel, row.location),
                 embedding=None if routing is None else routing.embedding,
                 model_version=None if routing is None else routing.model_version)


def _metadata(channel: str | None, location: str | None) -> dict[str, str]:
    return {k: v for k, v in (("channel", channel), ("location", location)) if v}
