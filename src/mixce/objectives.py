"""Token-level training objectives, registered by name.

Every objective is a small function of ``(logits, targets, mask, **hyper)`` that returns the
mean loss over the real (``mask == True``) target tokens of the batch. The training loop looks
objectives up by name (``get_objective``), so adding one is adding a function here.

The MixCE token weight ``eta + (1 - eta) * stopgrad(q)`` lives in :func:`mixce_weight` only;
the synthetic bigram experiments use the same function on their count-matrix path.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Objective = Callable[..., torch.Tensor]
OBJECTIVES: dict[str, Objective] = {}


def register(name: str) -> Callable[[Objective], Objective]:
    """Register ``fn`` under ``name`` in :data:`OBJECTIVES`."""

    def wrap(fn: Objective) -> Objective:
        if name in OBJECTIVES:
            raise ValueError(f"objective {name!r} is registered twice")
        OBJECTIVES[name] = fn
        return fn

    return wrap


def get_objective(name: str) -> Objective:
    """The objective registered as ``name``; a KeyError lists the known names."""
    try:
        return OBJECTIVES[name]
    except KeyError:
        known = ", ".join(sorted(OBJECTIVES))
        raise KeyError(f"unknown objective {name!r}: known objectives are {known}") from None


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log q(target) for every position: logits (..., V), targets (...) -> (...)."""
    return (
        F.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
        .gather(-1, targets.unsqueeze(-1))
        .squeeze(-1)
    )


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over positions where ``mask`` is true."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def mixce_weight(logq: torch.Tensor, eta: float) -> torch.Tensor:
    """MixCE's token weight ``eta + (1 - eta) * q`` with q = exp(logq) detached (paper eq. 10)."""
    return eta + (1.0 - eta) * logq.detach().exp()


@register("mle")
def mle(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, **_: float
) -> torch.Tensor:
    """Forward cross-entropy (maximum likelihood): mean token NLL."""
    return masked_mean(-token_logprobs(logits, targets), mask)


@register("mixce")
def mixce(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, eta: float, **_: float
) -> torch.Tensor:
    """MixCE (paper eq. 10): NLL weighted per token by ``eta + (1 - eta) * stopgrad(q)``."""
    logq = token_logprobs(logits, targets)
    return masked_mean(-mixce_weight(logq, eta) * logq, mask)
