"""Export a fine-tuned model to ONNX (per-head logits + pooled embedding) and gate it: fp32 ONNX
must match torch, its int8 version (training/quantize.py) must not lose accuracy on dev."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from model.errors import BundleError
from training.finetune import MultiHeadModel

INPUTS = ("input_ids", "attention_mask")


class _Graph(nn.Module):
    """What the ONNX graph computes: logits of each head in order, then the embedding."""

    def __init__(self, model: MultiHeadModel, heads: Sequence[str]):
        super().__init__()
        self.model, self.heads = model, list(heads)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
        logits, embedding = self.model(input_ids, attention_mask)
        return (*[logits[h] for h in self.heads], embedding)


def output_names(heads: Sequence[str]) -> list[str]:
    return [f"logits_{h}" for h in heads] + ["embedding"]


def export_onnx(model: MultiHeadModel, heads: Sequence[str], path: Path) -> None:
    graph = _Graph(model, heads).eval()  # eval(): the exporter would otherwise keep dropout on
    ids = torch.ones((2, 16), dtype=torch.long)
    mask = torch.ones((2, 16), dtype=torch.long)
    dynamic = {name: {0: "batch", 1: "sequence"} for name in INPUTS}
    dynamic.update({name: {0: "batch"} for name in output_names(heads)})
    with torch.no_grad():
        # The TorchScript exporter writes one self-contained file (the dynamo one adds .onnx.data).
        torch.onnx.export(graph, (ids, mask), str(path), input_names=list(INPUTS),
                          output_names=output_names(heads), dynamic_axes=dynamic,
                          opset_version=17, dynamo=False)


def onnx_outputs(path: Path, ids: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input_ids": ids.astype(np.int64),
                              "attention_mask": mask.astype(np.int64)})


def check_parity(model: MultiHeadModel, heads: Sequence[str], path: Path, ids: np.ndarray,
                 mask: np.ndarray, tolerance: float = 1e-3) -> float:
    """Max |torch − ONNX| over all outputs; raises BundleError above `tolerance`."""
    with torch.no_grad():
        expected = _Graph(model, heads).eval()(torch.from_numpy(ids).long(),
                                               torch.from_numpy(mask).long())
    got = onnx_outputs(path, ids, mask)
    diff = max(float(np.abs(e.numpy() - g).max()) for e, g in zip(expected, got, strict=True))
    if diff > tolerance:
        raise BundleError(f"ONNX export disagrees with torch: max difference {diff:.2e} > "
                          f"{tolerance:.0e}; the export is wrong, not published")
    return diff


def check_quantization(fp32: Mapping[str, np.ndarray], int8: Mapping[str, np.ndarray],
                       targets: Mapping[str, np.ndarray], max_loss: float = 0.005) -> dict[str, float]:
    """Accuracy lost by int8 per head on dev; raises BundleError if any loses more than `max_loss`."""
    loss = {}
    for head, t in targets.items():
        keep = t >= 0
        if keep.any():
            a32 = float((fp32[head][keep].argmax(1) == t[keep]).mean())
            a8 = float((int8[head][keep].argmax(1) == t[keep]).mean())
            loss[head] = a32 - a8
    worst = max(loss.values(), default=0.0)
    if worst > max_loss:
        raise BundleError(f"int8 quantisation loses {worst:.1%} accuracy on dev (limit "
                          f"{max_loss:.1%}): {loss}; export with --precision fp32 instead")
    return loss
