"""Model versions, the one owner: bundles on disk, which one is active, promotion through the
retraining gate, rollback, and the history of who changed what and why. `huying models …` and
`POST /v1/admin/model` both go through here.

    bundles/
      ACTIVE                  one line: the version served by default, e.g. `haikou12345-v2`
      HISTORY                 append-only JSON lines: every change of ACTIVE (for rollback)
      haikou12345-v1/         a bundle (model/bundle.py)
      haikou12345-v2/
      comparisons/<version>/  the gate's verdict when `huying retrain` made that version
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from model import probes
from model.bundle import MANIFEST
from model.errors import BundleError, Conflict, DataError, InvalidInput, NotFound

ACTIVE_FILE = "ACTIVE"
HISTORY_FILE = "HISTORY"
COMPARISONS_DIR = "comparisons"  # no bundle.json inside, so never listed as a version
ACTIONS = ("activate", "promote", "rollback")
# Version names become directory names: no separators, no dot-dot, nothing hidden.
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
HEADLINE_SPLIT = "test"


@dataclass(frozen=True)
class BundleSummary:
    """What `GET /v1/admin/models` shows for one bundle directory."""

    version: str
    created: str | None = None
    dataset: str | None = None
    precision: str | None = None
    accuracy: dict[str, float] = field(default_factory=dict)  # per head, on the test split
    auto_share: float | None = None
    active: bool = False
    error: str | None = None
    gate: str | None = None  # "pass" or "fail" when `huying retrain` compared it; None otherwise


def check_version(version: str) -> str:
    """A version name safe to use as a directory name, or InvalidInput saying what is allowed."""
    if not isinstance(version, str) or not _VERSION.match(version):
        raise InvalidInput(f"version {version!r} is not a bundle version name: use letters, "
                           "digits, '.', '_' and '-', starting with a letter or digit "
                           "(at most 128 characters)", field="version")
    return version


def bundle_path(bundles_dir: Path, version: str) -> Path:
    """The directory of `version` in `bundles_dir`; NotFound lists the versions that exist."""
    path = Path(bundles_dir) / check_version(version)
    if not (path / MANIFEST).is_file():
        available = ", ".join(v for v in _versions(bundles_dir)) or "none"
        raise NotFound(f"no bundle {version!r} in {bundles_dir} (available: {available}); "
                       "train one with `huying train` or check the name")
    return path


def active_version(bundles_dir: Path) -> str | None:
    """The version named in bundles_dir/ACTIVE, or None when there is no pointer yet."""
    pointer = Path(bundles_dir) / ACTIVE_FILE
    try:
        text = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"{pointer} is not readable: {exc}; rewrite it with "
                          "`huying activate VERSION`") from exc
    return text or None


def active_bundle_path(bundles_dir: Path) -> Path:
    """The directory of the active bundle; NotFound says how to create or choose one."""
    version = active_version(bundles_dir)
    if version is None:
        available = ", ".join(_versions(bundles_dir))
        hint = (f"choose one of {available} with `huying activate VERSION`" if available
                else "train one with `huying train`")
        raise NotFound(f"no active model: {Path(bundles_dir) / ACTIVE_FILE} does not exist; {hint} "
                       "(or set HUYING_BUNDLE to a bundle directory)")
    try:
        return bundle_path(bundles_dir, version)
    except InvalidInput as exc:
        raise BundleError(f"{Path(bundles_dir) / ACTIVE_FILE} names {version!r}: {exc}") from exc


def set_active(bundles_dir: Path, version: str, *, action: str = "activate",
               actor: str | None = None, reason: str | None = None) -> Path:
    """Point bundles_dir/ACTIVE at `version` (which must exist), atomically; returns its path.

    A change of version is appended to bundles_dir/HISTORY (`action`: activate, promote or
    rollback; `actor`: who did it; `reason`: why), which `rollback` walks back."""
    if action not in ACTIONS:
        raise InvalidInput(f"action {action!r} is not one of {', '.join(ACTIONS)}", field="action")
    path = bundle_path(bundles_dir, version)
    try:
        previous = active_version(bundles_dir)
    except BundleError:
        previous = None  # an unreadable pointer is being replaced: nothing to roll back to
    pointer = Path(bundles_dir) / ACTIVE_FILE
    tmp = pointer.with_name(f".{ACTIVE_FILE}.tmp-{os.getpid()}")
    tmp.write_text(version + "\n", encoding="utf-8")
    os.replace(tmp, pointer)  # readers see the old or the new pointer, never half of one
    if previous != version:
        entry = Activation(at=datetime.now(UTC).isoformat(timespec="seconds"), version=version,
                           previous=previous, action=action, actor=actor, reason=reason)
        # One short line per open in append mode: concurrent writers never interleave within it.
        with open(Path(bundles_dir) / HISTORY_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(asdict(entry), ensure_ascii=False) + "\n")
    return path


@dataclass(frozen=True)
class Activation:
    """One change of bundles_dir/ACTIVE, as recorded in bundles_dir/HISTORY."""

    at: str
    version: str
    previous: str | None
    action: str  # activate | promote | rollback
    actor: str | None = None
    reason: str | None = None


def activation_history(bundles_dir: Path) -> list[Activation]:
    """Every recorded change of ACTIVE, oldest first (empty when nothing was recorded)."""
    path = Path(bundles_dir) / HISTORY_FILE
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path} is not readable: {exc}") from exc
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            out.append(Activation(at=str(raw["at"]), version=str(raw["version"]),
                                  previous=_opt_str(raw.get("previous")),
                                  action=str(raw.get("action", "activate")),
                                  actor=_opt_str(raw.get("actor")),
                                  reason=_opt_str(raw.get("reason"))))
        except (ValueError, KeyError, TypeError) as exc:
            raise BundleError(f"{path}:{n} is not a history entry ({exc}); each line is JSON "
                              'with "at", "version", "previous" and "action"') from exc
    return out


def rollback_target(bundles_dir: Path) -> str | None:
    """The version that was active before the current one (None if there is none).

    HISTORY is read as a stack: activate/promote push a version, rollback pops the one it left,
    so rolling back twice goes two versions back, not back and forth."""
    stack: list[str] = []
    for entry in activation_history(bundles_dir):
        if entry.action == "rollback":
            if stack:
                stack.pop()
            if not stack or stack[-1] != entry.version:
                stack.append(entry.version)
            continue
        if not stack and entry.previous:
            stack.append(entry.previous)  # activated before the history was kept
        stack.append(entry.version)
    current = active_version(bundles_dir)
    while stack and stack[-1] == current:
        stack.pop()
    return stack[-1] if stack else None


def rollback(bundles_dir: Path, *, actor: str | None = None) -> tuple[str | None, str]:
    """Make the previously active version active again; returns (left, now active). A damaged
    model is refused before it is made active again."""
    current = active_version(bundles_dir)
    target = rollback_target(bundles_dir)
    if target is None:
        raise Conflict(f"nothing to roll back to: {Path(bundles_dir) / HISTORY_FILE} records no "
                       f"version active before {current!r}; choose one with `huying models "
                       "promote VERSION`")
    try:
        probes.check_bundle(bundle_path(bundles_dir, target))
        set_active(bundles_dir, target, action="rollback", actor=actor)
    except NotFound as exc:
        raise NotFound(f"the previous version {target!r} is gone from {bundles_dir}: {exc}") \
            from exc
    return current, target


# --- promotion through the gate -----------------------------------------------------------------

@dataclass(frozen=True)
class GateVerdict:
    """What `huying retrain` concluded when it compared `version` with the model then active."""

    passed: bool
    current: str | None
    reasons: tuple[str, ...]  # why it failed (empty when it passed)
    report: Path | None  # the readable report, when it was written


@dataclass(frozen=True)
class Promotion:
    """A promotion that passed its checks but is not yet recorded (see `record_promotion`)."""

    version: str
    path: Path
    reason: str | None  # the caller's reason, and the failed gate it forced past


def comparison_dir(bundles_dir: Path, version: str) -> Path:
    return Path(bundles_dir) / COMPARISONS_DIR / check_version(version)


def gate_verdict(bundles_dir: Path, version: str) -> GateVerdict | None:
    """The gate's verdict on `version`, or None when it was not made by `huying retrain`."""
    folder = comparison_dir(bundles_dir, version)
    path = folder / "comparison.json"
    if not path.is_file():
        return None
    try:
        data = _read_json(path)
        verdict = GateVerdict(passed=data["passed"] is True, current=_opt_str(data.get("current")),
                              reasons=tuple(str(r) for r in data.get("reasons", ())),
                              report=folder / "report.md" if (folder / "report.md").is_file()
                              else None)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path} is not a readable comparison ({exc}); rerun `huying retrain` "
                        "or promote with --force") from exc
    return verdict


def plan_promotion(bundles_dir: Path, version: str, *, force: bool = False,
                   reason: str | None = None) -> Promotion:
    """Check that `version` may be promoted: it exists and, if `huying retrain` made it, passed
    its gate — or `force` says to go past a failed gate, which the history then records."""
    path = bundle_path(bundles_dir, version)
    verdict = gate_verdict(bundles_dir, version)
    if verdict is not None and not verdict.passed:
        summary = "; ".join(verdict.reasons[:3]) + (f" (and {len(verdict.reasons) - 3} more)"
                                                   if len(verdict.reasons) > 3 else "")
        if not force:
            raise Conflict(f"{version} failed its comparison with {verdict.current}: {summary}. "
                           f"See {verdict.report or comparison_dir(bundles_dir, version)}; "
                           "promote anyway with force (CLI --force, HTTP \"force\": true)")
        reason = "; ".join(x for x in (reason, f"forced past a failed gate: {summary}") if x)
    return Promotion(version=version, path=path, reason=reason)


def record_promotion(bundles_dir: Path, promotion: Promotion, actor: str | None) -> None:
    set_active(bundles_dir, promotion.version, action="promote", actor=actor,
               reason=promotion.reason)


def promote(bundles_dir: Path, version: str, *, force: bool = False, actor: str | None = None,
            reason: str | None = None) -> Path:
    """Make `version` active: through the gate (see `plan_promotion`), and only if its model
    still answers its probes (a damaged model.onnx is refused before it is made active)."""
    promotion = plan_promotion(bundles_dir, version, force=force, reason=reason)
    probes.check_bundle(promotion.path)
    record_promotion(bundles_dir, promotion, actor)
    return promotion.path


def list_bundles(bundles_dir: Path) -> list[BundleSummary]:
    """Every bundle directory in `bundles_dir`, newest first; unreadable ones carry `error`."""
    active = active_version(bundles_dir)
    summaries = [_summary(Path(bundles_dir), v, active) for v in _versions(bundles_dir)]
    return sorted(summaries, key=lambda s: (s.created or "", s.version), reverse=True)


def _versions(bundles_dir: Path) -> list[str]:
    try:
        entries = sorted(Path(bundles_dir).iterdir())
    except OSError:
        return []
    return [p.name for p in entries
            if p.is_dir() and _VERSION.match(p.name) and (p / MANIFEST).is_file()]


def _summary(bundles_dir: Path, name: str, active: str | None) -> BundleSummary:
    # Read the small JSON files only: listing must not load every ONNX model.
    path = bundles_dir / name
    try:
        verdict = gate_verdict(bundles_dir, name)
    except DataError:
        verdict = None
    gate = None if verdict is None else ("pass" if verdict.passed else "fail")
    try:
        manifest = _read_json(path / MANIFEST)
        metrics = _read_json(path / "metrics.json") if (path / "metrics.json").is_file() else {}
    except (OSError, ValueError) as exc:
        return BundleSummary(version=path.name, active=path.name == active,
                             error=f"unreadable: {exc}")
    version = str(manifest.get("version", path.name))
    split = metrics.get(HEADLINE_SPLIT) if isinstance(metrics, dict) else None
    split = split if isinstance(split, dict) else {}
    accuracy = {head: float(v["accuracy"]) for head, v in split.items()
                if isinstance(v, dict) and isinstance(v.get("accuracy"), int | float)}
    auto_share = split.get("auto_share")
    return BundleSummary(
        version=version, created=_opt_str(manifest.get("created")),
        dataset=_opt_str(manifest.get("dataset")), precision=_opt_str(manifest.get("precision")),
        accuracy=accuracy,
        auto_share=float(auto_share) if isinstance(auto_share, int | float) else None,
        active=path.name == active, gate=gate,
        error=None if version == path.name else
        f"bundle.json says version {version!r} but the directory is {path.name!r}")


def _read_json(path: Path) -> Any:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} is not a JSON object")
    return data


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)
