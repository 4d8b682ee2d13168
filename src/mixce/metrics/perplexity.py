"""Per-token negative log-likelihoods and perplexity (paper section 4.2, REFERENCE "Metrics").

ppl = exp(-(1 / #tokens) sum log Q(x_t | x_<t)): the exponential of the token-weighted mean
NLL over the whole test set (:func:`perplexity`). Token t of a sequence is scored given
tokens 0..t-1; the first token of a sequence has no context (no BOS is prepended) and is not
scored. Natural logarithms; logits are promoted to float32 before the log-softmax.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from mixce.metrics.features import length_batches, pad_right
from mixce.models import resolve_device

__all__ = ["continuation_nll", "perplexity", "token_nll"]


def _max_positions(model: Any) -> int | None:
    config = getattr(model, "config", None)
    for key in ("n_positions", "max_position_embeddings"):
        value = getattr(config, key, None)
        if isinstance(value, int):
            return value
    return None


@torch.no_grad()
def token_nll(
    model: Any,
    sequences: Sequence[Sequence[int]],
    *,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
) -> list[np.ndarray]:
    """NLL (nats) of tokens 1..T-1 of each sequence, as float32 arrays of length T-1.

    ``model`` is a causal LM called as ``model(input_ids=..., attention_mask=...)`` whose
    output has ``.logits`` ``[b, T, V]``. Sequences are batched (longest first) with right
    padding and an attention mask; a sequence of fewer than 2 tokens gives an empty array.
    The model must already be on ``device`` (``"auto"`` = cuda if available); it is put in
    eval mode for the call and back in training mode afterwards if it was.
    Raises ValueError for a sequence longer than the model's context.
    """
    device = device if isinstance(device, torch.device) else resolve_device(device)
    seqs = [list(s) for s in sequences]
    limit = _max_positions(model)
    if limit is not None:
        too_long = [i for i, s in enumerate(seqs) if len(s) > limit]
        if too_long:
            raise ValueError(
                f"{len(too_long)} sequence(s) longer than the model's {limit} positions "
                f"(first: index {too_long[0]}, {len(seqs[too_long[0]])} tokens)"
            )
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    out: list[np.ndarray] = [np.zeros(0, dtype=np.float32) for _ in seqs]
    scored = [i for i, s in enumerate(seqs) if len(s) >= 2]
    try:
        for batch_pos in length_batches([len(seqs[i]) for i in scored], batch_size):
            batch = [scored[j] for j in batch_pos]
            ids, mask = pad_right([seqs[i] for i in batch])
            ids, mask = ids.to(device), mask.to(device)
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            logp = torch.log_softmax(logits, dim=-1)
            nll = -logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1).cpu().numpy()
            for row, i in enumerate(batch):
                out[i] = nll[row, : len(seqs[i]) - 1].astype(np.float32)
    finally:
        if was_training and hasattr(model, "train"):
            model.train()
    return out


def continuation_nll(
    model: Any,
    prompts: Sequence[Sequence[int]],
    continuations: Sequence[Sequence[int]],
    *,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
) -> list[np.ndarray]:
    """NLL (nats) of each continuation's tokens given its prompt (arrays of ``len(cont)``).

    Every prompt must hold at least one token (prepend a BOS/EOS yourself to score a whole
    text); the prompt's own tokens are not scored.
    """
    if len(prompts) != len(continuations):
        raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations")
    empty = [i for i, p in enumerate(prompts) if len(p) == 0]
    if empty:
        raise ValueError(f"{len(empty)} empty prompt(s), first at index {empty[0]}")
    joined = [list(p) + list(c) for p, c in zip(prompts, continuations, strict=True)]
    nlls = token_nll(model, joined, batch_size=batch_size, device=device)
    return [
        nll[len(nll) - len(c) :] if len(c) else np.zeros(0, dtype=np.float32)
        for nll, c in zip(nlls, continuations, strict=True)
    ]


def perplexity(token_nlls: Iterable[np.ndarray]) -> dict[str, float | int]:
    """``{"ppl": exp(nll), "nll": token-weighted mean NLL, "tokens": count}`` (nan if none)."""
    total = 0.0
    count = 0
    for nll in token_nlls:
        values = np.asarray(nll, dtype=np.float64)
        total += float(values.sum())
        count += int(values.size)
    if count == 0:
        return {"ppl": math.nan, "nll": math.nan, "tokens": 0}
    mean = total / count
    return {"ppl": math.exp(mean), "nll": mean, "tokens": count}
