"""`huying train`: dataset → fine-tuned encoder → ONNX (gated) → calibration → bundle.

    huying train data/datasets/haikou12345.yaml --preset quick --out bundles/
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from model import probes
from model.bundle import DUPLICATES, LEXICAL, Bundle, write_bundle
from model.calibration import Calibration, softmax
from model.errors import BundleError, DataError, HuyingError
from model.lexical import Lexical
from model.lexical_heads import FILE as LEXICAL_HEADS
from model.lexical_heads import LexicalHeads, fuse
from model.normalize import normalize_text
from model.probes import N_PROBES, PROBES
from model.router import Router
from training.calibration import fit_calibration
from training.datasets import Dataset, Record, data_hash, load_dataset
from training.export import check_parity, check_quantization, export_onnx
from training.finetune import FinetuneConfig, FinetuneResult, finetune, label_ids, label_spaces
from training.lexical_heads import choose_fusion, fit_lexical_heads
from training.quantize import activation_ranges, quantize_int8

# Dispatch is about the department: `auto` when it is confident enough to send the case there.
DECISION_HEADS = ("department",)
CALIBRATION_TEXTS = 256  # train texts that measure the int8 export's activation ranges


@dataclass(frozen=True)
class BuildOptions:
    precision: str = "int8"  # or fp32
    target_precision: float = 0.95
    decision_heads: tuple[str, ...] = DECISION_HEADS
    version: str | None = None
    # After choosing epochs, fusion and calibration on dev, refit the encoder and the n-gram part
    # on train + dev (test stays held out) and serve that: every labelled row the user has.
    final: bool = False
    # The duplicate threshold kept in the bundle: chosen on these labelled pairs (JSONL), or on
    # pairs built from the vendored data when None; False skips it (the server's defaults).
    calibrate_duplicates: bool = True
    duplicate_pairs: Path | None = None

    def __post_init__(self) -> None:
        if self.precision not in ("int8", "fp32"):
            raise DataError(f"precision must be int8 or fp32, got {self.precision!r}")
        if not 0.5 <= self.target_precision < 1.0:
            raise DataError(f"target precision must be in [0.5, 1), got {self.target_precision}")


def build_router(dataset: Dataset | str | Path, config: FinetuneConfig, out_dir: Path,
                 options: BuildOptions = BuildOptions(), run_dir: Path | None = None) -> Bundle:
    """Train, export, gate, calibrate and write a bundle into `out_dir/<version>`.

    `run_dir` (default `runs/<version>`) keeps what the bundle does not ship: the resumable
    checkpoint while training, then the torch weights and the fp32 ONNX graph for benchmarks."""
    if not isinstance(dataset, Dataset):
        dataset = load_dataset(dataset)
    splits = dataset.split()
    train, dev = splits.get("train", []), splits.get("dev", [])
    if not train or not dev:
        raise DataError(f"dataset {dataset.config.name} needs non-empty train and dev splits "
                        f"(got {len(train)} and {len(dev)}); set `splits` in its YAML")
    all_spaces = {h: dataset.taxonomy.labels(h) for h in dataset.heads}
    spaces = label_spaces(train, all_spaces)
    version = options.version or f"{dataset.config.name}-{datetime.now():%Y%m%d-%H%M%S}"
    run = Path(run_dir or Path("runs") / version)
    run.mkdir(parents=True, exist_ok=True)

    result = finetune(train, dev, spaces, config, checkpoint_dir=run)
    refit = None
    if options.final:
        print(f"final fit: {result.best_epoch} epochs (the best on dev) over train + dev, "
              f"{len(train) + len(dev)} rows", flush=True)
        refit = finetune([*train, *dev], [], spaces,
                         replace(config, epochs=max(1, result.best_epoch), min_steps=0),
                         checkpoint_dir=run / "final")
    save_torch(refit or result, run / "torch.pt")
    bundle = package_router(result, dataset, splits, out_dir / version, run, options, refit)
    for checkpoint in (run / "checkpoint.pt", run / "final" / "checkpoint.pt"):
        checkpoint.unlink(missing_ok=True)  # only for resuming an unfinished run
    return bundle


def package_router(result: FinetuneResult, dataset: Dataset, splits: Mapping[str, list[Record]],
                   path: Path, run: Path, options: BuildOptions,
                   refit: FinetuneResult | None = None) -> Bundle:
    """Export, gate, calibrate, measure and write the bundle of a fine-tuned model.

    Fusion weights and calibration are always fitted on dev predictions of models that never saw
    dev (`result` and an n-gram part fitted on train). With `refit` (the same recipe trained on
    train + dev) those choices carry over to the refitted parts, which are what the bundle serves;
    its dev figures would then be in-sample, so only test is measured."""
    started = time.monotonic()
    train, dev, spaces, version = splits["train"], splits["dev"], result.spaces, path.name
    served, fit_rows = refit or result, [*train, *dev] if refit else train
    heads = list(spaces)
    staging = Path(tempfile.mkdtemp(prefix="huying-export-"))
    try:
        model_file, gates = _export(served, heads, dev, train, staging, options)
        shutil.copyfile(staging / "model.fp32.onnx", run / "model.fp32.onnx")
        dev_targets = {h: t.numpy() for h, t in label_ids(dev, spaces).items()}
        encoder_dev = (TorchPredictor(result).logits([r.text for r in dev]) if refit
                       else _onnx_logits(model_file, result, heads, dev))
        # the char n-gram part, trained on train like the encoder; fused by weights chosen on dev
        lexical_heads = fit_lexical_heads(train, spaces)
        lexical_dev = lexical_heads.scores([normalize_text(r.text) for r in dev])
        fusion, parts = choose_fusion(encoder_dev, lexical_dev, dev_targets)
        dev_logits = fuse(encoder_dev, lexical_dev, fusion)
        train_targets = {h: t.numpy() for h, t in label_ids(train, spaces).items()}
        support = {h: np.bincount(t[t >= 0], minlength=len(spaces[h]))
                   for h, t in train_targets.items()}
        calibration = fit_calibration(dev_logits, dev_targets,
                                      [h for h in options.decision_heads if h in heads] or heads,
                                      options.target_precision, parts=(encoder_dev, lexical_dev),
                                      support=support)
        if refit:
            lexical_heads = fit_lexical_heads(fit_rows, spaces)
        lexical_heads.save(staging / LEXICAL_HEADS)
        manifest = {
            "version": version, "heads": heads, "spaces": {h: list(s) for h, s in spaces.items()},
            "max_length": result.config.max_length, "prefix": result.config.prefix,
            "pad_id": int(result.tokenizer.pad_token_id or 0),
            "precision": gates["precision"], "base_encoder": result.config.base,
            "dataset": dataset.config.name, "data_hash": data_hash(train + dev),
            "splits": {k: len(v) for k, v in splits.items()},
            "training": served.config.to_dict(), "history": served.history,
            "training_seconds": round(result.seconds + (refit.seconds if refit else 0.0), 1),
            "gates": gates, "fusion": fusion, "parts_dev_accuracy": parts,
        }
        if refit:
            manifest["final_fit"] = {"rows": len(fit_rows), "epochs": refit.best_epoch,
                                     "selection_history": result.history}
        tokenizer_file = staging / "tokenizer.json"
        result.tokenizer.backend_tokenizer.save(str(tokenizer_file))
        lexical = Lexical.fit(r.text for r in fit_rows)  # duplicate similarity's lexical half
        files: dict[str, Path | str | bytes] = {"model.onnx": model_file, "tokenizer.json": tokenizer_file,
                 LEXICAL_HEADS: staging / LEXICAL_HEADS,
                 LEXICAL: json.dumps(lexical.to_dict(), ensure_ascii=False)}
        # Two phases: the metrics are measured through the Router on the written bundle, exactly as
        # served, then the final bundle is written with them.
        draft = write_bundle(staging / "draft", manifest=manifest, files=files,
                             taxonomy=dataset.taxonomy, calibration=calibration, metrics={},
                             model_card="draft")
        draft_router = Router(draft)
        measured = {k: v for k, v in splits.items() if not (refit and k == "dev")}
        metrics = summary_metrics(draft_router, measured, spaces, calibration)
        files[PROBES] = json.dumps(probes.record(draft_router, [r.text for r in dev[:N_PROBES]]),
                                   ensure_ascii=False)
        if options.calibrate_duplicates and (thresholds := _duplicate_thresholds(
                draft_router, options.duplicate_pairs)):
            files[DUPLICATES] = json.dumps(thresholds, ensure_ascii=False, indent=1)
        metrics["seconds_packaging"] = round(time.monotonic() - started, 1)
        bundle = write_bundle(path, manifest=manifest, files=files,
                              taxonomy=dataset.taxonomy, calibration=calibration, metrics=metrics,
                              model_card=model_card(manifest, metrics, calibration))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return bundle


def _duplicate_thresholds(router: Router, pairs: Path | None) -> dict[str, Any] | None:
    """The bundle's same-event threshold: its similarity has its own scale."""
    from training.duplicates import calibrate

    print("calibrating the duplicate threshold on real follow-up and repeat pairs ...", flush=True)
    try:
        record = calibrate(router, pairs)
    except HuyingError as exc:
        print(f"duplicate threshold not calibrated ({exc}); the server uses its defaults",
              flush=True)
        return None
    e = record["evaluation"]
    print(f"duplicates: same-event threshold {record['same_event']:.3f}; on {e['pairs']} held-out "
          f"pairs precision {e['precision']:.3f}, recall {e['recall']:.3f}, AP "
          f"{e['average_precision']:.3f} (char TF-IDF baseline AP "
          f"{record['baseline_average_precision']:.3f})", flush=True)
    return record


def save_torch(result: FinetuneResult, path: Path) -> None:
    import torch

    torch.save({"config": result.config.to_dict(), "spaces": result.spaces,
                "model": result.model.state_dict()}, path)


def load_torch(path: Path) -> Any:
    """The fine-tuned torch model saved by `build_router` (for benchmarks and comparisons)."""
    import torch

    from training.finetune import MultiHeadModel, load_encoder

    saved = torch.load(path, map_location="cpu", weights_only=False)
    config = FinetuneConfig(**saved["config"])
    encoder, tokenizer, _ = load_encoder(config)
    model = MultiHeadModel(encoder, {h: len(s) for h, s in saved["spaces"].items()})
    model.load_state_dict(saved["model"])
    return model.eval(), tokenizer, config


def _export(result: FinetuneResult, heads: list[str], dev: Sequence[Record],
            train: Sequence[Record], staging: Path, options: BuildOptions
            ) -> tuple[Path, dict[str, Any]]:
    """The fp32 graph, checked against torch, then its int8 version (smoothing measured on
    train texts), kept only if it passes the accuracy gate on dev."""
    fp32 = staging / "model.fp32.onnx"
    export_onnx(result.model, heads, fp32)
    ids, mask = _encode(result, [r.text for r in dev[:16]])
    gates: dict[str, Any] = {"onnx_vs_torch_max_abs_diff": check_parity(result.model, heads, fp32,
                                                                        ids, mask)}
    if options.precision == "fp32":
        gates["precision"] = "fp32"
        return fp32, gates
    int8 = staging / "model.onnx"
    calibration = [_encode(result, [r.text for r in train[i:i + 32]])
                   for i in range(0, min(len(train), CALIBRATION_TEXTS), 32)]
    quantize_int8(fp32, int8, activation_ranges(fp32, calibration))
    targets = {h: t.numpy() for h, t in label_ids(dev, result.spaces).items()}
    try:
        loss = check_quantization(_onnx_logits(fp32, result, heads, dev),
                                  _onnx_logits(int8, result, heads, dev), targets)
    except BundleError as exc:  # the next acceptable export, said out loud
        print(f"int8 export refused ({exc}); the bundle is exported in fp32 instead", flush=True)
        gates["int8_refused"] = str(exc)
        gates["precision"] = "fp32"
        return fp32, gates
    gates["int8_accuracy_loss_on_dev"] = {h: round(v, 4) for h, v in loss.items()}
    gates["precision"] = "int8"
    return int8, gates


def _encode(result: FinetuneResult, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    enc = result.tokenizer([result.config.prefix + t for t in texts], truncation=True,
                           max_length=result.config.max_length, padding=True,
                           return_tensors="np")
    return enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)


def _onnx_logits(path: Path, result: FinetuneResult, heads: list[str],
                 records: Sequence[Record]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out: dict[str, list[np.ndarray]] = {h: [] for h in heads}
    for start in range(0, len(records), 64):
        ids, mask = _encode(result, [r.text for r in records[start:start + 64]])
        values = session.run(None, {"input_ids": ids, "attention_mask": mask})
        for h, v in zip(heads, values, strict=False):
            out[h].append(v)
    return {h: np.concatenate(v) for h, v in out.items()}


def summary_metrics(router: Router, splits: Mapping[str, Sequence[Record]],
                    spaces: Mapping[str, Sequence[str]], calibration: Calibration
                    ) -> dict[str, Any]:
    """Accuracy, top-3 and the auto share/precision per split, measured through the Router."""
    out: dict[str, Any] = {}
    for name in ("dev", "test"):
        records = splits.get(name) or []
        if not records:
            continue
        routings = router.route([r.text for r in records])
        split: dict[str, Any] = {"rows": len(records)}
        for head in spaces:
            pairs = [(r.labels[head], x.heads[head]) for r, x in zip(records, routings, strict=True)
                     if head in r.labels]
            if pairs:
                split[head] = {
                    "accuracy": round(float(np.mean([g == p.label for g, p in pairs])), 4),
                    "top3_accuracy": round(float(np.mean(
                        [g in [lab for lab, _ in p.top] for g, p in pairs])), 4),
                    "rows": len(pairs)}
        auto = [(r, x) for r, x in zip(records, routings, strict=True) if x.decision == "auto"]
        correct = [all(r.labels.get(h) in (None, x.heads[h].label)
                       for h in calibration.decision_heads) for r, x in auto]
        split["auto_share"] = round(len(auto) / len(records), 4)
        split["auto_precision"] = round(float(np.mean(correct)), 4) if correct else None
        out[name] = split
    return out


def model_card(manifest: Mapping[str, Any], metrics: Mapping[str, Any],
               calibration: Calibration) -> str:
    lines = [f"# Huying router {manifest['version']}", "",
             f"Routes complaints of the `{manifest['dataset']}` duty list into "
             f"{', '.join(manifest['heads'])}.", "",
             "## Training",
             f"- base encoder: `{manifest['base_encoder']}`",
             f"- preset `{manifest['training']['preset']}`: {manifest['training']['layers']} "
             f"layers, {manifest['training']['frozen_layers']} frozen, max length "
             f"{manifest['training']['max_length']}, {len(manifest['history'])} epochs run",
             f"- data hash `{manifest['data_hash']}`, split sizes {manifest['splits']}",
             f"- training time {manifest['training_seconds']} s; export precision "
             f"{manifest['precision']}; gates {manifest['gates']}"]
    if final := manifest.get("final_fit"):
        lines.append(f"- final fit on train + dev ({final['rows']} rows, {final['epochs']} epochs, "
                     "the best on dev); fusion and calibration from the dev predictions of the "
                     "fit that never saw dev; dev accuracy would be in-sample and is not reported")
    lines += ["", "## Accuracy (measured through the served Router)", "",
              "| split | head | accuracy | top-3 | rows |", "| --- | --- | --- | --- | --- |"]
    for split in ("dev", "test"):
        for head in manifest["heads"]:
            m = metrics.get(split, {}).get(head)
            if m:
                lines.append(f"| {split} | {head} | {m['accuracy']:.3f} | {m['top3_accuracy']:.3f} "
                             f"| {m['rows']} |")
    rules = [f"{h}: its decision model's P(correct) ≥ {calibration.decision_models[h].threshold:.3f}"
             if h in calibration.decision_models else f"{h}: above per-class thresholds"
             for h in calibration.decision_heads]
    lines += ["", "## Decisions",
              f"`auto` needs {'; '.join(rules)} (chosen on dev for precision "
              f"{calibration.target_precision:.2f}). Temperatures: "
              + ", ".join(f"{h} {t:.2f}" for h, t in calibration.temperatures.items()) + "."]
    for split in ("dev", "test"):
        if split in metrics:
            m = metrics[split]
            lines.append(f"- {split}: {m['auto_share']:.1%} auto, precision of auto "
                         f"{m['auto_precision']}")
    lines += ["", "## Limits",
              "Labels in the source data are noisy (identical texts disagree on the category about "
              "a quarter of the time), so accuracy has a ceiling well below 100%. Rare classes are "
              "learned poorly; their predictions go to review. Route only text written by the "
              "citizen: operator instructions are stripped by the normaliser.", ""]
    return "\n".join(lines)


class TorchPredictor:
    """A fine-tuned model before export, as a Predictor (cross-validation needs no ONNX); with
    `lexical` and `fusion`, the hybrid router: the char n-gram part fused as served."""

    def __init__(self, result: FinetuneResult, lexical: LexicalHeads | None = None,
                 fusion: Mapping[str, Mapping[str, float]] | None = None):
        self.result, self.spaces = result, result.spaces
        self.lexical, self.fusion = lexical, dict(fusion or {})
        self.name = "fine-tuned encoder (torch)" + (" + char n-grams" if lexical else "")

    def logits(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        import torch

        out: dict[str, list[np.ndarray]] = {h: [] for h in self.spaces}
        self.result.model.eval()
        with torch.no_grad():
            for start in range(0, len(texts), 32):
                ids, mask = _encode(self.result, texts[start:start + 32])
                logits, _ = self.result.model(torch.from_numpy(ids), torch.from_numpy(mask))
                for h, v in logits.items():
                    out[h].append(v.numpy())
        encoder = {h: np.concatenate(v) for h, v in out.items()}
        if self.lexical is None:
            return encoder
        return fuse(encoder, self.lexical.scores([normalize_text(t) for t in texts]),
                    self.fusion)

    def predict_proba(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        return {h: softmax(v) for h, v in self.logits(texts).items()}


def router_fitter(config: FinetuneConfig, dev_share: float = 0.1) -> Any:
    """`fit` for cross-validation: fine-tune on a fold, early-stopping on a slice of that fold
    (never on the held-out fold)."""

    def fit(records: list[Record], spaces: Mapping[str, Sequence[str]]) -> TorchPredictor:
        ordered = sorted(records, key=lambda r: r.text_hash)  # deterministic, repeats together
        cut = max(1, int(len(ordered) * dev_share))
        dev, train = ordered[:cut], ordered[cut:]
        fold_spaces = label_spaces(train, spaces)
        encoder = TorchPredictor(finetune(train, dev, fold_spaces, config))
        lexical = fit_lexical_heads(train, fold_spaces)
        targets = {h: t.numpy() for h, t in label_ids(dev, fold_spaces).items()}
        fusion, _ = choose_fusion(encoder.logits([r.text for r in dev]),
                                  lexical.scores([normalize_text(r.text) for r in dev]), targets)
        return TorchPredictor(encoder.result, lexical, fusion)

    return fit
