"""The router's second part: a char n-gram linear model per head, fused with the encoder's logits.

The encoder knows topics; character n-grams see the road, the community, the shop named, and
make different mistakes. Each head's served logits are `encoder_weight * encoder logits +
lexical_weight * lexical scores`, with weights chosen on held-out dev predictions
(training/lexical_heads.py) so the fusion is never worse on dev than either part alone; the
temperatures and thresholds are then fitted on the fused logits.

Features are scikit-learn's `TfidfVectorizer(analyzer="char", ngram_range=(1, 3),
sublinear_tf=True)` over a fixed vocabulary, computed here with the n-grams of model/lexical.py:
tf = 1 + ln(count), times the stored idf, L2-normalised. A linear layer over sparse features is a
gather and a sum: numpy only, no scikit-learn at serve time.

    heads = LexicalHeads.load(bundle.path / "lexical_heads.npz")
    scores = heads.scores(["小区门口路灯不亮"])   # {"department": n × labels, …}
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from model.errors import BundleError
from model.lexical import char_ngrams

FILE = "lexical_heads.npz"


class LexicalHeads:
    """Per-head linear scores of char n-gram TF-IDF features (see the module docstring)."""

    def __init__(self, vocabulary: Sequence[str], idf: np.ndarray,
                 weights: Mapping[str, np.ndarray], biases: Mapping[str, np.ndarray]):
        self.vocabulary = list(vocabulary)
        self._index = {g: i for i, g in enumerate(self.vocabulary)}
        self.idf = np.asarray(idf, dtype=np.float32)
        self.weights = {h: np.asarray(w) for h, w in weights.items()}
        self.biases = {h: np.asarray(b, dtype=np.float32) for h, b in biases.items()}
        problems = [f"{h}: {w.shape[0]} weight rows for {len(self.vocabulary)} n-grams"
                    for h, w in self.weights.items() if w.shape[0] != len(self.vocabulary)]
        problems += [f"{h}: {len(self.biases.get(h, []))} biases for {w.shape[1]} labels"
                     for h, w in self.weights.items() if len(self.biases.get(h, [])) != w.shape[1]]
        if len(self.idf) != len(self.vocabulary):
            problems.append(f"{len(self.idf)} idf values for {len(self.vocabulary)} n-grams")
        if problems:
            raise BundleError(f"{FILE} is inconsistent: " + "; ".join(problems))

    @property
    def heads(self) -> tuple[str, ...]:
        return tuple(self.weights)

    def features(self, normalised: str) -> tuple[np.ndarray, np.ndarray]:
        """(indices, values) of one already-normalised text's TF-IDF row."""
        counts = Counter(g for g in char_ngrams(normalised) if g in self._index)
        if not counts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        index = np.fromiter((self._index[g] for g in counts), dtype=np.int64, count=len(counts))
        values = (1 + np.log(np.fromiter(counts.values(), dtype=np.float32))) * self.idf[index]
        return index, values / np.linalg.norm(values)

    def scores(self, normalised: Sequence[str]) -> dict[str, np.ndarray]:
        """Linear scores per head for already-normalised texts (n × labels each)."""
        rows = [self.features(t) for t in normalised]
        out = {}
        for head, w in self.weights.items():
            scores = np.tile(self.biases[head], (len(rows), 1))
            for i, (index, values) in enumerate(rows):
                if len(index):
                    scores[i] += values @ w[index].astype(np.float32)
            out[head] = scores
        return out

    def save(self, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {"vocabulary": np.array(self.vocabulary), "idf": self.idf}
        for head in self.heads:
            arrays[f"weights_{head}"] = self.weights[head].astype(np.float16)
            arrays[f"bias_{head}"] = self.biases[head]
        with open(path, "wb") as f:
            np.savez_compressed(f, **arrays)  # type: ignore[arg-type]  # numpy stubs

    @classmethod
    def load(cls, path: Path) -> LexicalHeads:
        try:
            with np.load(path, allow_pickle=False) as data:
                heads = [k.removeprefix("weights_") for k in data.files if k.startswith("weights_")]
                return cls([str(g) for g in data["vocabulary"]], data["idf"],
                           {h: data[f"weights_{h}"] for h in heads},
                           {h: data[f"bias_{h}"] for h in heads})
        except (OSError, KeyError, ValueError) as exc:
            raise BundleError(f"{path} is not a readable lexical heads file: {exc}") from exc


def fuse(encoder: Mapping[str, np.ndarray], lexical: Mapping[str, np.ndarray],
         weights: Mapping[str, Mapping[str, float]]) -> dict[str, np.ndarray]:
    """Each head's fused logits; a head without weights keeps the encoder's."""
    out = {}
    for head, logits in encoder.items():
        w = weights.get(head)
        if w is None or head not in lexical:
            out[head] = logits
        else:
            out[head] = float(w["encoder"]) * logits + float(w["lexical"]) * lexical[head]
    return out
