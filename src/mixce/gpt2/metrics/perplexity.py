"""Per-token negative log-likelihoods and perplexity (paper section 4.2; docs/PROTOCOL.md,
point ``perplexity_average``).

Token t is scored given tokens 0..t-1; a sequence's first token (no BOS is prepended) is not
scored. Natural logarithms. NLLs are always float32: autocast off around the forward pass,
logits promoted to float32 before the log-softmax (the ``precision`` point does not reach
here). :func:`perplexity` averages them two ways: ``clean``, exp of the token-weighted mean
NLL over the test set; ``official``, the released evaluation loop: the texts in file order,
in batches of :data:`RELEASED_EVAL_BATCH_SIZE`, the mean of each batch's token-mean NLL
weighted by the batch's number of texts (the last may be smaller), then exp.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from mixce.device import resolve_device
from mixce.gpt2.metrics.features import length_batches, pad_right

#: Texts per evaluation batch in the released code (run.py's ``eval_batch_size`` for every
#: model size): the batches whose token means its perplexity averages.
RELEASED_EVAL_BATCH_SIZE = 32


@torch.no_grad()
def token_nll(
    model: Any,
    sequences: Sequence[Sequence[int]],
    *,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
) -> list[np.ndarray]:
    """NLL (nats) of tokens 1..T-1 of each sequence, float32 arrays of length T-1, from a
    causal LM (``model(input_ids=..., attention_mask=...).logits``) already on ``device``, in
    eval mode for the call; batched longest first, right-padded. ValueError for a sequence
    longer than the model's context (``config.n_positions``)."""
    device = device if isinstance(device, torch.device) else resolve_device(device)
    seqs = [list(s) for s in sequences]
    limit = getattr(getattr(model, "config", None), "n_positions", None)
    if limit is not None:
        too_long = [i for i, s in enumerate(seqs) if len(s) > limit]
        if too_long:
            raise ValueError(
                f"{len(too_long)} sequence(s) longer than the model's {limit} positions "
                f"(first: index {too_long[0]}, {len(seqs[too_long[0]])} tokens)"
            )
    was_training = model.training
    model.eval()
    out: list[np.ndarray] = [np.zeros(0, dtype=np.float32) for _ in seqs]
    scored = [i for i, s in enumerate(seqs) if len(s) >= 2]
    try:
        for batch_pos in length_batches([len(seqs[i]) for i in scored], batch_size):
            batch = [scored[j] for j in batch_pos]
            ids, mask = pad_right([seqs[i] for i in batch])
            ids, mask = ids.to(device), mask.to(device)
            with torch.autocast(device_type=device.type, enabled=False):
                logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            logp = torch.log_softmax(logits, dim=-1)
            nll = -logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1).cpu().numpy()
            for row, i in enumerate(batch):
                out[i] = nll[row, : len(seqs[i]) - 1].astype(np.float32)
    finally:
        model.train(was_training)
    return out


def continuation_nll(
    model: Any,
    prompts: Sequence[Sequence[int]],
    continuations: Sequence[Sequence[int]],
    *,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
) -> list[np.ndarray]:
    """NLL (nats) of each continuation's tokens given its prompt, which must hold a token."""
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


def perplexity(
    token_nlls: Iterable[np.ndarray],
    average: str = "clean",
    batch_size: int = RELEASED_EVAL_BATCH_SIZE,
) -> dict[str, float | int | str]:
    """``{"average", "tokens", ("batch_size",) "ppl", "nll"}`` (nan if no token) of one NLL
    array per text, in file order (official: the released loop repeats a batch's mean once
    per slot and keeps the first #texts slots; a batch without a token counts 0, as the
    released mean of an empty batch, 0 / 1e-15)."""
    if average not in ("official", "clean"):
        raise ValueError(f"perplexity_average: official or clean, not {average!r}")
    arrays = [np.asarray(nll, dtype=np.float64).ravel() for nll in token_nlls]
    count = int(sum(a.size for a in arrays))
    result: dict[str, float | int | str] = {"average": average, "tokens": count}
    if count == 0:
        return {**result, "ppl": math.nan, "nll": math.nan}
    if average == "clean":
        mean = float(sum(a.sum() for a in arrays)) / count
    else:
        weighted = 0.0
        for start in range(0, len(arrays), batch_size):
            batch = arrays[start : start + batch_size]
            tokens = sum(a.size for a in batch)
            batch_mean = float(sum(a.sum() for a in batch)) / tokens if tokens else 0.0
            weighted += len(batch) * batch_mean
        mean = weighted / len(arrays)
        result["batch_size"] = int(batch_size)
    return {**result, "ppl": math.exp(mean), "nll": mean}
