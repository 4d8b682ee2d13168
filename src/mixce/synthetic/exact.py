"""The exact estimator in NumPy: Q's network, every objective's gradient and Adam by hand.

The CPU default of ``synthetic.train.estimator: exact``: the losses and gradients of the
PyTorch reference (:mod:`mixce.synthetic.objectives`; tests check they agree). Why NumPy: no
graph, one flat parameter vector, one exp per step, buffers reused (2-6x faster at V <= 100,
about even at V = 1000: bench/synthetic.py --steps-only), and no torch import (1.5-3 s of
start-up per job, 580 jobs in the grid). The network maps every input state (V tokens, then
BOS) to a (V + 1) x V matrix Z of next-token logits, rows as in :mod:`mixce.synthetic.data`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mixce.synthetic.data import Sequences, sample_sequences, sequence_logprob
from mixce.synthetic.metrics import Comparer
from mixce.synthetic.settings import FIXED_ETA, DevChecks, TrainConfig, check_objective

OCCUPANCY_TOL = 1e-13  # a recursion whose vector has shrunk below this (relative) has ended
#: relative deviation from x_{k+1} = rho x_k at which a chain's tail is summed in closed form
#: (about 10 ulp of the dtype), by the dtype's name (NumPy "float32", torch "torch.float32")
GEOMETRIC_TOL = {"float64": 1e-12, "float32": 1e-6}


@dataclass
class Params:
    """Embedding(V + 1, d) -> Linear(d, d) -> ReLU -> Dropout -> Linear(d, V) as five views
    into one flat vector, so Adam updates them in a few passes."""

    emb: np.ndarray  # (V + 1, d)
    w1: np.ndarray  # (d, d), out x in
    b1: np.ndarray  # (d,)
    w2: np.ndarray  # (V, d)
    b2: np.ndarray  # (V,)
    flat: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        arrays = self.arrays()  # copied into ``flat``, then replaced by views of it
        self.flat = np.concatenate([a.ravel() for a in arrays])
        parts = np.split(self.flat, np.cumsum([a.size for a in arrays])[:-1])
        self.emb, self.w1, self.b1, self.w2, self.b2 = (
            x.reshape(a.shape) for x, a in zip(parts, arrays, strict=True)
        )

    def arrays(self) -> list[np.ndarray]:
        return [self.emb, self.w1, self.b1, self.w2, self.b2]


def init_params(vocab_size: int, hidden: int, rng: np.random.Generator, dtype) -> Params:
    """PyTorch's default init: embedding N(0, 1); Linear weight and bias U(+-1/sqrt(fan_in))."""
    bound = 1.0 / np.sqrt(hidden)

    def uniform(*shape: int) -> np.ndarray:
        return rng.uniform(-bound, bound, size=shape).astype(dtype)

    emb = rng.standard_normal((vocab_size + 1, hidden)).astype(dtype)  # draws in this order
    w1, b1 = uniform(hidden, hidden), uniform(hidden)
    return Params(emb, w1, b1, uniform(vocab_size, hidden), uniform(vocab_size))


@dataclass
class Forward:
    """What the backward pass needs of one forward pass."""

    pre: np.ndarray  # E W1^T + b1, (V + 1) x d
    hidden: np.ndarray  # ReLU, then dropout: the input of the last layer
    keep: np.ndarray | None  # dropout's scaled mask (None: eval mode)


def forward(
    p: Params,
    dropout: float,
    rng: np.random.Generator | None,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, Forward]:
    """(V + 1) x V logits; dropout is applied when ``rng`` is given (training mode)."""
    pre = p.emb @ p.w1.T
    pre += p.b1
    hidden = np.maximum(pre, 0.0)
    keep = None
    if rng is not None and dropout > 0:
        keep = (rng.random(hidden.shape, dtype=hidden.dtype) >= dropout).astype(hidden.dtype)
        keep *= 1.0 / (1.0 - dropout)
        hidden *= keep
    z = np.matmul(hidden, p.w2.T, out=out)
    z += p.b2
    return z, Forward(pre, hidden, keep)


def backward(p: Params, f: Forward, g: np.ndarray) -> np.ndarray:
    """The gradient of the parameters, laid out as ``p.flat``, from dL/dZ = ``g``."""
    d_w2 = g.T @ f.hidden
    d_b2 = g.sum(0)
    d_h = g @ p.w2
    if f.keep is not None:
        d_h *= f.keep
    d_h *= f.pre > 0
    parts = [d_h @ p.w1, d_h.T @ p.emb, d_h.sum(0), d_w2, d_b2]
    return np.concatenate([x.ravel() for x in parts])


class Adam:
    """torch.optim.Adam (betas 0.9, 0.999, eps 1e-8, L2 weight decay added to the gradient) on
    one flat vector, in place."""

    def __init__(self, param: np.ndarray, lr: float, weight_decay: float = 0.0) -> None:
        self.param, self.lr, self.weight_decay, self.t = param, lr, weight_decay, 0
        self.m, self.v = np.zeros_like(param), np.zeros_like(param)

    def step(self, g: np.ndarray) -> None:  # g is overwritten
        self.t += 1
        b1, b2 = 0.9, 0.999
        step_size = self.lr / (1.0 - b1**self.t)
        if self.weight_decay:
            g += self.weight_decay * self.param
        self.m *= b1
        self.m += (1.0 - b1) * g
        self.v *= b2
        g *= g
        g *= 1.0 - b2
        self.v += g
        denom = np.sqrt(self.v)
        denom *= 1.0 / np.sqrt(1.0 - b2**self.t)
        denom += 1e-8
        np.divide(self.m, denom, out=denom)
        denom *= step_size
        self.param -= denom


def power_chain(step, first, length: int) -> tuple[list, float]:
    """(explicit vectors, rho) of x_1 = first, x_{k+1} = step(x_k) (NumPy or torch), at most
    ``length`` vectors, stopped when vanished (||x|| < OCCUPANCY_TOL ||first||; rho 0) or
    geometric, x_{k+1} = rho x_k up to GEOMETRIC_TOL. rho = <x_{k+1}, x_k> / <x_k, x_k> on both
    divided by max |x_k|: a chain of tiny numbers (a Q start row of ~1e-19 per token) would
    otherwise square to 0 in float32 and run its whole length."""
    xs = [first]
    scale = float(abs(first).sum())
    if scale == 0.0:
        return xs, 0.0
    x = first
    tol = GEOMETRIC_TOL.get(str(first.dtype).removeprefix("torch."), 1e-12)
    for k in range(1, length):
        nxt = step(x)
        size = float(abs(nxt).sum())
        if size < OCCUPANCY_TOL * scale:
            return xs, 0.0
        inv = 1.0 / float(abs(x).max())  # x is not 0: it passed the test above
        xn = x * inv
        rho = float((nxt * inv * xn).sum() / (xn * xn).sum())
        if k >= 2 and float(abs(nxt - rho * x).sum()) <= tol * size:
            return xs, rho
        xs.append(nxt)
        x = nxt
    return xs, 0.0


def geometric_coefficients(n_explicit: int, rho: float, total: int) -> np.ndarray:
    """c[k] for k = 0 .. total - 1: 0 for explicit terms, rho^(k - last) after them."""
    c = np.zeros(total)
    if rho != 0.0 and total > n_explicit:
        c[n_explicit:] = rho ** np.arange(1, total - n_explicit + 1)
    return c


@dataclass
class Occupancy:
    """What the adjoint of :func:`occupancy_forward` needs (NumPy arrays or torch tensors)."""

    big_u: Any  # the explicit visit vectors u_1 .. u_m (rows)
    a: Any
    steps: int
    rho: float  # u_{t+1} = rho u_t after u_m (0: no geometric tail)


def occupancy_forward(start, a, steps: int, step=None, stack=np.stack) -> tuple[Any, Occupancy]:
    """n = sum_{t=1..K} u_t, u_1 = start, u_{t+1} = u_t A (K = ``steps``; torch passes its own
    ``step``, u A, and ``stack``). A (Q between non-EOS tokens) is sub-stochastic and positive:
    by Perron-Frobenius u_t, and the adjoint's A^s g, soon become geometric (rho the dominant
    eigenvalue, the gap usually large). Both recursions run until that holds to GEOMETRIC_TOL
    (or to the end) and the rest is summed in closed form: exact to that tolerance, and the
    gradient for A is one matrix product, not K rank-one updates."""
    us, rho = power_chain(step or (lambda x: x @ a), start, steps)
    big_u = stack(us)
    tail = geometric_coefficients(len(us), rho, steps)
    n = big_u.sum(0) + float(tail.sum()) * big_u[-1]
    return n, Occupancy(big_u, a, steps, rho)


def occupancy_backward(
    state: Occupancy, grad: np.ndarray, grad_start: np.ndarray, grad_a: np.ndarray
) -> None:
    """Add dL/dstart and dL/dA, from dL/dn = ``grad``, into ``grad_start`` and ``grad_a``."""
    big_u, a, k, rho_u = state.big_u, state.a, state.steps, state.rho
    m = big_u.shape[0]
    ws, rho_w = power_chain(lambda x: a @ x, grad, k)  # w_s = A^s g
    big_w = np.stack(ws)
    s1 = big_w.shape[0] - 1
    prefix = np.cumsum(big_w, axis=0)
    c_w = np.cumsum(geometric_coefficients(s1 + 1, rho_w, max(k, 1)))

    def lam_rows(n_idx: np.ndarray) -> np.ndarray:  # sum_{s<=N} w_s for each N in n_idx
        return prefix[np.minimum(n_idx, s1)] + c_w[n_idx, None].astype(grad.dtype) * big_w[-1]

    grad_start += lam_rows(np.array([k - 1]))[0]
    t_head = np.arange(1, min(m, k - 1) + 1)
    left, right = [big_u[: t_head.size]], [lam_rows(k - t_head - 1)]  # dA = left^T right
    if rho_u != 0.0 and k - 1 > m:  # the tail's rank-one term u_m z^T, as one more row
        t_tail = np.arange(m + 1, k)
        coef = rho_u ** (t_tail - m)
        n_idx = k - t_tail - 1
        weights = np.bincount(np.minimum(n_idx, s1), weights=coef, minlength=s1 + 1)
        z = weights.astype(grad.dtype) @ prefix
        z += float((coef * c_w[n_idx]).sum()) * big_w[-1]
        left.append(big_u[-1:])
        right.append(z[None])
    if t_head.size or len(left) > 1:
        grad_a += np.concatenate(left).T @ np.concatenate(right)


def occupancy(
    q, max_length: int, forward=occupancy_forward, zeros=None
) -> tuple[Any, Occupancy | None]:
    """Expected visits of each row state at positions whose successor is drawn (BOS once,
    tokens at positions 1 .. max_length - 2, EOS never left: V + 1 entries), and the token
    part's :class:`Occupancy` (None when no token has a successor). The PyTorch path passes
    its ``forward`` and ``zeros``."""
    v = q.shape[1]
    n = np.zeros(v + 1, dtype=q.dtype) if zeros is None else zeros(v + 1)
    n[v] = 1.0
    if max_length - 2 < 1:
        return n, None
    n[: v - 1], state = forward(q[v, : v - 1], q[: v - 1, : v - 1], max_length - 2)
    return n, state


@dataclass
class Target:
    """What the objectives need of P and of one data set (train or dev)."""

    log_p: np.ndarray  # log(P + eps), (V + 1) x V
    counts: np.ndarray  # transition counts / number of sequences, (V + 1) x V
    count_rows: np.ndarray  # row sums of ``counts``
    max_length: int
    seqs: Sequences | None = None  # the sequences (JS only)
    seq_log_p: np.ndarray | None = None  # log P of each sequence (JS only)
    count_forced: bool = False  # a forced EOS is counted (protocol synthetic_forced_eos)
    _scaled: dict[float, np.ndarray] = field(default_factory=dict, repr=False)

    def scaled_counts(self, weight: float) -> np.ndarray:
        """weight * counts, computed once per weight (a training run uses one)."""
        if weight not in self._scaled:
            self._scaled[weight] = (self.counts * weight).astype(self.counts.dtype)
        return self._scaled[weight]


def make_target(
    log_p: np.ndarray,
    seqs: Sequences,
    max_length: int,
    dtype,
    with_sequences: bool,
    count_forced: bool = False,
) -> Target:
    """A :class:`Target` for one data set; ``with_sequences`` keeps what JS needs.
    ``count_forced`` (protocol point ``synthetic_forced_eos``: official) counts the EOS forced
    at ``max_length`` as a transition in the counts and each log P(x) (and JS's log Q(x))."""
    counts = (seqs.counts(log_p.shape[1], count_forced) / len(seqs)).astype(dtype)
    seq_log_p = sequence_logprob(log_p, seqs, count_forced) if with_sequences else None
    kept = seqs if with_sequences else None
    return Target(
        log_p.astype(dtype), counts, counts.sum(1), max_length, kept, seq_log_p, count_forced
    )


def softmax_in_place(z: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Turn logits ``z`` into log Q (in place) and write Q into ``q``, with one exp.

    Q's entries below e^floor (far below float32's resolution of a row that sums to 1) are
    computed as e^floor / s, so that no exp returns a subnormal number (~5x slower on x86);
    this changes Q by less than V e^floor ~ 1e-32 per row."""
    z -= z.max(1, keepdims=True)
    tiny = np.finfo(z.dtype).tiny
    floor = float(np.log(tiny)) + float(np.log(z.shape[1])) + 2.0
    np.maximum(z, floor, out=q)
    np.exp(q, out=q)
    s = q.sum(1, keepdims=True)
    q /= s
    z -= np.log(s)
    return z


def value_and_grad(
    name: str,
    eta: float,
    z: np.ndarray,
    data: Target,
    need_grad: bool = True,
    rng: np.random.Generator | None = None,
    js_samples: int = 1000,
    q: np.ndarray | None = None,
    js_clamp: float | None = None,
) -> tuple[float, np.ndarray | None, np.ndarray]:
    """Objective ``name``'s value per sequence at logits ``z``, (if asked) its gradient with
    respect to ``z``, and Q; ``z`` is overwritten (it becomes log Q). The formulas of
    :func:`mixce.synthetic.objectives.exact_value_and_grad` (C per sequence here). JS: a
    score-function estimate on sequences drawn from Q (``rng``), as the PyTorch path;
    ``js_clamp`` (protocol point ``synthetic_js_clamp``): see :func:`log_mixture`."""
    check_objective(name)
    eta = FIXED_ETA.get(name, eta)
    q = np.empty_like(z) if q is None else q
    log_q = softmax_in_place(z, q)
    if name == "js":
        if rng is None:
            raise ValueError("JS draws sequences from Q: it needs an rng")
        value, grad = _js(eta, log_q, q, data, rng, js_samples, need_grad, js_clamp)
        return value, grad, q
    value = 0.0
    data_weight = 1.0 if name == "mixce" else eta
    weighted, rows = data.counts, data.count_rows  # the data term's C w and its row sums
    if data_weight > 0:
        if name == "mixce":  # C (eta + (1 - eta) q): MixCE's weight (mixce_weight)
            weighted = q * (1.0 - eta)
            weighted += eta
            weighted *= data.counts
            rows = weighted.sum(1)
        value -= data_weight * float(np.vdot(weighted, log_q))
    if name == "mixce" or eta == 1:  # the data term alone (weight 1): Q rowsum(C w) - C w
        if not need_grad:
            return value, None, q
        grad = q * rows[:, None]
        grad -= weighted
        return value, grad, q
    h = -data.log_p if name == "mixce_star" else log_q - data.log_p  # F
    per_row = np.einsum("ij,ij->i", q, h)
    v = z.shape[1]
    n, state = occupancy(q, data.max_length)
    value += (1.0 - eta) * float(np.dot(n.astype(np.float64), per_row))
    if not need_grad:
        return value, None, q
    h *= n[:, None]  # H = n F + dn
    if state is not None:
        occupancy_backward(state, per_row[: v - 1], h[v, : v - 1], h[: v - 1, : v - 1])
    # (1 - eta) sm(H) + data_weight (Q rows - C) in four passes over H:
    # Q * ((1 - eta) H + data_weight rows - (1 - eta) rowsum(Q H)) - data_weight C
    shift = np.einsum("ij,ij->i", q, h)
    shift *= -(1.0 - eta)
    if data_weight > 0:
        shift += data_weight * rows
    h *= 1.0 - eta
    h += shift[:, None]
    h *= q
    if data_weight > 0:
        h -= data.scaled_counts(data_weight)
    return value, h, q


def log_mixture(eta: float, log_p, log_q, clamp: float | None = None, xp: Any = np) -> Any:
    """log M = log(eta P + (1 - eta) Q) from log P and log Q (per sequence), in array module
    ``xp`` (NumPy; the PyTorch path passes torch, with no gradient through a clamped d).
    ``clamp`` None (protocol point ``synthetic_js_clamp``: clean): exact, logaddexp. A number
    c (official, 30 in the released code): as the released code forms it, log P + log(eta +
    (1 - eta) exp(d)), d = log Q - log P clamped to [-c, c], so where Q(x) > e^c P(x) log M
    stops following log Q (and its gradient in log Q is 0)."""
    if clamp is None:
        return xp.logaddexp(np.log(eta) + log_p, np.log1p(-eta) + log_q)
    d = xp.clip(log_q - log_p, -clamp, clamp)
    return log_p + xp.log(eta + (1.0 - eta) * xp.exp(d))


def mixture_share(
    eta: float, log_p: np.ndarray, log_q: np.ndarray, clamp: float | None = None
) -> np.ndarray:
    """d log M / d log Q of :func:`log_mixture`: (1 - eta) Q / M, and 0 where the clamp
    holds d = log Q - log P outside [-c, c]."""
    if clamp is None:
        return _sigmoid(np.log1p(-eta) + log_q - (np.log(eta) + log_p))
    d = log_q - log_p
    inside = np.abs(d) <= clamp
    return _sigmoid(np.log1p(-eta) + np.clip(d, -clamp, clamp) - np.log(eta)) * inside


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class _Transitions:
    """The counted transitions of a set of sequences, for sums over each sequence."""

    def __init__(self, seqs: Sequences, vocab_size: int, count_forced: bool = False) -> None:
        prev, nxt, self.seq = seqs.transitions(vocab_size, count_forced)
        self.flat = prev.astype(np.int64) * vocab_size + nxt  # prev * V + next
        self.n = len(seqs)

    def sums(self, matrix: np.ndarray) -> np.ndarray:
        """sum of matrix[prev, next] over each sequence's transitions (float64)."""
        values = matrix.ravel()[self.flat].astype(np.float64)
        return np.bincount(self.seq, weights=values, minlength=self.n)

    def weighted_counts(self, per_seq: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """sum over sequences of per_seq[i] times sequence i's transition-count matrix."""
        flat = np.bincount(self.flat, weights=per_seq[self.seq], minlength=shape[0] * shape[1])
        return flat.reshape(shape)


def _js(
    eta: float,
    log_q: np.ndarray,
    q: np.ndarray,
    data: Target,
    rng: np.random.Generator,
    js_samples: int,
    need_grad: bool,
    clamp: float | None = None,
) -> tuple[float, np.ndarray | None]:
    """JS with the sequence-level mixture M = eta P + (1 - eta) Q: ``js_samples`` data
    sequences, as many drawn from Q (score function, leave-one-out baseline). d/dlog Q(x) of
    log P(x) - log M(x) is -s, of log Q(x) - log M(x) 1 - s, s = :func:`mixture_share`."""
    if data.seqs is None or data.seq_log_p is None:
        raise ValueError("JS needs the data's sequences (make_target(with_sequences=True))")
    v = log_q.shape[1]
    n_data = len(data.seqs)
    idx = np.sort(rng.choice(n_data, size=min(js_samples, n_data), replace=False))
    sub = _Transitions(data.seqs.subset(idx), v, data.count_forced)
    lp_data = data.seq_log_p[idx]
    lq_data = sub.sums(log_q)
    p_side = float((lp_data - log_mixture(eta, lp_data, lq_data, clamp)).mean())
    drawn = _Transitions(
        sample_sequences(q.astype(np.float64), js_samples, data.max_length, rng), v
    )
    lq = drawn.sums(log_q)
    lp = drawn.sums(data.log_p)
    f = lq - log_mixture(eta, lp, lq, clamp)
    value = eta * p_side + (1.0 - eta) * float(f.mean())
    if not need_grad:
        return value, None
    shape = log_q.shape
    g_logq = sub.weighted_counts(-eta * mixture_share(eta, lp_data, lq_data, clamp) / sub.n, shape)
    s_q = mixture_share(eta, lp, lq, clamp)
    baseline = (f.sum() - f) / max(len(f) - 1, 1)
    g_logq += drawn.weighted_counts((1.0 - eta) * (1.0 - s_q + f - baseline) / len(f), shape)
    g = g_logq.astype(log_q.dtype)
    g -= q * g.sum(1, keepdims=True)  # through log-softmax
    return value, g


def train(
    p_chain: np.ndarray,
    train_seqs: Sequences,
    dev_seqs: Sequences,
    objective: str,
    eta: float,
    seed: int,
    cfg: TrainConfig,
    progress: bool = True,
) -> tuple[dict, list[dict]]:
    """Train one Q with the exact estimator (records as :func:`mixce.synthetic.train.train_q`):
    full-batch steps, the dev loss (eval mode) every ``eval_every`` steps until ``patience``
    checks without a better one or ``max_steps``. The network's init and dropout draw from
    ``default_rng([seed, 2])``, JS's sequences from ``default_rng(seed)``."""
    if cfg.dtype not in ("float32", "float64"):
        raise ValueError(f"synthetic.train.dtype must be float32 or float64, got {cfg.dtype!r}")
    checks = DevChecks(objective, eta, seed, "exact", cfg.patience, progress, cfg.max_steps)
    dtype = np.dtype(cfg.dtype)
    rng = np.random.default_rng(seed)
    net_rng = np.random.default_rng([seed, 2])
    v = p_chain.shape[1]
    log_p = np.log(p_chain + cfg.log_eps)
    js_clamp = cfg.js_clamp_limit()
    data, dev = (
        make_target(log_p, s, cfg.max_length, dtype, objective == "js", cfg.counts_forced_eos())
        for s in (train_seqs, dev_seqs)
    )
    params = init_params(v, cfg.hidden_size, net_rng, dtype)
    opt = Adam(params.flat, cfg.lr, cfg.weight_decay)
    compare = Comparer(p_chain)
    z = np.empty((v + 1, v), dtype=dtype)  # logits, then log Q (buffers reused every step)
    q = np.empty_like(z)

    step = 0
    while step < cfg.max_steps:
        train_sum, n_steps = 0.0, min(cfg.eval_every, cfg.max_steps - step)
        for _ in range(n_steps):
            z, cache = forward(params, cfg.dropout, net_rng, out=z)
            value, grad, _ = value_and_grad(
                objective, eta, z, data, True, rng, cfg.js_samples, q, js_clamp
            )
            checks.stepped(step + 1, value)
            opt.step(backward(params, cache, grad))
            step += 1
            train_sum += value
        z, _ = forward(params, 0.0, None, out=z)  # eval mode
        dev_loss, _, learned = value_and_grad(
            objective, eta, z, dev, False, rng, cfg.js_samples, q, js_clamp
        )
        if checks.check(step, train_sum / max(n_steps, 1), dev_loss, compare(learned)):
            break
    return checks.result("cpu", step)
