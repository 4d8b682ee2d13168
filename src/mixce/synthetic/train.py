"""Train Q against P with one objective in PyTorch: one loop, read top to bottom.

Exact estimator: every step sees the whole training set as one count matrix (the reverse terms'
gradient is exact, so minibatch noise buys nothing), dev loss every ``eval_every`` steps.
Gumbel estimator (paper-faithful): epochs of shuffled minibatches, dev loss after each. Both
stop after ``patience`` checks without a better dev loss and report avg.js / avg.0s of the
best-dev-loss checkpoint, as the paper does.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch

from mixce.device import resolve_device
from mixce.synthetic.data import Sequences, sequence_logprob
from mixce.synthetic.metrics import Comparer
from mixce.synthetic.model import NeuralBigram
from mixce.synthetic.objectives import Batch, Setting, exact_value_and_grad, objective_loss
from mixce.synthetic.settings import DevChecks, TrainConfig

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def make_batch(
    seqs: Sequences,
    p_log: np.ndarray,
    dtype: torch.dtype = torch.float64,
    seq_log_p: bool = True,
    device: torch.device | str = "cpu",
    count_forced: bool = False,
) -> Batch:
    """Count matrix, size and (if ``seq_log_p``: JS) per-sequence log P of ``seqs`` on
    ``device``; a forced EOS counted only with ``count_forced`` (``synthetic_forced_eos``)."""
    counts = torch.from_numpy(seqs.counts(p_log.shape[1], count_forced)).to(device, dtype)
    log_p = sequence_logprob(p_log, seqs, count_forced) if seq_log_p else None
    log_p = None if log_p is None else torch.from_numpy(log_p).to(device, dtype)
    return Batch(counts, len(seqs), seqs, log_p, count_forced)


def train_device(name: str, gpus: int | None = None) -> torch.device:
    """The device of config key synthetic.train.device (cpu, cuda or auto) for a job given
    ``gpus`` GPUs (None outside a workflow job), checked by :func:`mixce.device.resolve_device`."""
    if name not in ("cpu", "cuda", "auto"):
        raise ValueError(f"synthetic.train.device must be cpu, cuda or auto, got {name!r}")
    return resolve_device(name, gpus, key="synthetic.train.device", rule="synthetic_train")


def train_q(
    p_chain: np.ndarray,
    train: Sequences,
    dev: Sequences,
    objective: str,
    eta: float,
    seed: int,
    cfg: TrainConfig,
    progress: bool = True,
) -> tuple[dict, list[dict]]:
    """Train one Q: (result of the best checkpoint, one log row per dev check). The NumPy
    backend (``cfg.uses_numpy()``) is :func:`mixce.synthetic.exact.train`; this loop is torch's."""
    if cfg.uses_numpy():
        from mixce.synthetic.exact import train as train_numpy

        return train_numpy(p_chain, train, dev, objective, eta, seed, cfg, progress)
    checks = DevChecks(objective, eta, seed, cfg.estimator, cfg.patience, progress)
    dtype = DTYPES[cfg.dtype]  # float32 or float64 (the schema's)
    device = train_device(cfg.device, cfg.gpus)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    v = p_chain.shape[1]
    p_log = np.log(p_chain + cfg.log_eps)
    log_p = torch.from_numpy(p_log).to(device, dtype)
    setting = Setting(
        log_p, cfg.max_length, cfg.estimator, cfg.tau, cfg.js_samples, cfg.js_clamp_limit()
    )
    model = NeuralBigram(v, cfg.hidden_size, cfg.dropout).to(device, dtype)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    is_js = objective == "js"
    # the exact estimator's gradient is derived by hand for every objective but JS
    by_hand = cfg.estimator == "exact" and not is_js
    compare = Comparer(p_chain)
    count_forced = cfg.counts_forced_eos()

    def batch_of(seqs: Sequences) -> Batch:
        return make_batch(seqs, p_log, dtype, is_js, device, count_forced)

    full_train, dev_batch = batch_of(train), batch_of(dev)

    def rounds() -> Iterator[list[Batch]]:
        """The batches between two dev checks."""
        if cfg.estimator == "exact":
            for _ in range(math.ceil(cfg.max_steps / cfg.eval_every)):
                yield [full_train] * cfg.eval_every
        else:
            for _ in range(cfg.max_epochs):
                order, size = rng.permutation(len(train)), cfg.batch_size
                starts = range(0, len(train) - size + 1, size)
                batches = [batch_of(train.subset(np.sort(order[i : i + size]))) for i in starts]
                yield batches or [full_train]

    step = 0
    for batches in rounds():
        model.train()
        train_sum = 0.0
        for batch in batches:
            if cfg.estimator == "exact" and step >= cfg.max_steps:
                break
            opt.zero_grad(set_to_none=True)
            if by_hand:  # the gradient w.r.t. the logits by hand, the network's by autograd
                logits = model.transition_logits()
                value, grad = exact_value_and_grad(objective, eta, logits.detach(), batch, setting)
                logits.backward(grad)
            else:
                loss, value = objective_loss(objective, eta, model, batch, setting, rng)
                loss.backward()
            checks.stepped(step + 1, value)
            opt.step()
            step += 1
            train_sum += value
        model.eval()
        with torch.no_grad():
            if by_hand:
                dev_loss, _ = exact_value_and_grad(
                    objective, eta, model.transition_logits(), dev_batch, setting, False
                )
            else:
                _, dev_loss = objective_loss(objective, eta, model, dev_batch, setting, rng)
        metrics = compare(model.learned_matrix().cpu())
        if checks.check(step, train_sum / max(len(batches), 1), dev_loss, metrics):
            break
        if cfg.estimator == "exact" and step >= cfg.max_steps:
            break
    return checks.result(device.type, step)
