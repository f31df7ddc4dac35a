"""Fine-tuning: masked loss, the cached fast path, resuming, config validation."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from model.errors import DataError
from training import finetune as ft
from training.datasets import Record
from training.finetune import FinetuneConfig, MultiHeadModel, class_weights, masked_loss


def test_masked_loss_ignores_rows_without_a_label():
    logits = {"category": torch.randn(4, 3), "department": torch.randn(4, 5)}
    targets = {"category": torch.tensor([0, -100, 2, -100]), "department": torch.tensor([1, 2, 3, 4])}
    got = masked_loss(logits, targets)
    keep = torch.tensor([0, 2])
    expected = (torch.nn.functional.cross_entropy(logits["category"][keep], torch.tensor([0, 2]))
                + torch.nn.functional.cross_entropy(logits["department"], targets["department"]))
    assert torch.isclose(got, expected)


def test_a_head_without_labels_in_the_batch_gets_no_gradient():
    head = torch.nn.Linear(4, 3)
    dept = torch.nn.Linear(4, 2)
    x = torch.randn(5, 4)
    loss = masked_loss({"category": head(x), "department": dept(x)},
                       {"category": torch.full((5,), -100), "department": torch.tensor([0, 1, 0, 1, 0])})
    loss.backward()
    assert head.weight.grad is None
    assert dept.weight.grad is not None and dept.weight.grad.abs().sum() > 0


def test_the_rdrop_penalty_is_a_symmetric_divergence_zero_only_for_equal_predictions():
    a = {"category": torch.randn(4, 3), "department": torch.randn(4, 5)}
    b = {h: v + torch.randn_like(v) for h, v in a.items()}
    assert ft.rdrop_penalty(a, a).item() == pytest.approx(0.0, abs=1e-6)
    assert ft.rdrop_penalty(a, b).item() > 0
    assert torch.isclose(ft.rdrop_penalty(a, b), ft.rdrop_penalty(b, a))


def test_with_rdrop_training_runs_twice_per_batch_and_learns(haikou_sample, tiny_encoder_dir):
    config = FinetuneConfig.from_preset("tiny", base=str(tiny_encoder_dir), rdrop=1.0, epochs=2)
    train, dev = _records(haikou_sample, 40), _records(haikou_sample, 60)[40:]
    spaces = {"category": haikou_sample.taxonomy.labels("category")}
    result = ft.finetune(train, dev, spaces, config)
    losses = [h["train_loss"] for h in result.history]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]


def test_class_weights_keep_the_mean_row_weight_at_one():
    targets = torch.tensor([0, 0, 0, 0, 1, -100])
    w = class_weights(targets, 3, power=0.5)
    counts = torch.tensor([4.0, 1.0, 1.0])
    assert w[1] > w[0]
    assert torch.isclose((w * counts)[:2].sum() / 5, torch.tensor(1.0), atol=0.25)


def test_cached_lower_layers_give_the_same_logits_as_the_full_model(tiny_encoder_dir):
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(tiny_encoder_dir, add_pooling_layer=False,
                                        attn_implementation="eager")
    model = MultiHeadModel(encoder, {"category": 3, "department": 4}).eval()
    ids = torch.randint(5, encoder.config.vocab_size, (3, 9))
    mask = torch.tensor([[1] * 9, [1] * 5 + [0] * 4, [1] * 2 + [0] * 7])
    full_logits, full_emb = model(ids, mask)
    cached = model.lower(ids, mask, stop=1)
    part_logits, part_emb = model.forward_from(cached, mask, start=1)
    for head in full_logits:
        torch.testing.assert_close(full_logits[head], part_logits[head], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(full_emb, part_emb, atol=1e-5, rtol=1e-5)
    # the same agrees with the encoder's own forward (mean pooling over the mask)
    hidden = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    torch.testing.assert_close(torch.nn.functional.normalize(pooled, dim=-1), full_emb,
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kwargs", [{"layers": 0}, {"layers": 2, "frozen_layers": 2},
                                    {"max_length": 4}, {"device": "tpu"}, {"epochs": 0},
                                    {"rdrop": -1.0}])
def test_invalid_configs_say_what_is_wrong(kwargs):
    with pytest.raises(DataError):
        FinetuneConfig(**kwargs)


def test_unknown_preset_lists_the_presets():
    with pytest.raises(DataError, match="quick"):
        FinetuneConfig.from_preset("fast")


def test_the_gpu_preset_trains_every_layer_and_runs_on_the_cpu_too(haikou_sample,
                                                                   tiny_encoder_dir):
    """The GPU preset's recipe (all layers trained, nothing cached) on the tiny encoder, on the
    CPU: what `--preset gpu --device cpu` does with a small model."""
    config = FinetuneConfig.from_preset("gpu", base=str(tiny_encoder_dir), epochs=1,
                                        max_length=32, device="cpu", min_steps=0)
    assert config.frozen_layers == 0 and config.layers is None
    train, dev = _records(haikou_sample, 40), _records(haikou_sample, 60)[40:]
    spaces = {"category": haikou_sample.taxonomy.labels("category")}
    before = FinetuneConfig.from_preset("tiny", base=str(tiny_encoder_dir))
    from training.finetune import load_encoder

    initial = load_encoder(before)[0].state_dict()
    result = ft.finetune(train, dev, spaces, config)
    trained = result.model.encoder.state_dict()
    moved = [name for name, value in initial.items() if name.startswith("encoder.layer.0.")
             and not torch.equal(value, trained[name])]
    assert moved, "the lowest layer should be trained, not frozen"


def _records(sample, n):
    return [r for r in sample.records if "category" in r.labels][:n]


def test_training_learns_and_resumes_to_the_same_weights(tmp_path, monkeypatch, haikou_sample,
                                                         tiny_encoder_dir):
    train = _records(haikou_sample, 120) + [r for r in haikou_sample.records
                                            if "category" not in r.labels][:40]
    dev = _records(haikou_sample, 160)[120:]
    spaces = {h: haikou_sample.taxonomy.labels(h) for h in ("category", "department")}
    config = FinetuneConfig.from_preset("tiny", base=str(tiny_encoder_dir), epochs=2, patience=5)

    straight = ft.finetune(train, dev, spaces, config)
    assert len(straight.history) == 2
    assert straight.history[1]["train_loss"] < straight.history[0]["train_loss"]

    calls = {"n": 0}
    real = ft.predict_logits

    def crash_on_second_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(ft, "predict_logits", crash_on_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        ft.finetune(train, dev, spaces, config, checkpoint_dir=tmp_path)
    assert (tmp_path / "checkpoint.pt").exists()
    monkeypatch.setattr(ft, "predict_logits", real)
    resumed = ft.finetune(train, dev, spaces, config, checkpoint_dir=tmp_path)
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    for (name, a), (_, b) in zip(straight.model.state_dict().items(),
                                 resumed.model.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, msg=name)


def test_resume_refuses_a_checkpoint_from_another_config(tmp_path, haikou_sample, tiny_encoder_dir):
    train, dev = _records(haikou_sample, 40), _records(haikou_sample, 60)[40:]
    spaces = {"category": haikou_sample.taxonomy.labels("category")}
    config = FinetuneConfig.from_preset("tiny", base=str(tiny_encoder_dir), epochs=1)
    ft.finetune(train, dev, spaces, config, checkpoint_dir=tmp_path)
    with pytest.raises(DataError, match="different configuration"):
        ft.finetune(train, dev, spaces, FinetuneConfig.from_preset("tiny", base=str(tiny_encoder_dir),
                                                              epochs=1, lr=1e-3),
                    checkpoint_dir=tmp_path)

    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    del saved["config"]["rdrop"]  # written before the field existed: it held the default
    torch.save(saved, tmp_path / "checkpoint.pt")
    ft.finetune(train, dev, spaces, config, checkpoint_dir=tmp_path)  # resumes
    with pytest.raises(DataError, match="different configuration"):
        ft.finetune(train, dev, spaces, replace(config, rdrop=1.0), checkpoint_dir=tmp_path)


def test_rows_without_any_known_label_are_refused(haikou_sample, tiny_encoder_dir):
    rows = [Record(id="1", text="路灯不亮", labels={}, source="x")]
    with pytest.raises(DataError, match="no training row"):
        ft.finetune(rows, rows, {"category": ("A",)},
                    FinetuneConfig.from_preset("tiny", base=str(tiny_encoder_dir)))


def test_cross_validation_of_the_fine_tuned_model(haikou_sample, tiny_encoder_dir):
    from dataclasses import replace

    from training.baseline import cross_validate
    from training.pipeline import router_fitter

    small = replace(haikou_sample, records=[r for r in haikou_sample.records
                                            if "category" in r.labels][:90])
    config = FinetuneConfig.from_preset("tiny", base=str(tiny_encoder_dir), epochs=1)
    result = cross_validate(small, 2, fit=router_fitter(config))
    assert result["folds"] == 2 and len(result["per_fold"]) == 2
    for head in ("category", "subcategory", "department"):
        assert 0.0 <= result["heads"][head]["macro_f1_mean"] <= 1.0
        assert result["heads"][head]["pooled"]["rows"] == 90


def test_training_is_reproducible_whatever_ran_before(haikou_sample, tiny_encoder_dir,
                                                     monkeypatch):
    """The first run on a machine converts the encoder, drawing random numbers before training;
    it must train exactly as a later run that finds the encoder cached."""
    train, dev = _records(haikou_sample, 80), _records(haikou_sample, 120)[80:]
    spaces = {h: haikou_sample.taxonomy.labels(h) for h in ("category",)}
    config = FinetuneConfig.from_preset("tiny", base=str(tiny_encoder_dir), epochs=1)
    first = ft.finetune(train, dev, spaces, config)
    real_load = ft.load_encoder

    def load_after_drawing(*args, **kwargs):  # as a conversion does
        loaded = real_load(*args, **kwargs)
        torch.rand(1000)
        return loaded

    monkeypatch.setattr(ft, "load_encoder", load_after_drawing)
    again = ft.finetune(train, dev, spaces, config)
    assert first.history[0]["train_loss"] == again.history[0]["train_loss"]


def test_without_dev_it_trains_the_given_epochs_and_keeps_the_last(haikou_sample, tiny_encoder_dir):
    train = _records(haikou_sample, 60)
    spaces = {"category": haikou_sample.taxonomy.labels("category")}
    # min_steps would stretch the schedule; a refit trains exactly the epochs chosen on dev
    config = FinetuneConfig.from_preset("tiny", base=str(tiny_encoder_dir), epochs=2, min_steps=500)
    result = ft.finetune(train, [], spaces, config)
    assert [e["epoch"] for e in result.history] == [1, 2] and result.best_epoch == 2
    assert set(result.history[0]) == {"epoch", "train_loss"}


def test_an_auxiliary_head_trains_the_encoder_and_is_dropped(haikou_sample, tiny_encoder_dir):
    train = [replace(r, auxiliary={"older_topic": "丙" if i == 0 else "甲" if i % 2 else "乙"})
             for i, r in enumerate(_records(haikou_sample, 40))]
    dev = _records(haikou_sample, 60)[40:]
    spaces = {"category": haikou_sample.taxonomy.labels("category")}
    assert ft.auxiliary_spaces(train) == {"auxiliary_older_topic": ("乙", "甲")}
    config = FinetuneConfig.from_preset("tiny", base=str(tiny_encoder_dir))
    with_aux = ft.finetune(train, dev, spaces, replace(config, auxiliary=True))
    without = ft.finetune(train, dev, spaces, config)
    assert set(with_aux.model.heads) == set(with_aux.spaces) == {"category"}
    assert set(with_aux.history[0]) == set(without.history[0])  # never scored on dev
    # its cross-entropy (about ln 2 for two labels) was part of the loss the encoder learned from
    assert with_aux.history[0]["train_loss"] > without.history[0]["train_loss"] + 0.3
