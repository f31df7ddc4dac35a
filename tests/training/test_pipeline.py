"""`huying train --final`: choices made on dev, then a refit on train + dev that is served."""

from __future__ import annotations

import numpy as np

from model import probes
from model.router import Router
from training.finetune import FinetuneConfig
from training.pipeline import BuildOptions, build_router


def test_a_final_fit_serves_the_refit_with_the_choices_made_on_dev(tmp_path, haikou_sample,
                                                                     tiny_encoder_dir, capsys):
    splits = haikou_sample.split()
    config = FinetuneConfig.from_preset("tiny", base=str(tiny_encoder_dir), epochs=3, patience=5)
    bundle = build_router(haikou_sample, config, tmp_path / "bundles",
                          BuildOptions(version="final-v1", final=True,
                                       calibrate_duplicates=False), run_dir=tmp_path / "run")

    final = bundle.manifest["final_fit"]
    selection = final["selection_history"]
    scores = [np.mean([v for k, v in e.items() if k.startswith("dev_acc_")]) for e in selection]
    assert final["epochs"] == int(np.argmax(scores)) + 1  # the epochs that were best on dev
    assert final["rows"] == len(splits["train"]) + len(splits["dev"])
    assert len(bundle.manifest["history"]) == final["epochs"]
    assert not any(k.startswith("dev_acc") for e in bundle.manifest["history"] for k in e)
    assert "dev" not in bundle.metrics  # in-sample after the refit: not reported
    assert "final fit on train + dev" in (bundle.path / "model_card.md").read_text()
    assert "final fit:" in capsys.readouterr().out
    probes.check_bundle(bundle.path)
    routed = Router(bundle).route([r.text for r in splits["dev"][:5]])
    assert all(r.decision in ("auto", "review") for r in routed)
