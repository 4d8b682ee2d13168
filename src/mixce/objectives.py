"""Token-level training objectives, registered by name with their hyper-parameters.

Every objective is a small function of ``(logits, targets, mask, **hyper)`` that returns the
mean loss over the real (``mask == True``) target tokens of the batch: logits (B, T, V),
targets (B, T) and mask (B, T). The training loop looks objectives up by name
(:func:`get_spec`), so adding one is adding a function here with :func:`register`.

The registry keeps, for each objective, an :class:`ObjectiveSpec`:

- ``hyper``: the hyper-parameters it takes, with their defaults (``None``: no default, the
  run must give it). :func:`check_hyper` fills the defaults and rejects any other name.
- ``needs_reference``: the function also takes ``reference_logits`` (B, T, V), the logits of a
  frozen second model on the same inputs (LFD's degenerative model).
- ``stateful``: the function also takes ``state``, a dict that the caller owns and passes to
  every training call (the objective keeps tensors in it, so that it can be saved in a resume
  checkpoint); ``state=None`` means evaluation: no update of the state, no dependence on it.

Every function computes in float32 (at least) whatever the logits' dtype, so they are safe
under bf16 autocast (:func:`token_logprobs`, :func:`float_logits`).

The MixCE token weight ``eta + (1 - eta) * stopgrad(q)`` lives in :func:`mixce_weight` only;
the synthetic bigram experiments use the same function on their count-matrix path.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F

Objective = Callable[..., torch.Tensor]


@dataclasses.dataclass(frozen=True)
class ObjectiveSpec:
    """A registered objective: its function, hyper-parameter defaults and what it needs."""

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
    """Register ``fn`` under ``name`` in :data:`OBJECTIVES`.

    ``hyper`` maps each hyper-parameter the function takes to its default (``None``: no
    default); ``reference``: the function takes ``reference_logits``; ``stateful``: it takes
    ``state`` (see the module docstring).
    """

    def wrap(fn: Objective) -> Objective:
        if name in OBJECTIVES:
            raise ValueError(f"objective {name!r} is registered twice")
        OBJECTIVES[name] = ObjectiveSpec(
            name=name,
            fn=fn,
            hyper=dict(hyper or {}),
            needs_reference=reference,
            stateful=stateful,
        )
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
    """``hyper`` with the defaults of objective ``name`` filled in, as floats, sorted by key.

    Raises ValueError naming the objective and the key for a hyper-parameter the objective
    does not take, or one it needs that has no default and is not given.
    """
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


# --------------------------------------------------------------------------- helpers


def float_logits(logits: torch.Tensor) -> torch.Tensor:
    """``logits`` in float32 at least (bf16/fp16 logits are upcast before any softmax)."""
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log q(target) for every position: logits (..., V), targets (...) -> (...)."""
    return F.log_softmax(float_logits(logits), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over positions where ``mask`` is true."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def mixce_weight(logq: torch.Tensor, eta: float) -> torch.Tensor:
    """MixCE's token weight ``eta + (1 - eta) * q`` with q = exp(logq) detached (paper eq. 10)."""
    return eta + (1.0 - eta) * logq.detach().exp()


# --------------------------------------------------------------------------- MLE and MixCE


@register("mle")
def mle(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, **_: float
) -> torch.Tensor:
    """Forward cross-entropy (maximum likelihood): mean token NLL, ``mean_t -log q(x_t)``."""
    return masked_mean(-token_logprobs(logits, targets), mask)


@register("mixce", hyper={"eta": None})
def mixce(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, eta: float, **_: float
) -> torch.Tensor:
    """MixCE (paper eq. 10): ``mean_t -w_t log q(x_t)``, ``w_t = eta + (1 - eta) stopgrad(q)``.

    eta = 1 is MLE; eta = 0 weights each token's NLL by its own probability.
    """
    logq = token_logprobs(logits, targets)
    return masked_mean(-mixce_weight(logq, eta) * logq, mask)


# --------------------------------------------------------------------------- TaiLr


@register("tailr", hyper={"gamma": None, "w_min": 0.0})
def tailr(
    logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    gamma: float,
    w_min: float,
) -> torch.Tensor:
    """TaiLr (Ji et al. 2023): ``mean_t -w_t log q(x_t)`` with the detached token weight

    ``w_t = stopgrad(clamp(q_t / (gamma + (1 - gamma) q_t), w_min, 1))``, q_t = q(x_t).

    gamma = 0 gives w_t = 1 (MLE); gamma = 1 gives w_t = q_t (MixCE's eta = 0 term). The
    weight is computed in log space, ``log w = log q - logaddexp(log gamma, log(1-gamma) + log q)``,
    so an underflowing q never gives 0/0. ``w_min`` (default 0: no lower bound, the weight is
    in (0, 1] anyway) is TaiLr's floor that keeps rare tokens from being ignored.
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


# --------------------------------------------------------------------------- loss truncation


@register("loss_truncation", hyper={"c": 0.4, "buffer": 10000.0}, stateful=True)
def loss_truncation(
    logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    c: float,
    buffer: float,
    state: dict[str, Any] | None,
) -> torch.Tensor:
    """Loss truncation (Kang and Hashimoto 2020): NLL without the highest-loss sequences.

    The sequence loss ``l_i`` is the mean token NLL of row i. ``state`` keeps a ring buffer of
    the last ``buffer`` sequence losses seen in training (``state["losses"]``, float32, CPU;
    ``state["seen"]``, the number of sequence losses ever pushed). Each training call first
    pushes this micro-batch's sequence losses, then, if the buffer is *warm* (full: at least
    ``buffer`` losses pushed so far, these included), drops every row with
    ``l_i > quantile(buffer, 1 - c)`` (linear interpolation, as numpy's percentile); before
    that nothing is dropped. The loss is ``sum over kept rows' real tokens of NLL / number of
    real tokens of the whole batch``: dropped rows count as zero, as the reference
    ``LossDropper`` code multiplies them out, so the training loop's token weighting of
    micro-batches is unchanged.

    ``state=None`` (evaluation): plain token-mean NLL, no dropping, no update. Differences
    from the reference code: the cut-off is recomputed at every call (it recomputes every
    ``recompute`` = 10000 losses) and ties with the cut-off are kept (it keeps ``l < cut``).
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
    losses: torch.Tensor = state["losses"]
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


# --------------------------------------------------------------------------- unlikelihood


def previous_context_candidates(
    targets: torch.Tensor, mask: torch.Tensor, vocab: int
) -> torch.Tensor:
    """Boolean (B, T, V): token v is a negative candidate at position t of row b.

    A candidate is a token that is an earlier real target of the same row (``targets[b, s]``
    with ``s < t`` and ``mask[b, s]``) and differs from the current target ``targets[b, t]``.
    The row's very first input token (which is never a target) is not a candidate.
    """
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
def unlikelihood(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, alpha: float
) -> torch.Tensor:
    """Token-level unlikelihood training (Welleck et al. 2020):

    ``mean_t [ -log q(x_t) + alpha * sum_{c in C_t} -log max(1 - q(c), 1e-5) ]``,

    C_t = the distinct earlier targets of the same row other than x_t (see
    :func:`previous_context_candidates`; the row's first input token is not a candidate).
    The clamp of 1 - q at 1e-5 is the reference implementation's. Memory: one boolean
    (B, T, V + 1) tensor besides the float32 probabilities.
    """
    logp = F.log_softmax(float_logits(logits), dim=-1)
    nll = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    candidates = previous_context_candidates(targets, mask, logits.shape[-1])
    one_minus = (1.0 - logp.exp()).clamp_min(1e-5)
    penalty = -(one_minus.log() * candidates).sum(-1)
    return masked_mean(nll + alpha * penalty, mask)


# --------------------------------------------------------------------------- LFD


@register("truncated_ce", hyper={"keep": 0.5})
def truncated_ce(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, keep: float
) -> torch.Tensor:
    """LFD's degenerative-model loss: mean NLL of the ``keep`` fraction of lowest-NLL tokens.

    Of the n real tokens of the batch (for the training loop: of one micro-batch, so the
    quantile is per micro-batch), the ``k = max(1, ceil(keep * n))`` with the smallest NLL are
    kept (ties by position, a stable sort) and the loss is their mean NLL; the other tokens get
    no gradient. keep = 1 is MLE.
    """
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
    logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    mle_weight: float,
    reference_logits: torch.Tensor,
) -> torch.Tensor:
    """LFD's main-model loss (product of experts with a frozen degenerative model):

    ``mean_t -log softmax(log_softmax(z_t) + stopgrad(log_softmax(r_t)))[x_t]
    + mle_weight * mean_t -log softmax(z_t)[x_t]``

    with z the main model's logits and r ``reference_logits`` (the degenerative model's, on the
    same inputs). The LFD paper's main loss "includes both standard MLE and PoE-based loss"
    without a weight we could recover; ``mle_weight`` is our choice, 0 by default (PoE only).
    A uniform reference (all-equal logits) makes the PoE term MLE.
    """
    logp = F.log_softmax(float_logits(logits), dim=-1)
    ref = F.log_softmax(float_logits(reference_logits.detach()), dim=-1)
    poe = F.log_softmax(logp + ref, dim=-1)
    loss = masked_mean(-poe.gather(-1, targets.unsqueeze(-1)).squeeze(-1), mask)
    if mle_weight:
        nll = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        loss = loss + mle_weight * masked_mean(nll, mask)
    return loss
