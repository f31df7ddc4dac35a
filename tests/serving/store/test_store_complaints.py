"""Registered complaints: register, look up, remove; the similarity index is rebuilt from these."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from model.errors import Conflict, InvalidInput, NotFound
from model.normalize import text_hash
from serving.store import service
from serving.store.service import NewComplaint

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_register_look_up_remove_and_register_again(store):
    with store.sessions() as s:
        rows = service.register_complaints(s, [
            NewComplaint("c1", "小区噪音扰民", channel="hotline", location="龙华区",
                         received_at=T0),
            NewComplaint("c2", "路灯不亮"),
        ], actor="intake", model_version="tiny-v1", now=T0)
        assert [r.id for r in rows] == ["c1", "c2"]
        c1 = service.get_complaint(s, "c1")
        assert (c1.text_hash, c1.channel, c1.location, c1.received_at, c1.registered_at) == (
            text_hash("小区噪音扰民"), "hotline", "龙华区", T0, T0)
        with pytest.raises(Conflict, match="already registered: c1"):
            service.register_complaints(s, [NewComplaint("c1", "again")], actor="intake")
        removed = service.remove_complaint(s, "c1", actor="intake", now=T0)
        assert removed.removed and removed.removed_at == T0
        assert service.remove_complaint(s, "c1", actor="intake").removed_at == T0  # idempotent
        with pytest.raises(NotFound, match="removed"):
            service.get_complaint(s, "c1")
        assert service.get_complaint(s, "c1", include_removed=True).removed
        assert [c.id for c in service.registered_complaints(s)] == ["c2"]
        [again] = service.register_complaints(s, [NewComplaint("c1", "新的文本")], actor="intake")
        assert not again.removed and again.text == "新的文本"
        assert {c.id for c in service.registered_complaints(s)} == {"c1", "c2"}
        with pytest.raises(NotFound):
            service.remove_complaint(s, "nope", actor="intake")


def test_bad_batches_are_refused(store):
    with store.sessions() as s:
        with pytest.raises(InvalidInput, match="repeat") as err:
            service.register_complaints(s, [NewComplaint("a", "x"), NewComplaint("a", "y")],
                                        actor="intake")
        assert err.value.field == "id"
        with pytest.raises(InvalidInput) as err:
            service.register_complaints(s, [NewComplaint("b", "")], actor="intake")
        assert err.value.field == "text"
    assert store.rows("complaints") == []
