"""The router: complaint texts in, a calibrated, hierarchy-consistent routing per text out.

normalise → tokenise → ONNX (per-head logits + pooled embedding), fused with a char n-gram
linear model per head (model/lexical_heads.py) → temperatures → joint
category/subcategory decoding → top-k per head → `auto` or `review` (model/calibration.py).
Needs onnxruntime, tokenizers and numpy only.

    router = Router.load("bundles/haikou12345-v1")
    [r] = router.route(["小区门口有机动车乱停放，堵住了消防通道"])
    r.department.label, r.decision
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from model.bundle import Bundle, load_bundle
from model.errors import BundleError, ModelOutputError
from model.hierarchy import Ranked, decode
from model.lexical_heads import fuse
from model.normalize import normalize_text
from model.taxonomy import DutyEntry

TOP_K = 3


@dataclass(frozen=True)
class HeadPrediction:
    label: str
    confidence: float
    top: tuple[tuple[str, float], ...]

    @classmethod
    def from_ranked(cls, ranked: Ranked) -> HeadPrediction:
        return cls(label=ranked.label, confidence=ranked.confidence,
                   top=tuple(zip(ranked.labels, ranked.confidences, strict=True)))

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "confidence": round(self.confidence, 4),
                "top": [{"label": lab, "confidence": round(c, 4)} for lab, c in self.top]}


@dataclass(frozen=True)
class Routing:
    """Where one complaint goes. `subcategory.label` is the key `category/subcategory`."""

    text: str  # the normalised text the model read
    heads: dict[str, HeadPrediction]
    duty: DutyEntry | None  # the duty-list entry of the chosen subcategory
    decision: str  # "auto" or "review"
    model_version: str
    embedding: np.ndarray = field(repr=False, compare=False)

    @property
    def category(self) -> HeadPrediction | None:
        return self.heads.get("category")

    @property
    def subcategory(self) -> HeadPrediction | None:
        return self.heads.get("subcategory")

    @property
    def department(self) -> HeadPrediction | None:
        return self.heads.get("department")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {h: p.to_dict() for h, p in self.heads.items()}
        out["duty"] = None if self.duty is None else {
            "category": self.duty.category, "subcategory": self.duty.subcategory,
            "department": self.duty.department or None, "time_limit": self.duty.time_limit or None,
            "legal_basis": self.duty.legal_basis or None}
        out["decision"] = self.decision
        out["model_version"] = self.model_version
        return out


class Router:
    """A loaded bundle that routes texts. Thread-safe: onnxruntime sessions may run concurrently."""

    def __init__(self, bundle: Bundle, *, threads: int | None = None, batch_size: int = 32):
        self.bundle = bundle
        self.batch_size = batch_size
        self.spaces = bundle.spaces
        self._label_index = {h: {lab: i for i, lab in enumerate(s)} for h, s in self.spaces.items()}
        self.name = f"router {bundle.version}"
        self._prefix = str(bundle.manifest.get("prefix", ""))
        # duplicate similarity's lexical half (model/lexical.py); None: embeddings only
        self.lexical = bundle.lexical()
        self._tokenizer = Tokenizer.from_file(str(bundle.tokenizer_path))
        self._tokenizer.enable_truncation(int(bundle.manifest["max_length"]))
        self._tokenizer.no_padding()
        self._pad_id = int(bundle.manifest.get("pad_id", 0))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or int(os.environ.get("HUYING_THREADS", "0"))
        self._session = ort.InferenceSession(str(bundle.model_path), options,
                                             providers=["CPUExecutionProvider"])
        outputs = [o.name for o in self._session.get_outputs()]
        expected = [f"logits_{h}" for h in bundle.heads] + ["embedding"]
        if outputs != expected:
            raise BundleError(f"bundle {bundle.path}: model.onnx outputs {outputs}, "
                              f"the manifest expects {expected}")
        self.lexical_heads = bundle.lexical_heads()
        self._fusion = dict(bundle.manifest.get("fusion", {}))
        if self.lexical_heads is not None:
            for head, w in self.lexical_heads.weights.items():
                if head not in self.spaces or w.shape[1] != len(self.spaces[head]):
                    raise BundleError(f"bundle {bundle.path}: lexical_heads.npz has {w.shape[1]} "
                                      f"{head} labels, the label space has "
                                      f"{len(self.spaces.get(head, ()))}")
        for o in self._session.get_outputs()[:-1]:
            head = o.name.removeprefix("logits_")
            if o.shape[-1] != len(self.spaces[head]):
                raise BundleError(f"bundle {bundle.path}: model.onnx gives {o.shape[-1]} {head} "
                                  f"logits, the label space has {len(self.spaces[head])}")

    @classmethod
    def load(cls, path: str | Path, **kwargs: Any) -> Router:
        return cls(load_bundle(path), **kwargs)

    def parts(self) -> dict[str, Router]:
        """The hybrid's parts as routers of their own (encoder alone, char n-grams alone), for
        evaluation beside the whole; {} for a bundle without the n-gram part."""
        if self.lexical_heads is None:
            return {}
        out = {}
        for part, weights in (("encoder", (1.0, 0.0)), ("char n-grams", (0.0, 1.0))):
            router = copy.copy(self)
            router._fusion = {h: {"encoder": weights[0], "lexical": weights[1]}
                              for h in self.lexical_heads.heads}
            router.name = f"{self.name}: {part} alone"
            out[part] = router
        return out

    @property
    def version(self) -> str:
        return self.bundle.version

    def infer(self, texts: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Logits per head (the encoder's, fused with the char n-gram part where the bundle has
        one) and embeddings for already-normalised texts, in input order."""
        encoder, lexical, embeddings = self._infer_parts(texts)
        return (encoder if lexical is None else fuse(encoder, lexical, self._fusion)), embeddings

    def _infer_parts(self, texts: Sequence[str]
                     ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None, np.ndarray]:
        """The encoder's logits, the n-gram scores (None without that part) and embeddings."""
        heads = self.bundle.heads
        n = len(texts)
        logits = {h: np.zeros((n, len(self.spaces[h])), dtype=np.float32) for h in heads}
        embeddings = np.zeros((n, 0), dtype=np.float32)
        encodings = self._tokenizer.encode_batch([self._prefix + t for t in texts])
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")  # less padding
        for start in range(0, n, self.batch_size):
            rows = order[start:start + self.batch_size]
            width = max(len(encodings[i].ids) for i in rows)
            ids = np.full((len(rows), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                seq = encodings[i].ids
                ids[r, : len(seq)] = seq
                mask[r, : len(seq)] = 1
            *head_logits, emb = self._session.run(None, {"input_ids": ids, "attention_mask": mask})
            if embeddings.shape[1] == 0:
                embeddings = np.zeros((n, emb.shape[1]), dtype=np.float32)
            embeddings[rows] = emb
            for h, values in zip(heads, head_logits, strict=True):
                logits[h][rows] = values
        lexical = None if self.lexical_heads is None else self.lexical_heads.scores(texts)
        return logits, lexical, embeddings

    def predict_proba(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        logits, _ = self.infer([normalize_text(t) for t in texts])
        return self.bundle.calibration.probabilities(logits)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.infer([normalize_text(t) for t in texts])[1]

    def route(self, texts: Sequence[str], *, check_finite: bool = True) -> list[Routing]:
        """One Routing per text. ModelOutputError if the model gives a non-finite output for any
        of them (a damaged model must fail, never dispatch); `check_finite=False` is for
        model/probes.py, which measures how far off such a model is."""
        normalised = [normalize_text(t) for t in texts]
        if not normalised:
            return []
        encoder, lexical, embeddings = self._infer_parts(normalised)
        logits = encoder if lexical is None else fuse(encoder, lexical, self._fusion)
        if check_finite:
            finite = np.isfinite(embeddings).all(axis=1)
            for values in logits.values():
                finite &= np.isfinite(values).all(axis=1)
            if not finite.all():
                raise ModelOutputError(
                    f"the model ({self.version}) gave non-finite outputs for "
                    f"{int((~finite).sum())} of {len(texts)} complaints; the bundle is damaged: "
                    "swap in another version")
        calibration = self.bundle.calibration
        probs = calibration.probabilities(logits)
        ranked = decode(probs, self.spaces, k=TOP_K)
        chosen_index = {h: np.array([self._label_index[h][row[h].label] for row in ranked])
                        for h in probs}
        p_correct = calibration.p_correct(probs, encoder, lexical, chosen_index)
        out = []
        for i, row in enumerate(ranked):
            chosen = {h: (int(chosen_index[h][i]), r.confidence) for h, r in row.items()}
            decision = (calibration.decide(chosen, {h: float(p[i]) for h, p in p_correct.items()})
                        if normalised[i] else "review")
            duty = None
            if "subcategory" in row:
                duty = self.bundle.taxonomy.entry(row["subcategory"].label)
            out.append(Routing(text=normalised[i],
                               heads={h: HeadPrediction.from_ranked(r) for h, r in row.items()},
                               duty=duty, decision=decision, model_version=self.version,
                               embedding=embeddings[i]))
        return out
