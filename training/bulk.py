"""Bulk scoring past one machine: `huying predict --engine ray` routes JSONL shards with Ray Data.

Why Ray Data rather than a home-made process pool: it streams (shards are read, routed and
written batch by batch, never all in memory), keeps a model loaded per worker instead of per
batch (an actor pool), keeps the input order, and runs the same code on this machine or on a
cluster (`--ray-address`; the input must then be on a filesystem every node sees, and huying
installed on every node).

How it maps to workers: each input file is one read task (`read_binary_files`, which also
unpacks `.jsonl.gz`); a light task splits it into rows and checks them as the local engine does
(an error names file and line); `map_batches` sends batches of rows to a fixed pool of `workers`
actors, each holding one `model.router.Router`, so one onnxruntime session with as many threads
as the CPUs its actor reserves. The driver takes the routed lines back in input order and writes
one JSONL file, renamed into place only when every row is routed: a failure leaves no output.
"""

from __future__ import annotations

import glob
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.errors import DataError, HuyingError

INSTALL_HINT = "install the bulk extra: pip install -e '.[bulk]'"


@dataclass(frozen=True)
class BulkResult:
    rows: int
    workers: int  # the actor pool's size: Ray actors, one loaded Router each
    busy: int  # of them, those that routed at least one block (Ray schedules blocks, not rows)


def input_files(source: Path) -> list[Path]:
    """One JSONL file, a directory of `*.jsonl` / `*.jsonl.gz` shards, or a glob; sorted."""
    if source.is_file():
        return [source]
    if source.is_dir():
        files = sorted([*source.glob("*.jsonl"), *source.glob("*.jsonl.gz")])
    else:
        files = sorted(Path(p) for p in glob.glob(str(source)) if Path(p).is_file())
    if not files:
        raise DataError(f"{source}: no JSONL file there; pass a .jsonl file, a directory of "
                        "*.jsonl / *.jsonl.gz shards or a glob")
    return files


def text_row(line: str, where: str) -> dict[str, Any] | None:
    """One JSONL line as a row with a non-empty string `text`, None for a blank line; otherwise a
    DataError naming `where` (file:line). Both engines read their input through this."""
    if not line.strip():
        return None
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: not valid JSON ({exc.msg})") from exc
    if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not row["text"].strip():
        raise DataError(f"{where}: each row needs a non-empty string field `text`")
    return row


def parse_file(file: dict[str, Any]) -> list[dict[str, str]]:
    """A file's rows as {key: the JSON of the row's `id` part, text, error: ""}; for a file with a
    row the local engine would refuse, one row whose `error` names file and line. Errors travel
    as data, not exceptions, so the driver gets the message as written, without Ray's wrapping."""
    path, rows = file["path"], []
    try:
        lines = io.TextIOWrapper(io.BytesIO(file["bytes"]), encoding="utf-8-sig")
        for n, line in enumerate(lines, 1):
            row = text_row(line, f"{path}:{n}")
            if row is not None:
                key = {"id": row["id"]} if "id" in row else {}
                rows.append({"key": json.dumps(key, ensure_ascii=False), "text": row["text"],
                             "error": ""})
    except DataError as exc:
        return [_refused(str(exc))]
    except UnicodeDecodeError as exc:
        return [_refused(f"{path}: not UTF-8 ({exc.reason})")]
    return rows


def _refused(message: str) -> dict[str, str]:
    return {"key": "{}", "text": "", "error": message}


class RouteBatch:
    """One Ray actor: loads the bundle once, then routes the batches it is sent."""

    def __init__(self, bundle: str, threads: int, batch_size: int):
        import ray

        from model.router import Router

        self.router = Router.load(bundle, threads=threads, batch_size=batch_size)
        self.worker = str(ray.get_runtime_context().get_actor_id())

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        keep = [i for i, error in enumerate(batch["error"]) if not error]
        routings = iter(self.router.route([str(batch["text"][i]) for i in keep]))
        lines = [json.dumps({**json.loads(str(key)), **next(routings).to_dict()}, ensure_ascii=False)
                 if not error else "" for key, error in zip(batch["key"], batch["error"], strict=True)]
        return {"line": lines, "error": [str(e) for e in batch["error"]],
                "worker": [self.worker] * len(lines)}


def route_files(source: Path, bundle: Path, output: Path, *, batch_size: int = 32,
                workers: int | None = None, address: str | None = None,
                progress: Callable[[int], None] | None = None) -> BulkResult:
    """Route every row of `source` (see input_files) on `workers` Ray actors into one JSONL at
    `output`, in input order. Without `address` a local Ray with `workers` CPUs is started and
    stopped; with one, the cluster there is used (workers default: its CPUs)."""
    try:
        import ray
        from ray.data import ActorPoolStrategy, DataContext
    except ImportError as exc:
        raise HuyingError(f"--engine ray needs Ray: {INSTALL_HINT}") from exc

    from model.bundle import load_bundle

    files = input_files(source)
    load_bundle(bundle)  # a broken bundle fails here, once, not in every actor
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=None if address else workers or os.cpu_count(),
                 include_dashboard=False, log_to_driver=True, configure_logging=False)
    tmp = output.with_name(output.name + ".partial")
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        workers = workers or cpus
        threads = max(1, cpus // workers)
        ctx = DataContext.get_current()
        ctx.execution_options.preserve_order = True
        ctx.enable_progress_bars = False  # the caller shows progress
        ctx.raise_original_map_exception = True  # a worker's ModelOutputError stays one
        ctx.wait_for_min_actors_s = 600  # every worker has its model before the first batch
        # one read task per file; reading and parsing reserve no CPU, so they never wait for the
        # CPUs the workers hold
        lines = (ray.data.read_binary_files([str(f.resolve()) for f in files], include_paths=True,
                                            override_num_blocks=len(files), num_cpus=0)
                 .flat_map(parse_file, num_cpus=0)
                 .map_batches(RouteBatch, batch_size=batch_size, num_cpus=threads,
                              compute=ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1),
                              fn_constructor_kwargs={"bundle": str(bundle.resolve()),
                                                     "threads": threads, "batch_size": batch_size}))
        rows, used = 0, set[str]()
        with open(tmp, "w", encoding="utf-8") as f:
            for batch in lines.iter_batches(batch_size=None, batch_format="numpy"):
                for error in batch["error"]:
                    if error:
                        raise DataError(str(error))
                f.writelines(str(line) + "\n" for line in batch["line"])
                used.update(str(w) for w in batch["worker"])
                rows += len(batch["line"])
                if progress is not None:
                    progress(len(batch["line"]))
        tmp.replace(output)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        cause = _domain_cause(exc)
        if cause is not None:
            raise cause from None
        raise
    finally:
        if started:
            ray.shutdown()
    return BulkResult(rows=rows, workers=workers, busy=len(used))


def _domain_cause(exc: BaseException) -> HuyingError | None:
    """The HuyingError a worker raised, out of the Ray exceptions that carry it (a RayTaskError
    keeps it as `cause`), without the retry hint Ray Data appends: the CLI prints its message."""
    seen: BaseException | None = exc
    while seen is not None:
        found = getattr(seen, "cause", None)
        if not isinstance(found, HuyingError):
            found = seen
        if isinstance(found, HuyingError):
            message = str(found.args[0]) if found.args else str(found)
            message = message.split("\nFailed to apply", 1)[0]
            try:
                return type(found)(message)
            except TypeError:  # an error class that takes other arguments
                return HuyingError(message)
        seen = seen.__cause__ or seen.__context__
    return None
