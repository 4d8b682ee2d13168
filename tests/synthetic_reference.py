"""Reference code of the synthetic track that only tests and bench scripts use (no rule reaches
it): the exact estimator's expected sums through autograd, per-row JS and one-off comparisons."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mixce.synthetic.metrics import Comparer, _js_from_parts, _xlogx_rows
from mixce.synthetic.model import NeuralBigram
from mixce.synthetic.objectives import (
    Batch,
    Setting,
    count_loss,
    objective_loss,
    occupancy_backward,
    occupancy_forward,
)
from mixce.synthetic.settings import FIXED_ETA, check_objective


class _Occupancy(torch.autograd.Function):
    """Autograd wrapper of :func:`occupancy_forward` / :func:`occupancy_backward`."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, start: torch.Tensor, a: torch.Tensor, steps: int
    ) -> torch.Tensor:
        n, ctx.state = occupancy_forward(start, a, steps)
        return n

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        out = torch.zeros_like(grad), torch.zeros_like(ctx.state.a)
        grad_start, grad_a = occupancy_backward(ctx.state, grad, out)
        return grad_start, grad_a, None


def occupancy(chain: torch.Tensor, max_length: int) -> torch.Tensor:
    """Expected visits of each row state at positions whose successor is drawn (BOS once,
    tokens at positions 1 .. max_length - 2, EOS never left: V + 1 entries), differentiable."""
    v = chain.shape[1]
    n = chain.new_zeros(v + 1)
    n[v] = 1.0
    if max_length - 2 >= 1:
        n_tok = _Occupancy.apply(chain[v, : v - 1], chain[: v - 1, : v - 1], max_length - 2)
        n = torch.cat([n_tok, chain.new_zeros(1), chain.new_ones(1)])
    return n


def expected_sum(chain: torch.Tensor, per_step: torch.Tensor, max_length: int) -> torch.Tensor:
    """E[sum over drawn transitions of per_step[prev, next]] for sequences from ``chain``."""
    n = occupancy(chain, max_length)
    return (n[:, None] * chain * per_step).sum()


def autograd_loss(
    name: str,
    eta: float,
    model: NeuralBigram,
    batch: Batch,
    s: Setting,
    rng: np.random.Generator | None,
) -> tuple[torch.Tensor, float]:
    """objective_loss, whose exact estimator's expectations under Q (every objective but JS and
    MixCE) are :func:`expected_sum` through autograd: what training's hand gradient
    (exact_value_and_grad) must equal."""
    if s.estimator != "exact" or name in ("js", "mixce"):
        return objective_loss(name, eta, model, batch, s, rng)
    check_objective(name)
    eta = FIXED_ETA.get(name, eta)
    log_q = F.log_softmax(model.transition_logits(), dim=-1)
    loss = log_q.new_zeros(())
    if eta > 0:
        loss = loss + eta * count_loss(log_q, batch.counts, batch.n_seq, 1.0)
    if eta < 1:
        kl = name in ("reverse_kl", "mix_kl")  # else mixce_star: the reverse cross-entropy
        per_step = log_q - s.log_p if kl else -s.log_p
        loss = loss + (1.0 - eta) * expected_sum(log_q.exp(), per_step, s.max_length)
    return loss, float(loss.detach())


def js_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence (natural log) between matching rows of p and q."""
    p = np.asarray(p, dtype=np.float64)
    return _js_from_parts(p, _xlogx_rows(p), np.asarray(q, dtype=np.float64))


def compare(learned, gold_chain: np.ndarray) -> dict[str, float]:
    """avg.js and avg.0s of ``learned`` against ``gold_chain`` (both (V + 1) x V chains)."""
    return Comparer(gold_chain)(learned)
