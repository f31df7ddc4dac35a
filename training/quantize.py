"""int8 for the ONNX encoder whose answer for a text does not depend on its batch-mates.

Every MatMul with a constant 2-D weight (the encoder's projections and feed-forward layers)
becomes: its input divided by a fixed per-channel smoothing factor, QuantizeLinear with one
symmetric scale per row, that is per token (max |x| / 127, zero point 128 in uint8),
MatMulInteger with int8 weights (smoothing folded in) scaled per output column, and a rescale by
row scale × column scale. An input shared by several MatMuls (query, key, value) is quantised
once. The embedding table, the attention products and the heads stay fp32.

Why per token: dynamic int8 (onnxruntime's quantize_dynamic) uses one activation scale per
batch, so a complaint's logits moved by up to 1.1 with its batch-mates; here a token's scale
depends on that token alone. Why smoothing (SmoothQuant, Xiao et al. 2023): a few channels of
the layer-norm outputs are much larger than the rest and, with one scale per token, leave the
others few levels; s_k = sqrt(max |x_k| / max |W_k|), measured once on calibration texts, moves
that range into the weights. The integer products run about twice as fast as fp32 on 2 cores
(benchmarks/engine_options.py, with the accuracy of each option).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np


def _weight_matmuls(graph: Any) -> list[Any]:
    weights = {t.name: t for t in graph.initializer}
    return [n for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights
            and len(weights[n.input[1]].dims) == 2]


def activation_ranges(src: Path, batches: Iterable[tuple[np.ndarray, np.ndarray]]
                      ) -> dict[str, np.ndarray]:
    """max |x| per channel of every weight MatMul's input, over the real (unpadded) tokens."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    model = onnx.load(src)
    inputs = sorted({n.input[0] for n in _weight_matmuls(model.graph)})
    model.graph.output.extend(helper.make_tensor_value_info(x, TensorProto.FLOAT, None)
                              for x in inputs)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ranges: dict[str, np.ndarray] = {}
    for ids, mask in batches:
        values = session.run(inputs, {"input_ids": ids.astype(np.int64),
                                      "attention_mask": mask.astype(np.int64)})
        for x, v in zip(inputs, values, strict=True):
            ranges[x] = np.maximum(ranges.get(x, 0.0), np.abs(v[mask.astype(bool)]).max(axis=0))
    return ranges


def quantize_int8(src: Path, dst: Path, ranges: dict[str, np.ndarray] | None,
                  alpha: float = 0.5) -> int:
    """Write the int8 graph of `src` to `dst`, smoothed by `ranges` (from activation_ranges;
    None: not smoothed). Returns the number of MatMuls replaced."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(src)
    graph = model.graph
    matmuls = _weight_matmuls(graph)
    names = {n.input[1] for n in matmuls}
    weights = {t.name: numpy_helper.to_array(t).astype(np.float32) for t in graph.initializer
               if t.name in names}
    weight_range: dict[str, np.ndarray] = {}  # per input: max |W_k| over all its MatMuls
    for node in matmuls:
        w_max = np.abs(weights[node.input[1]]).max(axis=1)
        weight_range[node.input[0]] = np.maximum(weight_range.get(node.input[0], 0.0), w_max)
    smoothing = {x: np.ones_like(w) if ranges is None else
                 np.clip(np.maximum(ranges[x], 1e-5) ** alpha / np.maximum(w, 1e-5)
                         ** (1 - alpha), 1e-2, 1e2).astype(np.float32)
                 for x, w in weight_range.items()}
    added: list[onnx.TensorProto] = []

    def constant(name: str, value: np.ndarray) -> str:
        added.append(numpy_helper.from_array(value, name))
        return name

    zero_point = constant("q_zero_point", np.array(128, dtype=np.uint8))
    levels = constant("q_levels", np.array(127.0, dtype=np.float32))
    tiny = constant("q_tiny", np.array(1e-8, dtype=np.float32))
    last = constant("q_last", np.array([-1], dtype=np.int64))
    first = constant("q_first", np.array([0], dtype=np.int64))
    quantised: dict[str, tuple[str, str]] = {}  # input -> (uint8 rows, row scales)
    replace = {id(n) for n in matmuls}
    nodes = []
    for node in graph.node:
        if id(node) not in replace:
            nodes.append(node)
            continue
        x, y, p = node.input[0], node.output[0], f"q{len(nodes)}_"
        w = weights[node.input[1]] * smoothing[x][:, None]  # [in, out]
        k, n = w.shape
        column_scale = np.abs(w).max(axis=0) / 127.0
        column_scale[column_scale == 0] = 1.0
        w_int8 = np.clip(np.round(w / column_scale), -127, 127).astype(np.int8)
        if x not in quantised:
            q = f"q_{len(quantised)}_"
            nodes += [
                helper.make_node("Mul", [x, constant(q + "smoothing", 1.0 / smoothing[x])],
                                 [q + "smoothed"]),
                helper.make_node("Reshape", [q + "smoothed",
                                             constant(q + "rows_shape", np.array([-1, k], dtype=np.int64))],
                                 [q + "rows"]),
                helper.make_node("ReduceMax", [q + "rows"], [q + "max"], axes=[1], keepdims=0),
                helper.make_node("ReduceMin", [q + "rows"], [q + "min"], axes=[1], keepdims=0),
                helper.make_node("Neg", [q + "min"], [q + "neg_min"]),
                helper.make_node("Max", [q + "max", q + "neg_min", tiny], [q + "absmax"]),
                helper.make_node("Div", [q + "absmax", levels], [q + "scale"]),
                helper.make_node("Shape", [q + "scale"], [q + "n_rows"]),
                helper.make_node("Expand", [zero_point, q + "n_rows"], [q + "zero_points"]),
                helper.make_node("QuantizeLinear", [q + "rows", q + "scale", q + "zero_points"],
                                 [q + "uint8"], axis=0),
                helper.make_node("Unsqueeze", [q + "scale", last], [q + "row_scale"]),
            ]
            quantised[x] = (q + "uint8", q + "row_scale")
        x_uint8, row_scale = quantised[x]
        nodes += [
            helper.make_node("MatMulInteger", [x_uint8, constant(p + "w", w_int8), zero_point],
                             [p + "int32"]),
            helper.make_node("Cast", [p + "int32"], [p + "float"], to=TensorProto.FLOAT),
            helper.make_node("Mul", [row_scale, constant(p + "column_scale", column_scale)],
                             [p + "scale"]),
            helper.make_node("Mul", [p + "float", p + "scale"], [p + "rows"]),
            helper.make_node("Shape", [x], [p + "in_shape"]),
            helper.make_node("Slice", [p + "in_shape", first, last], [p + "lead"]),
            helper.make_node("Concat", [p + "lead", constant(p + "out", np.array([n], dtype=np.int64))],
                             [p + "out_shape"], axis=0),
            helper.make_node("Reshape", [p + "rows", p + "out_shape"], [y]),
        ]
    used = {i for node in nodes for i in node.input}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept + added)
    onnx.checker.check_model(model)
    onnx.save(model, dst)
    return len(matmuls)
