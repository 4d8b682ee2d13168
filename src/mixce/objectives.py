"""Token-level training objectives, registered by name (:func:`register`, :func:`get_spec`).

An objective maps ``(logits (B, T, V), targets (B, T), mask (B, T), **hyper)`` to the mean loss
over the real (``mask``) target tokens. Its :class:`ObjectiveSpec` gives its hyper-parameters
(:func:`check_hyper`), whether it takes ``reference_logits`` (a frozen second model's on the
same inputs: LFD's degenerative model) and whether it takes ``state``, a caller-owned dict
saved in resume checkpoints (``state=None``: evaluation, the state unused).

All compute in float32 at least (:func:`float_logits`: safe under bf16 autocast). MixCE's
token weight lives in :func:`mixce_weight` only; the synthetic track uses it too.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

Objective = Callable[..., Tensor]


@dataclasses.dataclass(frozen=True)
class ObjectiveSpec:
    """A registered objective: its function, hyper-parameter defaults and what it takes."""

    name: str
    fn: Objective
    hyper: Mapping[str, float | None]  # name -> default (None: required)
    needs_reference: bool = False
    stateful: bool = False


OBJECTIVES: dict[str, ObjectiveSpec] = {}


def register(
    name: str,
    *,
    hyper: Mapping[str, float | None] | None = None,
    reference: bool = False,
    stateful: bool = False,
) -> Callable[[Objective], Objective]:
    """Register ``fn`` under ``name`` in :data:`OBJECTIVES` (fields of :class:`ObjectiveSpec`)."""

    def wrap(fn: Objective) -> Objective:
        if name in OBJECTIVES:
            raise ValueError(f"objective {name!r} is registered twice")
        OBJECTIVES[name] = ObjectiveSpec(name, fn, dict(hyper or {}), reference, stateful)
        return fn

    return wrap


def get_spec(name: str) -> ObjectiveSpec:
    """The :class:`ObjectiveSpec` registered as ``name``; a KeyError lists the known names."""
    try:
        return OBJECTIVES[name]
    except KeyError:
        known = ", ".join(objective_names())
        raise KeyError(f"unknown objective {name!r}: known objectives are {known}") from None


def get_objective(name: str) -> Objective:
    """The function of the objective registered as ``name``."""
    return get_spec(name).fn


def objective_names() -> list[str]:
    """The registered objective names, sorted."""
    return sorted(OBJECTIVES)


def check_hyper(name: str, hyper: Mapping[str, float]) -> dict[str, float]:
    """``hyper`` with the defaults of objective ``name`` filled in, as floats, sorted by key;
    ValueError naming the objective and key for one it does not take or needs and lacks."""
    spec = get_spec(name)
    takes = ", ".join(sorted(spec.hyper)) or "none"
    unknown = sorted(set(hyper) - set(spec.hyper))
    if unknown:
        raise ValueError(
            f"objective {name!r} takes no hyper-parameter {unknown[0]!r} "
            f"(its hyper-parameters: {takes})"
        )
    out: dict[str, float] = {}
    for key in sorted(spec.hyper):
        value = hyper.get(key, spec.hyper[key])
        if value is None:
            raise ValueError(
                f"objective {name!r} needs hyper-parameter {key!r} (no default; "
                f"its hyper-parameters: {takes})"
            )
        out[key] = float(value)
    return out


def float_logits(logits: Tensor) -> Tensor:
    """``logits`` in float32 at least (bf16/fp16 logits are upcast before any softmax)."""
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


def token_logprobs(logits: Tensor, targets: Tensor) -> Tensor:
    """log q(target) for every position: logits (..., V), targets (...) -> (...)."""
    return F.log_softmax(float_logits(logits), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` over positions where ``mask`` is true."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def mixce_weight(logq: Tensor, eta: float) -> Tensor:
    """MixCE's token weight ``eta + (1 - eta) * q`` with q = exp(logq) detached (paper eq. 10)."""
    return eta + (1.0 - eta) * logq.detach().exp()


@register("mle")
def mle(logits: Tensor, targets: Tensor, mask: Tensor, **_: float) -> Tensor:
    """Forward cross-entropy (maximum likelihood): mean token NLL, ``mean_t -log q(x_t)``."""
    return masked_mean(-token_logprobs(logits, targets), mask)


@register("mixce", hyper={"eta": None})
def mixce(logits: Tensor, targets: Tensor, mask: Tensor, eta: float, **_: float) -> Tensor:
    """MixCE (paper eq. 10): ``mean_t -w_t log q(x_t)``, ``w_t = eta + (1 - eta) stopgrad(q)``
    (eta = 1: MLE)."""
    logq = token_logprobs(logits, targets)
    return masked_mean(-mixce_weight(logq, eta) * logq, mask)


@register("tailr", hyper={"gamma": None, "w_min": 0.0})
def tailr(logits: Tensor, targets: Tensor, mask: Tensor, gamma: float, w_min: float) -> Tensor:
    """TaiLr (Ji et al. 2023): ``mean_t -w_t log q(x_t)``, detached weight
    ``w_t = clamp(q_t / (gamma + (1 - gamma) q_t), w_min, 1)`` (gamma = 0: MLE; 1: w_t = q_t),
    in log space (an underflowing q never gives 0/0). ``w_min``: TaiLr's floor for rare tokens.
    """
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"tailr: gamma must be in [0, 1], got {gamma}")
    logq = token_logprobs(logits, targets)
    detached = logq.detach()
    log_gamma = math.log(gamma) if gamma > 0 else -math.inf
    log_rest = math.log(1.0 - gamma) if gamma < 1 else -math.inf
    log_denominator = torch.logaddexp(torch.full_like(detached, log_gamma), detached + log_rest)
    weight = (detached - log_denominator).exp().clamp(min=w_min, max=1.0)
    return masked_mean(-weight * logq, mask)


@register("loss_truncation", hyper={"c": 0.4, "buffer": 10000.0}, stateful=True)
def loss_truncation(
    logits: Tensor,
    targets: Tensor,
    mask: Tensor,
    c: float,
    buffer: float,
    state: dict[str, Any] | None,
) -> Tensor:
    """Loss truncation (Kang and Hashimoto 2020): NLL without the highest-loss sequences.

    ``state`` is a ring buffer of the last ``buffer`` row mean NLLs ``l_i`` seen in training
    (``state["losses"]``, float32, CPU; ``state["seen"]``: how many ever pushed). Each call
    pushes this micro-batch's, then, once the buffer is full, drops rows with
    ``l_i > quantile(buffer, 1 - c)`` (linear, as numpy's percentile). Loss: kept rows' token
    NLL sum / the batch's real tokens (dropped rows count as zero, as the reference
    ``LossDropper``). ``state=None``: token-mean NLL. Unlike the reference, the cut-off is
    recomputed every call (it: every 10000 losses) and ties with it are kept (it: ``l < cut``).
    """
    nll = -token_logprobs(logits, targets)
    if state is None:
        return masked_mean(nll, mask)
    if not 0.0 <= c < 1.0:
        raise ValueError(f"loss_truncation: c must be in [0, 1), got {c}")
    size = int(buffer)
    if size < 1 or size != buffer:
        raise ValueError(f"loss_truncation: buffer must be a positive integer, got {buffer}")
    maskf = mask.to(nll.dtype)
    per_row = (nll.detach() * maskf).sum(-1) / maskf.sum(-1).clamp_min(1.0)
    real_rows = mask.any(-1)

    if "losses" not in state:
        state["losses"] = torch.zeros(size, dtype=torch.float32)
        state["seen"] = torch.zeros((), dtype=torch.long)
    losses: Tensor = state["losses"]
    pushed = per_row[real_rows].float().cpu()
    seen = int(state["seen"])
    start = seen + len(pushed) - min(len(pushed), size)  # more rows than slots: the last ones
    losses[(start + torch.arange(min(len(pushed), size))) % size] = pushed[-size:]
    state["seen"] = torch.tensor(seen + len(pushed), dtype=torch.long)

    keep = torch.ones_like(real_rows)
    if int(state["seen"]) >= size:
        cutoff = torch.quantile(losses, 1.0 - c)
        keep = per_row.float() <= cutoff.to(per_row.device)
    kept_tokens = maskf * keep[:, None].to(maskf.dtype)
    return (nll * kept_tokens).sum() / maskf.sum().clamp_min(1.0)


def previous_context_candidates(targets: Tensor, mask: Tensor, vocab: int) -> Tensor:
    """Boolean (B, T, V): v is a negative candidate at position t of row b, i.e. an earlier
    real target of the row (``targets[b, s]``, ``s < t``, ``mask[b, s]``) other than
    ``targets[b, t]`` (the row's first input token, never a target, is not one)."""
    batch, length = targets.shape
    earlier = torch.ones(length, length, dtype=torch.bool, device=targets.device).tril(-1)
    valid = earlier[None] & mask[:, None, :]  # (B, t, s)
    # Invalid (t, s) pairs point at an extra column V that is cut off afterwards, so that no
    # two writes of different values ever hit the same cell.
    index = torch.where(valid, targets[:, None, :].expand(batch, length, length), vocab)
    candidates = torch.zeros(batch, length, vocab + 1, dtype=torch.bool, device=targets.device)
    candidates.scatter_(2, index, True)
    candidates.scatter_(2, targets[..., None], False)
    return candidates[..., :vocab]


@register("unlikelihood", hyper={"alpha": 1.0})
def unlikelihood(logits: Tensor, targets: Tensor, mask: Tensor, alpha: float) -> Tensor:
    """Token-level unlikelihood training (Welleck et al. 2020):
    ``mean_t [-log q(x_t) + alpha sum_{c in C_t} -log max(1 - q(c), 1e-5)]``, C_t the
    :func:`previous_context_candidates`; the clamp at 1e-5 is the reference implementation's."""
    logp = F.log_softmax(float_logits(logits), dim=-1)
    nll = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    candidates = previous_context_candidates(targets, mask, logits.shape[-1])
    one_minus = (1.0 - logp.exp()).clamp_min(1e-5)
    penalty = -(one_minus.log() * candidates).sum(-1)
    return masked_mean(nll + alpha * penalty, mask)


@register("truncated_ce", hyper={"keep": 0.5})
def truncated_ce(logits: Tensor, targets: Tensor, mask: Tensor, keep: float) -> Tensor:
    """LFD's degenerative-model loss: mean NLL of the ``k = max(1, ceil(keep * n))`` lowest-NLL
    of the n real tokens of the (micro-)batch, ties by position; the rest get no gradient."""
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"truncated_ce: keep must be in (0, 1], got {keep}")
    nll = -token_logprobs(logits, targets)[mask]
    if nll.numel() == 0:
        return nll.sum()
    k = max(1, math.ceil(keep * nll.numel()))
    order = torch.sort(nll.detach(), stable=True).indices[:k]
    return nll[order].mean()


@register("lfd", hyper={"mle_weight": 0.0}, reference=True)
def lfd(
    logits: Tensor, targets: Tensor, mask: Tensor, mle_weight: float, reference_logits: Tensor
) -> Tensor:
    """LFD's main-model loss (product of experts with a frozen degenerative model r):
    ``mean_t -log softmax(log_softmax(z_t) + stopgrad(log_softmax(r_t)))[x_t]
    + mle_weight * mean_t -log softmax(z_t)[x_t]``. The LFD paper's loss "includes both
    standard MLE and PoE-based loss" with no weight we could recover: ``mle_weight`` is ours,
    0 by default (PoE only)."""
    logp = F.log_softmax(float_logits(logits), dim=-1)
    ref = F.log_softmax(float_logits(reference_logits.detach()), dim=-1)
    poe = F.log_softmax(logp + ref, dim=-1)
    loss = masked_mean(-poe.gather(-1, targets.unsqueeze(-1)).squeeze(-1), mask)
    if mle_weight:
        nll = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        loss = loss + mle_weight * masked_mean(nll, mask)
    return loss
