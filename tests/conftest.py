"""Shared fixtures: a tiny encoder and a tiny router bundle, built once per test session."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HAIKOU_YAML = REPO / "data" / "datasets" / "haikou12345.yaml"


@pytest.fixture(scope="session")
def haikou_sample():
    """~600 real Haikou records (all heads) and ~100 older-taxonomy ones (department only)."""
    from training.datasets import load_dataset

    dataset = load_dataset(HAIKOU_YAML)
    rng = random.Random(0)
    current = [r for r in dataset.records if "category" in r.labels]
    older = [r for r in dataset.records if "category" not in r.labels]
    dataset.records = rng.sample(current, 600) + rng.sample(older, 100)
    return dataset


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory, haikou_sample) -> Path:
    from training.encoder import build_tiny_encoder

    return build_tiny_encoder(tmp_path_factory.mktemp("encoder"),
                              [r.text for r in haikou_sample.records])


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, haikou_sample, tiny_encoder_dir):
    """A real bundle (int8 ONNX, calibration, metrics) from the tiny encoder: seconds to build."""
    from training.finetune import FinetuneConfig
    from training.pipeline import BuildOptions, build_router

    config = FinetuneConfig.from_preset("tiny", base=str(tiny_encoder_dir), epochs=1)
    return build_router(haikou_sample, config, tmp_path_factory.mktemp("bundles"),
                        BuildOptions(version="tiny-v1"), run_dir=tmp_path_factory.mktemp("run"))
