"""The `huying` command line: look at data, rebuild duty lists, train the baseline, evaluate models.

    huying data report data/datasets/haikou12345.yaml
    huying baseline data/datasets/haikou12345.yaml --out runs/baseline-haikou
    huying evaluate --model runs/baseline-haikou --dataset data/datasets/haikou12345.yaml \\
        --split test --out runs/eval-baseline-test
    huying replies seed ../shared/data/teddy2020c/messages-with-replies-fj4.jsonl

Heavy libraries (scikit-learn, matplotlib, torch) are imported inside the commands that need them,
so `huying --help` is instant and serving commands run without the training extras.

One module per command group; `cli/` is the only package that imports both `training/` and
`serving/` (tests/test_layering.py).
"""

from cli import data, keys, models, replies, server, train  # noqa: F401  (each registers its commands)
from cli.common import app

__all__ = ["app"]
