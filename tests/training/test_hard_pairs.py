"""The hard pair set in data/pairs/: well-formed, joined to the data, split by time."""

from __future__ import annotations

import json

import pytest

from model.errors import DataError
from training.hard_pairs import LABELS, PATH, as_pairs, load_hard_pairs, split_halves
from training.pairs import REPO, SHARED


def test_the_committed_set_is_well_formed():
    rows = [json.loads(line) for line in PATH.read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 400
    assert len({r["pair_id"] for r in rows}) == len(rows)
    assert all(r["label"] in LABELS and r["reason"].strip() for r in rows)
    assert {r["source"] for r in rows} == {"haikou12345", "teddy2020c"}
    assert len({(r["source"], frozenset((r["a"], r["b"]))) for r in rows}) == len(rows)
    keys = {"pair_id", "source", "a", "b", "label", "reason"}
    assert all(set(r) in (keys, keys | {"drawn"}) for r in rows)  # `drawn`: the grouping links


def test_every_haikou_pair_joins_the_vendored_tickets_and_halves_split_by_time():
    pairs = load_hard_pairs(PATH, REPO / "data" / "haikou12345", None)
    committed = sum('"haikou12345"' in line for line in PATH.read_text().splitlines())
    assert len(pairs) == committed  # no Teddy messages vendored: those are skipped
    earlier = max(max(p.a.time, p.b.time) for p in pairs if p.half == "earlier")
    later = min(max(p.a.time, p.b.time) for p in pairs if p.half == "later")
    assert earlier <= later
    converted = as_pairs(pairs)
    assert {p.split for p in converted} == {"calibration", "evaluation"}
    assert all(p.label == (h.label == "same_event") for p, h in zip(converted, pairs, strict=True))
    assert split_halves(pairs) == pairs


@pytest.mark.skipif(not (SHARED / "teddy2020c").is_dir(), reason="needs ../shared/data (Teddy)")
def test_with_the_shared_data_every_pair_joins():
    from training.pairs import default_sources

    assert len(load_hard_pairs(PATH, *default_sources())) == len(PATH.read_text().splitlines())


@pytest.mark.skipif(not (SHARED / "teddy2020c").is_dir(), reason="needs ../shared/data (Teddy)")
def test_the_hot_issue_links_read_are_teddy_messages_outside_the_set():
    from training.hard_pairs import items
    from training.pairs import default_sources

    haikou, teddy = default_sources()
    ids = {i.id for i in items(haikou, teddy)["teddy2020c"]}
    links = [json.loads(line) for line in (PATH.parent / "hot-issue-links-read.jsonl")
             .read_text(encoding="utf-8").splitlines()]
    in_set = {frozenset((r["a"], r["b"])) for r in map(json.loads, PATH.read_text().splitlines())}
    assert len(links) == 40 and all(r["a"] in ids and r["b"] in ids for r in links)
    assert all(r["label"] in LABELS and r["reason"].strip() for r in links)
    assert all((frozenset((r["a"], r["b"])) in in_set) == ("note" in r) for r in links)


def test_a_bad_label_is_refused(tmp_path):
    bad = tmp_path / "pairs.jsonl"
    bad.write_text(json.dumps({"pair_id": "x", "source": "haikou12345", "a": "1", "b": "2",
                               "label": "maybe", "reason": "?"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="maybe"):
        load_hard_pairs(bad, REPO / "data" / "haikou12345", None)
