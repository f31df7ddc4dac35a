"""A bundle: one self-describing directory per model version, refusing to load if its parts disagree.

    bundle.json       manifest: version, heads, label spaces, tokenisation, base encoder, data hash,
                      training config, and the sha256 of every other file
    model.onnx        per-head logits + pooled, L2-normalised embedding (int8 by default)
    tokenizer.json    the `tokenizers` tokenizer the model was trained with
    taxonomy.json     snapshot of the duty list the model routes into
    calibration.json  temperatures, per-class thresholds, decision heads and models
    metrics.json      evaluation on dev/test, beside the baseline
    model_card.md     what it is, what it was trained on, how good it is, its limits
    lexical.json      char n-gram document frequencies of the training texts, for duplicate
                      similarity (model/lexical.py); bundles without it compare embeddings only
    lexical_heads.npz the router's char n-gram linear part, fused with the encoder's logits by the
                      manifest's `fusion` weights (model/lexical_heads.py); absent: encoder only
    probes.json       dev texts and the answers this bundle gave for them, checked again before
                      it serves (model/probes.py)
    duplicates.json   the same-event threshold and floor of this bundle's duplicate similarity
                      (its own scale), chosen on labelled pairs when it was trained; absent: the
                      server's defaults
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from model.calibration import Calibration
from model.errors import BundleError, TaxonomyError
from model.lexical import Lexical
from model.lexical_heads import FILE as LEXICAL_HEADS
from model.lexical_heads import LexicalHeads
from model.probes import PROBES
from model.taxonomy import Taxonomy

FORMAT = 1
MANIFEST = "bundle.json"
LEXICAL = "lexical.json"
DUPLICATES = "duplicates.json"
PARTS = ("model.onnx", "tokenizer.json", "taxonomy.json", "calibration.json", "metrics.json",
         "model_card.md")


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: dict[str, Any]
    taxonomy: Taxonomy
    calibration: Calibration
    metrics: dict[str, Any]

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def heads(self) -> tuple[str, ...]:
        return tuple(self.manifest["heads"])

    @property
    def spaces(self) -> dict[str, tuple[str, ...]]:
        return {h: tuple(self.manifest["spaces"][h]) for h in self.heads}

    @property
    def model_path(self) -> Path:
        return self.path / "model.onnx"

    @property
    def tokenizer_path(self) -> Path:
        return self.path / "tokenizer.json"

    def probes(self) -> dict[str, Any] | None:
        """The recorded probe texts and answers (model/probes.py); None for older bundles."""
        path = self.path / PROBES
        return _read_json(path) if path.is_file() else None

    def lexical_heads(self) -> LexicalHeads | None:
        """The char n-gram part of the router (model/lexical_heads.py); None: encoder only."""
        path = self.path / LEXICAL_HEADS
        return LexicalHeads.load(path) if path.is_file() else None

    def duplicate_thresholds(self) -> dict[str, Any] | None:
        """The calibrated same-event threshold and floor (training/duplicates.py `calibrate`)."""
        path = self.path / DUPLICATES
        return _read_json(path) if path.is_file() else None

    def lexical(self) -> Lexical | None:
        path = self.path / LEXICAL
        return Lexical.from_dict(_read_json(path)) if path.is_file() else None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_bundle(path: str | Path, *, verify_hashes: bool = True) -> Bundle:
    """Read a bundle and check that its parts agree; BundleError says which part is wrong."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{path} is not a model bundle: {MANIFEST} is missing "
                          "(train one with `huying train`)")
    manifest = _read_json(manifest_path)
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{manifest_path}: bundle format {manifest.get('format')!r}, this Huying "
                          f"reads format {FORMAT}; retrain or upgrade")
    missing = [p for p in dict.fromkeys([*PARTS, *manifest.get("files", {})])
               if not (path / p).is_file()]
    if missing:
        raise BundleError(f"bundle {path} is missing {', '.join(missing)}")
    if verify_hashes:
        for name, expected in manifest.get("files", {}).items():
            if sha256_file(path / name) != expected:
                raise BundleError(f"bundle {path}: {name} does not match the hash in {MANIFEST} "
                                  "(modified or corrupted after export)")
    try:
        taxonomy = Taxonomy.from_dict(_read_json(path / "taxonomy.json"))
    except TaxonomyError as exc:
        raise BundleError(f"bundle {path}: taxonomy.json is invalid: {exc}") from exc
    try:
        calibration = Calibration.from_dict(_read_json(path / "calibration.json"))
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise BundleError(f"bundle {path}: calibration.json is invalid: {exc!r}") from exc
    bundle = Bundle(path=path, manifest=manifest, taxonomy=taxonomy, calibration=calibration,
                    metrics=_read_json(path / "metrics.json"))
    _check_consistency(bundle)
    return bundle


def _check_consistency(bundle: Bundle) -> None:
    problems = []
    for head, space in bundle.spaces.items():
        unknown = set(space) - set(bundle.taxonomy.labels(head))
        if unknown:
            problems.append(f"{head} labels not in the taxonomy snapshot: {sorted(unknown)[:3]}")
        thresholds = bundle.calibration.thresholds.get(head)
        if thresholds is None or len(thresholds) != len(space):
            problems.append(f"calibration has {0 if thresholds is None else len(thresholds)} "
                            f"thresholds for {head}, the label space has {len(space)}")
        if head not in bundle.calibration.temperatures:
            problems.append(f"calibration has no temperature for {head}")
        model = bundle.calibration.decision_models.get(head)
        if model is not None and (len(model.log_support) != len(space)
                                  or len(model.coefficients) != len(model.FEATURES)):
            problems.append(f"the {head} decision model has {len(model.log_support)} labels and "
                            f"{len(model.coefficients)} coefficients, the label space has "
                            f"{len(space)} labels and it needs {len(model.FEATURES)}")
    extra = set(bundle.calibration.decision_heads) - set(bundle.heads)
    if extra:
        problems.append(f"decision heads {sorted(extra)} are not heads of this model")
    if problems:
        raise BundleError(f"bundle {bundle.path} is inconsistent: " + "; ".join(problems))


def write_bundle(path: Path, *, manifest: dict[str, Any], files: dict[str, Path | str | bytes],
                 taxonomy: Taxonomy, calibration: Calibration, metrics: dict[str, Any],
                 model_card: str) -> Bundle:
    """Write a bundle atomically (temp directory, then rename) and load it back as a check."""
    path = Path(path)
    if path.exists():
        raise BundleError(f"{path} exists; bundles are immutable, choose a new version directory")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for name, source in files.items():
            if isinstance(source, bytes):
                (tmp / name).write_bytes(source)
            elif isinstance(source, str):
                (tmp / name).write_text(source, encoding="utf-8")
            else:
                shutil.copyfile(source, tmp / name)
        _write_json(tmp / "taxonomy.json", taxonomy.to_dict())
        _write_json(tmp / "calibration.json", calibration.to_dict())
        _write_json(tmp / "metrics.json", metrics)
        (tmp / "model_card.md").write_text(model_card, encoding="utf-8")
        full = {"format": FORMAT, "created": datetime.now(UTC).isoformat(timespec="seconds"),
                **manifest,
                "files": {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}}
        _write_json(tmp / MANIFEST, full)
        load_bundle(tmp)
        tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_bundle(path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path} is not readable JSON: {exc}") from exc


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
