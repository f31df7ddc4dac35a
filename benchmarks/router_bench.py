"""Torch eager fp32 vs ONNX fp32 vs ONNX int8 on the same real texts, in one run.

    python benchmarks/router_bench.py --bundle bundles/haikou12345-quick --run runs/haikou12345-quick \
        [--texts 1000] [--split dev] [--output runs/router-bench.json]

For each engine: texts/s at batch 1 and at batch 32, p50/p99 latency at batch 1, and accuracy per
head on the texts (gold labels from the dataset split). The engines see identical token ids
(tokenised once); batches of 32 are formed from texts ordered by length, as the Router forms
them, and latency is measured on the first texts in their own order. Timings are wall-clock on
this machine with the threads it has; with --repeats N the engines take turns N times and each
figure is the median of its N runs, so a noisy minute does not favour one engine.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from model.bundle import load_bundle
from training.datasets import load_dataset
from training.pipeline import load_torch

Engine = Callable[[np.ndarray, np.ndarray], list[np.ndarray]]


def _torch_engine(model: torch.nn.Module, heads: list[str]) -> Engine:
    def run(ids: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
        with torch.inference_mode():
            logits, _ = model(torch.from_numpy(ids), torch.from_numpy(mask))
        return [logits[h].numpy() for h in heads]

    return run


def _onnx_engine(path: Path, n_heads: int) -> Engine:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(ids: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
        return session.run(None, {"input_ids": ids, "attention_mask": mask})[:n_heads]

    return run


def _batches(tokens: list[list[int]], size: int, pad: int):  # type: ignore[no-untyped-def]
    for start in range(0, len(tokens), size):
        chunk = tokens[start:start + size]
        width = max(len(t) for t in chunk)
        ids = np.full((len(chunk), width), pad, dtype=np.int64)
        mask = np.zeros((len(chunk), width), dtype=np.int64)
        for i, t in enumerate(chunk):
            ids[i, : len(t)], mask[i, : len(t)] = t, 1
        yield start, ids, mask


def measure(engine: Engine, tokens: list[list[int]], pad: int, heads: list[str],
            targets: dict[str, np.ndarray], latency_texts: int) -> dict[str, float]:
    engine(*next(_batches(tokens[:2], 2, pad))[1:])  # warm-up
    preds = {h: np.zeros(len(tokens), dtype=np.int64) for h in heads}
    by_length = sorted(range(len(tokens)), key=lambda i: len(tokens[i]))  # as the Router batches
    started = time.perf_counter()
    for start, ids, mask in _batches([tokens[i] for i in by_length], 32, pad):
        for h, v in zip(heads, engine(ids, mask), strict=True):
            preds[h][by_length[start:start + len(ids)]] = v.argmax(1)
    batch32 = len(tokens) / (time.perf_counter() - started)
    latencies = []
    for _, ids, mask in _batches(tokens[:latency_texts], 1, pad):
        t0 = time.perf_counter()
        engine(ids, mask)
        latencies.append(time.perf_counter() - t0)
    out = {"texts_per_s_batch32": batch32, "texts_per_s_batch1": len(latencies) / sum(latencies),
           "p50_ms_batch1": 1000 * float(np.percentile(latencies, 50)),
           "p99_ms_batch1": 1000 * float(np.percentile(latencies, 99))}
    for h in heads:
        keep = targets[h] >= 0
        out[f"accuracy_{h}"] = float((preds[h][keep] == targets[h][keep]).mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--run", type=Path, required=True, help="run dir with torch.pt, model.fp32.onnx")
    parser.add_argument("--dataset", type=Path, default=Path("data/datasets/haikou12345.yaml"))
    parser.add_argument("--split", default="dev")
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--latency-texts", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()

    bundle = load_bundle(args.bundle)
    heads = list(bundle.heads)
    splits = load_dataset(args.dataset).split()
    records = (splits[args.split] + [r for s in ("test", "dev") if s != args.split
                                     for r in splits.get(s, [])])[: args.texts]
    model, tokenizer, config = load_torch(args.run / "torch.pt")
    tokens = tokenizer([config.prefix + r.text for r in records], truncation=True,
                       max_length=config.max_length)["input_ids"]
    pad = int(tokenizer.pad_token_id or 0)
    targets = {h: np.array([bundle.spaces[h].index(r.labels[h]) if r.labels.get(h) in
                            bundle.spaces[h] else -100 for r in records]) for h in heads}
    engines = {"torch eager fp32": _torch_engine(model, heads),
               "onnx fp32": _onnx_engine(args.run / "model.fp32.onnx", len(heads)),
               "onnx int8 (bundle)": _onnx_engine(bundle.model_path, len(heads))}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in engines}
    for _ in range(max(1, args.repeats)):  # engines take turns
        for name, e in engines.items():
            runs[name].append(measure(e, tokens, pad, heads, targets, args.latency_texts))
    results = {name: {k: float(np.median([r[k] for r in rs])) for k in rs[0]}
               for name, rs in runs.items()}
    base = results["torch eager fp32"]
    print(f"{len(records)} real texts from {args.dataset.name} {args.split} (+ later splits), "
          f"torch threads {torch.get_num_threads()}; latency over the first {args.latency_texts}; "
          f"medians of {max(1, args.repeats)} runs per engine")
    cols = ["texts_per_s_batch32", "texts_per_s_batch1", "p50_ms_batch1", "p99_ms_batch1"] + [
        f"accuracy_{h}" for h in heads]
    print("| engine | " + " | ".join(cols) + " | batch32 speed-up vs torch | batch1 speed-up |")
    print("|" + " --- |" * (len(cols) + 3))
    for name, r in results.items():
        ratio = r["texts_per_s_batch32"] / base["texts_per_s_batch32"]
        ratio1 = r["texts_per_s_batch1"] / base["texts_per_s_batch1"]
        print(f"| {name} | " + " | ".join(f"{r[c]:.3f}" if "accuracy" in c else f"{r[c]:.1f}"
                                        for c in cols) + f" | {ratio:.2f}× | {ratio1:.2f}× |")
    if args.output:
        args.output.write_text(json.dumps({"texts": len(records), "results": results}, indent=2))


if __name__ == "__main__":
    main()
