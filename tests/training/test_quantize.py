"""The int8 export: close to fp32, and a text's outputs do not depend on its batch-mates."""

from __future__ import annotations

import numpy as np
import pytest

from training.export import export_onnx, onnx_outputs
from training.finetune import MultiHeadModel
from training.quantize import activation_ranges, quantize_int8

HEADS = ["category", "department"]


@pytest.fixture(scope="module")
def graphs(tmp_path_factory, tiny_encoder_dir):
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(tiny_encoder_dir, add_pooling_layer=False,
                                        attn_implementation="eager")
    model = MultiHeadModel(encoder, {"category": 5, "department": 7}).eval()
    tmp = tmp_path_factory.mktemp("quantize")
    fp32, int8 = tmp / "fp32.onnx", tmp / "int8.onnx"
    export_onnx(model, HEADS, fp32)
    rng = np.random.default_rng(1)
    vocab = encoder.config.vocab_size
    calibration = [(rng.integers(5, vocab, (8, 12)), np.ones((8, 12), dtype=np.int64))]
    replaced = quantize_int8(fp32, int8, activation_ranges(fp32, calibration))
    return fp32, int8, replaced, vocab


def test_every_weight_matmul_becomes_integer_and_the_outputs_stay_close(graphs):
    import onnx

    fp32, int8, replaced, vocab = graphs
    ops = [n.op_type for n in onnx.load(int8).graph.node]
    assert replaced > 0 and ops.count("MatMulInteger") == replaced
    assert ops.count("MatMul") == 2 * ops.count("Softmax")  # only the attention products stay
    ids = np.random.default_rng(2).integers(5, vocab, (3, 10))
    a, b = onnx_outputs(fp32, ids, np.ones_like(ids)), onnx_outputs(int8, ids, np.ones_like(ids))
    assert [x.shape for x in a] == [x.shape for x in b]
    assert (a[-1] * b[-1]).sum(1).min() > 0.99  # both embeddings are unit vectors
    for x, y in zip(a[:-1], b[:-1], strict=True):
        assert np.abs(x - y).max() < 0.05 * max(1.0, float(np.abs(x).max()))


def test_a_text_gets_the_same_outputs_alone_and_inside_a_padded_batch(graphs):
    _, int8, _, vocab = graphs
    rng = np.random.default_rng(3)
    ids = rng.integers(5, vocab, (6, 14))
    mask = np.ones_like(ids)
    ids[0, 7:], mask[0, 7:] = 0, 0  # the text under test is shorter than its mates: padded
    ids[2, :] = vocab - 1  # a mate unlike any other text
    alone = onnx_outputs(int8, ids[:1, :7], mask[:1, :7])
    batch = onnx_outputs(int8, ids, mask)
    for x, y in zip(alone, batch, strict=True):
        np.testing.assert_allclose(x[0], y[0], atol=1e-5)
