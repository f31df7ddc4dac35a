"""Which ONNX engine keeps the answer independent of batch-mates, and at what speed and accuracy.

    python benchmarks/engine_options.py --run runs/haikou12345-full [--texts 512]

From the run's fp32 graph (runs/<version>/model.fp32.onnx) it builds, in a temporary directory:
fp32 as exported; fp32 with onnxruntime's transformer fusions (attention, skip-layer-norm, GELU);
int8 with one activation scale per token (today's export, training/quantize.py); weight-only
MatMulNBits int8 (the export before it); static int8 (QDQ, activation scales fixed from
calibration texts of the train split); dynamic int8 (activation scales per batch: run one text
at a time, that is per text, hence batch-independent at batch 1 only), with every MatMul or with
the FFN output projections kept fp32 (the layer dynamic int8 hurts most).
For each, on real texts of the dev split: texts/s at batch 32 and 1, dev accuracy per head at
batch 32 and at batch 1, argmax agreement with fp32 at batch 1, and the largest logit difference
between a text routed alone and inside a batch of 32 mixed texts (batch-independence). torch
eager at batch 32 is the speed baseline.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from router_bench import Engine
from router_bench import _onnx_engine as _onnx
from router_bench import _torch_engine as _torch

from training.datasets import load_dataset
from training.pipeline import load_torch


def _pad(tokens: list[list[int]], pad: int, width: int = 0) -> tuple[np.ndarray, np.ndarray]:
    width = max(width, *(len(t) for t in tokens))
    ids = np.full((len(tokens), width), pad, dtype=np.int64)
    mask = np.zeros((len(tokens), width), dtype=np.int64)
    for i, t in enumerate(tokens):
        ids[i, : len(t)], mask[i, : len(t)] = t, 1
    return ids, mask


def logits(engine: Engine, tokens: list[list[int]], pad: int, size: int) -> list[np.ndarray]:
    parts: list[list[np.ndarray]] = []
    for start in range(0, len(tokens), size):
        out = engine(*_pad(tokens[start:start + size], pad))
        parts = [*parts, out] if parts else [out]
    return [np.concatenate([p[h] for p in parts]) for h in range(len(parts[0]))]


def texts_per_s(engine: Engine, tokens: list[list[int]], pad: int, size: int) -> float:
    engine(*_pad(tokens[:2], pad))
    started = time.perf_counter()
    logits(engine, tokens, pad, size)
    return len(tokens) / (time.perf_counter() - started)


def batch_dependence(engine: Engine, tokens: list[list[int]], pad: int, n: int = 64) -> float:
    """Max |logit alone − logit inside a shuffled batch of 32| over `n` texts and all heads."""
    alone = logits(engine, tokens[:n], pad, 1)
    rng = np.random.default_rng(0)
    mates = list(rng.permutation(len(tokens))[: 32 * n // 2])
    worst = 0.0
    for i in range(n):
        batch = [tokens[i]] + [tokens[j] for j in mates[(i * 31) % len(mates):][:31]]
        got = engine(*_pad(batch, pad))
        worst = max(worst, max(float(np.abs(g[0] - a[i]).max()) for g, a in zip(got, alone, strict=True)))
    return worst


def served_accuracy(bundle: Path, onnx_path: Path, records: list, heads: list[str]  # type: ignore[type-arg]
                    ) -> dict[str, float]:
    """Per-head accuracy of the served Router (n-gram fusion, calibration, hierarchy decoding)
    with `onnx_path` as its encoder, one text at a time."""
    import onnxruntime as ort

    from model.router import Router

    router = Router.load(bundle, batch_size=1)
    router._session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    routings = router.route([r.text for r in records])
    return {h: float(np.mean([x.heads[h].label == r.labels[h] for x, r in
                              zip(routings, records, strict=True) if h in r.labels]))
            for h in heads}


def _weight_only(src: Path, dst: Path) -> None:
    """Weight-only int8 (MatMulNBits: 8 bits, symmetric blocks of 32, accuracy level 4)."""
    import logging

    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
    config = DefaultWeightOnlyQuantConfig(block_size=32, is_symmetric=True, accuracy_level=4,
                                          bits=8)
    quantizer = MatMulNBitsQuantizer(onnx.load(src), bits=8, block_size=32, is_symmetric=True,
                                     accuracy_level=4, algo_config=config)
    quantizer.process()
    quantizer.model.save_model_to_file(str(dst), use_external_data_format=False)


def build(fp32: Path, tmp: Path, calibration: list[list[int]], pad: int) -> dict[str, Path]:
    """Every engine's graph, written into `tmp`; `calibration` are train texts' token ids."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.transformers.optimizer import optimize_model

    from training.quantize import activation_ranges, quantize_int8

    out = {"onnx fp32": fp32}
    fused = tmp / "fused.onnx"
    optimize_model(str(fp32), model_type="bert", num_heads=12, hidden_size=384,
                   opt_level=1).save_model_to_file(str(fused))
    out["onnx fp32 fused"] = fused
    batches = [_pad(calibration[i:i + 32], pad) for i in range(0, len(calibration), 32)]
    ranges = activation_ranges(fp32, batches)
    quantize_int8(fp32, tmp / "per_token.onnx", ranges)
    out["int8 per token, smoothed (served)"] = tmp / "per_token.onnx"
    quantize_int8(fp32, tmp / "per_token_raw.onnx", None)
    out["int8 per token, not smoothed"] = tmp / "per_token_raw.onnx"
    _weight_only(fp32, tmp / "nbits.onnx")
    out["weight-only int8 (MatMulNBits)"] = tmp / "nbits.onnx"

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            # one width for all: the percentile calibrator stacks the batches
            width = max(len(t) for t in calibration)
            self.batches = iter([_pad(calibration[s:s + 16], pad, width)
                                 for s in range(0, len(calibration), 16)])

        def get_next(self):  # type: ignore[no-untyped-def]
            b = next(self.batches, None)
            return None if b is None else {"input_ids": b[0], "attention_mask": b[1]}

    model = onnx.load(fp32)
    matmuls = [n.name for n in model.graph.node if n.op_type == "MatMul"]
    # the two attention products (QK^T, softmax·V) have no constant weight: leave them fp32
    weighted = {i.name for i in model.graph.initializer}
    attention = [n.name for n in model.graph.node
                 if n.op_type == "MatMul" and not any(x in weighted for x in n.input)]
    print(f"{len(matmuls)} MatMuls, {len(attention)} without a constant weight (kept fp32)")
    for method in (CalibrationMethod.MinMax, CalibrationMethod.Percentile):
        path = tmp / f"static_{method.name}.onnx"
        quantize_static(str(fp32), str(path), Reader(), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=["MatMul"], nodes_to_exclude=attention,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=method,
                        extra_options={"CalibPercentile": 99.99} if method.name == "Percentile"
                        else {})
        out[f"static int8 QDQ ({method.name})"] = path
    quantize_dynamic(str(fp32), str(tmp / "dynamic.onnx"), weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul"])
    out["dynamic int8 (per batch)"] = tmp / "dynamic.onnx"
    ffn_out = [n.name for n in model.graph.node if n.op_type == "MatMul"
               and "/output/dense/" in n.name and "/attention/" not in n.name]
    quantize_dynamic(str(fp32), str(tmp / "dynamic_ffn.onnx"), weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul"], nodes_to_exclude=ffn_out)
    out[f"dynamic int8, {len(ffn_out)} FFN outputs fp32"] = tmp / "dynamic_ffn.onnx"
    # one scale per output channel of each weight instead of one per matrix
    quantize_dynamic(str(fp32), str(tmp / "dynamic_pc.onnx"), weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul"], per_channel=True)
    out["dynamic int8 per-channel"] = tmp / "dynamic_pc.onnx"
    quantize_dynamic(str(fp32), str(tmp / "dynamic_pc_ffn.onnx"), weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul"], nodes_to_exclude=ffn_out, per_channel=True)
    out[f"dynamic int8 per-channel, {len(ffn_out)} FFN outputs fp32"] = tmp / "dynamic_pc_ffn.onnx"
    quantize_dynamic(str(fused), str(tmp / "fused_dynamic_pc.onnx"), weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul"], per_channel=True,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    out["fused + dynamic int8 per-channel"] = tmp / "fused_dynamic_pc.onnx"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--dataset", type=Path, default=Path("data/datasets/haikou12345.yaml"))
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--bundle", type=Path, help="the run's bundle: adds the served Router's "
                        "accuracy per head with each engine (one text at a time)")
    parser.add_argument("--only", nargs="*", default=[], help="measure only the engines whose "
                        "name contains one of these (torch eager and fp32 always run)")
    args = parser.parse_args()
    model, tokenizer, config = load_torch(args.run / "torch.pt")
    heads = list(model.heads.keys())
    splits = load_dataset(args.dataset).split()
    dev = splits["dev"][: args.texts]

    def tok(records: list) -> list[list[int]]:  # type: ignore[type-arg]
        return tokenizer([config.prefix + r.text for r in records], truncation=True,
                         max_length=config.max_length)["input_ids"]

    tokens, pad = tok(dev), int(tokenizer.pad_token_id or 0)
    targets = {}
    saved = torch.load(args.run / "torch.pt", map_location="cpu", weights_only=False)
    for h in heads:
        space = saved["spaces"][h]
        targets[h] = np.array([space.index(r.labels[h]) if r.labels.get(h) in space else -1
                               for r in dev])
    with tempfile.TemporaryDirectory() as tmp:
        paths = build(args.run / "model.fp32.onnx", Path(tmp), tok(splits["train"][:256]), pad)
        engines: dict[str, Engine] = {"torch eager fp32": _torch(model, heads)}
        engines.update({name: _onnx(p, len(heads)) for name, p in paths.items()
                        if name == "onnx fp32" or not args.only
                        or any(o in name for o in args.only)})
        reference = logits(engines["onnx fp32"], tokens, pad, 32)
        base = None
        print(f"{len(tokens)} dev texts, max_length {config.max_length}, torch threads "
              f"{torch.get_num_threads()}")
        print("| engine | texts/s b32 | × torch b32 | texts/s b1 | × torch b32 | alone vs batch max "
              "|Δlogit| | " + " | ".join(f"{h} acc b32 / b1 / = fp32" for h in heads)
              + (" | served b1: " + " / ".join(heads) if args.bundle else "") + " |")
        for name, engine in engines.items():
            speed = texts_per_s(engine, tokens, pad, 32)
            speed1 = texts_per_s(engine, tokens[:128], pad, 1)
            base = base or speed
            got, alone = logits(engine, tokens, pad, 32), logits(engine, tokens, pad, 1)
            cells = []
            for h, g, a, r in zip(heads, got, alone, reference, strict=True):
                keep = targets[h] >= 0
                acc = [float((x.argmax(1)[keep] == targets[h][keep]).mean()) for x in (g, a)]
                cells.append(f"{acc[0]:.3f} / {acc[1]:.3f} / "
                             f"{float((a.argmax(1) == r.argmax(1)).mean()):.3f}")
            dep = batch_dependence(engine, tokens, pad)
            if args.bundle and name in paths:
                served = served_accuracy(args.bundle, paths[name], dev, heads)
                cells.append(" / ".join(f"{served[h]:.3f}" for h in heads))
            elif args.bundle:
                cells.append("")
            print(f"| {name} | {speed:.1f} | {speed / base:.2f} | {speed1:.1f} | "
                  f"{speed1 / base:.2f} | {dep:.1e} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
