"""The six synthetic objectives and their two estimators, in PyTorch (the reference).

All losses are per-sequence expectations (sums over a sequence's counted transitions, averaged
over sequences), as in the public reference code. ``P`` and ``Q`` are chain matrices
((V + 1) x V: token rows, then BOS), see :mod:`mixce.synthetic.data`. Objectives (eta mixes
the forward and the reverse part):

- ``forward_kl``: E_P[-log Q(x)] on the training data (= MLE; KL(P||Q) up to a constant).
- ``reverse_kl``: KL(Q||P) = E_Q[log Q(x) - log P(x)].
- ``mix_kl``: eta * forward + (1 - eta) * reverse KL.
- ``js``: eta * KL(P||M) + (1 - eta) * KL(Q||M), M = eta P + (1 - eta) Q over sequences.
- ``mixce_star``: eta * forward + (1 - eta) * E_Q[-log P(x)] (P known).
- ``mixce``: the approximation of paper eq. 10, token weights eta + (1 - eta) stopgrad(q),
  on the data (shares :func:`mixce.objectives.mixce_weight` with the GPT-2 branch).

Estimators of the expectations under Q:

- ``exact``: for a bigram chain, E_Q[sum_t l(x_{t-1}, x_t)] = sum_r n_Q(r) sum_b Q[r, b] l(r, b),
  n_Q(r) the expected visits of state r at positions whose successor is drawn
  (:func:`mixce.synthetic.exact.occupancy`), differentiated by hand
  (:func:`exact_value_and_grad`). JS's sequence-level mixture does not factor: its Q side
  draws sequences from Q, score-function gradient (leave-one-out baseline).
- ``gumbel``: the paper's straight-through Gumbel-softmax samples (:func:`gumbel_rollout`).

The data terms (forward, MixCE) are sums over a count matrix (same loss and gradient as over
the sequences that made the counts).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mixce.objectives import mixce_weight
from mixce.synthetic import exact
from mixce.synthetic.data import Sequences, sample_sequences
from mixce.synthetic.exact import Occupancy, geometric_coefficients, power_chain
from mixce.synthetic.model import NeuralBigram
from mixce.synthetic.settings import FIXED_ETA, OBJECTIVES, check_objective

ESTIMATORS = ("exact", "gumbel")


def occupancy_forward(
    start: torch.Tensor, a: torch.Tensor, steps: int
) -> tuple[torch.Tensor, Occupancy]:
    """:func:`mixce.synthetic.exact.occupancy_forward` on torch tensors."""
    return exact.occupancy_forward(start, a, steps, lambda x: torch.mv(a.t(), x), torch.stack)


def occupancy_backward(
    state: Occupancy, grad: torch.Tensor, out: tuple[torch.Tensor, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`mixce.synthetic.exact.occupancy_backward` on torch tensors, added into ``out`` =
    (start buffer, A buffer) (no V x V temporary)."""
    big_u, a, k, rho_u = state.big_u, state.a, state.steps, state.rho
    m = big_u.shape[0]
    grad_start, grad_a = out
    # w_s = A^s g for s = 0 .. k - 1: explicit rows, then w_last * c_w[s]
    ws, rho_w = power_chain(lambda x: torch.mv(a, x), grad, k)
    big_w = torch.stack(ws)
    s1 = big_w.shape[0] - 1
    prefix = big_w.cumsum(0)
    c_w = np.cumsum(geometric_coefficients(s1 + 1, rho_w, max(k, 1)))

    def lam_rows(n_idx: np.ndarray) -> torch.Tensor:  # sum_{s<=N} w_s for each N in n_idx
        head = prefix[torch.from_numpy(np.minimum(n_idx, s1)).to(prefix.device)]
        return head + torch.from_numpy(c_w[n_idx]).to(grad)[:, None] * big_w[-1]

    grad_start += lam_rows(np.array([k - 1]))[0]
    # head: t = 1 .. min(m, k - 1), lambda_{t+1} = Wsum(k - t - 1)
    t_head = np.arange(1, min(m, k - 1) + 1)
    if t_head.size:
        grad_a.addmm_(big_u[: t_head.size].t(), lam_rows(k - t_head - 1))
    # tail: t = m + 1 .. k - 1, u_t = rho_u^(t - m) u_m
    if rho_u != 0.0 and k - 1 > m:
        t_tail = np.arange(m + 1, k)
        coef = rho_u ** (t_tail - m)
        n_idx = k - t_tail - 1
        weights = np.bincount(np.minimum(n_idx, s1), weights=coef, minlength=s1 + 1)
        z = torch.from_numpy(weights).to(grad) @ prefix
        z = z + float((coef * c_w[n_idx]).sum()) * big_w[-1]
        grad_a.addr_(big_u[-1], z)
    return grad_start, grad_a


def count_loss(log_q: torch.Tensor, counts: torch.Tensor, n_seq: int, eta: float) -> torch.Tensor:
    """MixCE's data term on a count matrix, per sequence; eta = 1 is the forward CE (MLE)."""
    return -(counts * mixce_weight(log_q, eta) * log_q).sum() / n_seq


def sequence_logq(log_q: torch.Tensor, seqs: Sequences, count_forced: bool = False) -> torch.Tensor:
    """log Q(x) of each sequence (sum over its counted transitions, a forced EOS only with
    ``count_forced``), differentiable."""
    prev, nxt, seq = (
        torch.from_numpy(a.astype(np.int64)).to(log_q.device)
        for a in seqs.transitions(log_q.shape[1], count_forced)
    )
    return log_q.new_zeros(len(seqs)).index_add(0, seq, log_q[prev, nxt])


log_mixture = functools.partial(exact.log_mixture, xp=torch)  # on torch tensors


def gumbel_rollout(
    model: NeuralBigram, log_p: torch.Tensor, n: int, max_length: int, tau: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sequence log Q(x) and log P(x) of n sequences drawn from Q with straight-through
    Gumbel-softmax (hard forward, soft backward), each one-hot fed back through the embedding,
    over the drawn positions 1 .. max_length - 1 (paper / reference)."""
    v = model.vocab_size
    logits = model(torch.full((n,), v, dtype=torch.long, device=log_p.device))
    prev_log_p = log_p[v].expand(n, v)
    alive = log_p.new_ones(n)
    seq_log_q = log_p.new_zeros(n)
    seq_log_p = log_p.new_zeros(n)
    for _ in range(1, max_length):
        y = F.gumbel_softmax(logits, tau=tau, hard=True)
        seq_log_q = seq_log_q + (F.log_softmax(logits, -1) * y).sum(-1) * alive
        seq_log_p = seq_log_p + (prev_log_p * y).sum(-1) * alive
        alive = alive * (1.0 - y[:, v - 1].detach())
        if not bool(alive.any()):
            break
        prev_log_p = y.detach() @ log_p[:v]
        logits = model.from_onehot(y)
    return seq_log_q, seq_log_p


@dataclass
class Batch:
    """What one loss evaluation sees of the data."""

    counts: torch.Tensor  # (V + 1) x V transition counts
    n_seq: int
    seqs: Sequences  # the sequences (JS's P side)
    seq_log_p: torch.Tensor | None  # log P(x) of each sequence (JS only; else None)
    count_forced: bool = False  # a forced EOS is counted (protocol synthetic_forced_eos)


@dataclass
class Setting:
    """Everything about the target and the estimator that a loss needs."""

    log_p: torch.Tensor  # log(P + eps), chain matrix
    max_length: int
    estimator: str
    tau: float
    js_samples: int
    js_clamp: float | None = None  # clamp in JS's log M (protocol synthetic_js_clamp)


def objective_loss(
    name: str,
    eta: float,
    model: NeuralBigram,
    batch: Batch,
    s: Setting,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, float]:
    """(loss to differentiate, its value per sequence) of objective ``name`` at ``eta``; they
    differ only for JS under the exact estimator, whose surrogate carries the score function."""
    check_objective(name)
    if s.estimator not in ESTIMATORS:
        raise KeyError(f"unknown estimator {s.estimator!r}: known are {', '.join(ESTIMATORS)}")
    eta = FIXED_ETA.get(name, eta)
    log_q = F.log_softmax(model.transition_logits(), dim=-1)

    if name == "mixce":
        loss = count_loss(log_q, batch.counts, batch.n_seq, eta)
        return loss, float(loss.detach())
    if name == "js":
        return _js(eta, model, log_q, batch, s, rng)
    if s.estimator == "exact":  # autograd reference: tests/synthetic_reference.py
        raise ValueError(f"{name} under the exact estimator: see exact_value_and_grad")

    loss = log_q.new_zeros(())
    if eta > 0:
        loss = loss + eta * count_loss(log_q, batch.counts, batch.n_seq, 1.0)
    if eta < 1:
        kl = name in ("reverse_kl", "mix_kl")  # else mixce_star: the reverse cross-entropy
        lq, lp = gumbel_rollout(model, s.log_p, batch.n_seq, s.max_length, s.tau)
        loss = loss + (1.0 - eta) * ((lq - lp).mean() if kl else -lp.mean())
    return loss, float(loss.detach())


def exact_value_and_grad(
    name: str,
    eta: float,
    logits: torch.Tensor,
    batch: Batch,
    s: Setting,
    need_grad: bool = True,
) -> tuple[float, torch.Tensor | None]:
    """Objective ``name``'s value per sequence under the exact estimator and, if asked, its
    gradient in the (V + 1) x V transition logits by hand (not JS; autograd's numbers, tested;
    the caller runs ``logits.backward(grad)``). With L = log_softmax(Z), Q = exp(L) and
    softmax's adjoint ``sm(H) = Q * (H - sum_b Q H)`` (row-wise), d/dZ of

    - the data term -(1/n) sum C w L (w = 1, or MixCE's weight, held fixed) is
      -(1/n) (C w - Q rowsum(C w));
    - the expected term sum_r n_r sum_b Q F (F = L - log P for the KLs, -log P for
      MixCE*) is sm(n F + dn), dn being the occupancy's adjoint for dL/dn_r = sum_b Q F.
    """
    if name not in OBJECTIVES or name == "js":
        raise KeyError(f"no hand-derived exact gradient for {name!r}")
    eta = FIXED_ETA.get(name, eta)
    # written for speed at V = 1000: in-place updates, few passes over the (V + 1) x V matrices
    with torch.no_grad():
        log_q = torch.log_softmax(logits, dim=-1)
        q = log_q.exp()
        value = 0.0
        grad: torch.Tensor | None = None
        data_weight = 1.0 if name == "mixce" else eta
        if data_weight > 0:
            weighted = batch.counts
            if name == "mixce":  # C (eta + (1 - eta) q), MixCE's weight (mixce_weight)
                weighted = (q * batch.counts).mul_(1.0 - eta).add_(batch.counts, alpha=eta)
            scale = data_weight / batch.n_seq
            value -= scale * float(torch.dot(weighted.view(-1), log_q.view(-1)))
            if need_grad:  # -(scale) (C w - Q rowsum(C w))
                grad = q * (scale * weighted.sum(1, keepdim=True))
                grad.sub_(weighted, alpha=scale)
        if name != "mixce" and eta < 1:
            h = -s.log_p if name == "mixce_star" else log_q - s.log_p  # F
            per_row = torch.linalg.vecdot(q, h)
            v = logits.shape[1]
            n, state = exact.occupancy(q, s.max_length, occupancy_forward, logits.new_zeros)
            value += (1.0 - eta) * float(torch.dot(n, per_row))
            if need_grad:
                h.mul_(n[:, None])  # h = n F + dn, then sm(h)
                if state is not None:
                    occupancy_backward(
                        state, per_row[: v - 1], out=(h[v, : v - 1], h[: v - 1, : v - 1])
                    )
                h.sub_(torch.linalg.vecdot(q, h)[:, None]).mul_(q)
                grad = h.mul_(1.0 - eta) if grad is None else grad.add_(h, alpha=1.0 - eta)
    return value, grad


def _js(
    eta: float,
    model: NeuralBigram,
    log_q: torch.Tensor,
    batch: Batch,
    s: Setting,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, float]:
    """JS with the sequence-level mixture M = eta P + (1 - eta) Q (``s.js_clamp``: log_mixture)."""
    if batch.seq_log_p is None:
        raise ValueError("JS needs the batch's per-sequence log P (make_batch(seq_log_p=True))")
    idx = np.sort(rng.choice(batch.n_seq, size=min(s.js_samples, batch.n_seq), replace=False))
    data = batch.seqs.subset(idx)
    lp_data = batch.seq_log_p[idx]
    lq_data = sequence_logq(log_q, data, batch.count_forced)
    p_side = (lp_data - log_mixture(eta, lp_data, lq_data, s.js_clamp)).mean()
    if s.estimator == "gumbel":
        lq, lp = gumbel_rollout(model, s.log_p, s.js_samples, s.max_length, s.tau)
        q_side = (lq - log_mixture(eta, lp, lq, s.js_clamp)).mean()
        loss = eta * p_side + (1.0 - eta) * q_side
        return loss, float(loss.detach())
    drawn = sample_sequences(log_q.detach().exp().cpu().numpy(), s.js_samples, s.max_length, rng)
    lq = sequence_logq(log_q, drawn)
    lp = sequence_logq(s.log_p, drawn)
    f = lq - log_mixture(eta, lp, lq, s.js_clamp)
    fd = f.detach()
    baseline = (fd.sum() - fd) / max(len(fd) - 1, 1)
    q_surrogate = (f + (fd - baseline) * lq).mean()
    value = eta * float(p_side.detach()) + (1.0 - eta) * float(fd.mean())
    return eta * p_side + (1.0 - eta) * q_surrogate, value
