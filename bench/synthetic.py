"""Synthetic-branch benchmarks, reported as times and ratios measured in one run.

1. One training run per vocabulary size and estimator (random 50% target, paper data sizes):
   the exact estimator runs to its early stop; the Gumbel estimator is timed over a few
   minibatch steps and its full run (50 epochs x 50 steps) is extrapolated from them, and
   the table says so.
2. The count-matrix path against the per-sequence (per-token) path for the data terms
   (forward CE / MixCE) on the same data and model: seconds per step and their ratio.
3. One exact training step (loss, gradient, Adam) with the hand-derived logits gradient
   (the torch backend) against autograd through the same loss, per objective; and the same
   step in the NumPy backend (mixce.synthetic.exact, the CPU default) against the torch one.
   One BLAS / torch thread throughout.

Usage: python bench/synthetic.py [--vocab 20 50 100 500 1000] [--out bench/results/synthetic.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from mixce.objectives import mixce
from mixce.synthetic import exact as ex
from mixce.synthetic.data import chain_matrix, sample_sequences
from mixce.synthetic.model import NeuralBigram
from mixce.synthetic.objectives import Setting, count_loss, exact_value_and_grad
from mixce.synthetic.target import random_target, uniform_start
from mixce.synthetic.train import TrainConfig, make_batch, train_q

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the reference code
from synthetic_reference import autograd_loss  # noqa: E402


def data_for(v: int, n_train: int, n_dev: int, max_length: int):
    rng = np.random.default_rng([7, v])
    chain = chain_matrix(random_target(v, 0.5, 0.5, rng), uniform_start(v))
    return (
        chain,
        sample_sequences(chain, n_train, max_length, rng),
        sample_sequences(chain, n_dev, max_length, rng),
    )


def gumbel_step_seconds(chain, train, dev, objective: str, steps: int) -> float:
    cfg = TrainConfig(estimator="gumbel", lr=1e-3, max_epochs=1, batch_size=1000)
    sub = train.subset(np.arange(min(len(train), steps * cfg.batch_size)))
    t0 = time.perf_counter()
    result, _ = train_q(
        chain,
        sub,
        dev.subset(np.arange(min(len(dev), 1000))),
        objective,
        0.9,
        7,
        cfg,
        progress=False,
    )
    return (time.perf_counter() - t0) / max(result["steps"], 1)


def count_vs_token(chain, train, reps: int = 3, max_logits: int = 20_000_000) -> dict:
    """Seconds per forward+backward of MixCE's data term: count matrix vs per token, on the
    same sequences (the first ones, as many as keep the per-token logits under max_logits)."""
    v = chain.shape[1]
    lengths = np.diff(train.offsets)
    n = int(np.searchsorted(np.cumsum(lengths) * v, max_logits)) or 1
    train = train.subset(np.arange(min(n, len(train))))
    model = NeuralBigram(v, 50, 0.0).double()
    batch = make_batch(train, np.log(chain + 1e-30))
    prev, nxt, _ = train.transitions(v)
    prev_t, nxt_t = torch.from_numpy(prev.astype(np.int64)), torch.from_numpy(nxt.astype(np.int64))
    mask = torch.ones(len(prev), dtype=torch.bool)

    def by_counts() -> torch.Tensor:
        log_q = torch.log_softmax(model.transition_logits(), -1)
        return count_loss(log_q, batch.counts, batch.n_seq, 0.9)

    def by_tokens() -> torch.Tensor:
        return mixce(model(prev_t), nxt_t, mask, eta=0.9) * len(prev) / len(train)

    out = {}
    for name, fn in (("count_matrix", by_counts), ("per_token", by_tokens)):
        fn().backward()  # warm-up
        t0 = time.perf_counter()
        for _ in range(reps):
            model.zero_grad()
            fn().backward()
        out[name] = (time.perf_counter() - t0) / reps
    out["ratio_count_over_token"] = out["count_matrix"] / out["per_token"]
    out["tokens"] = int(len(prev))
    out["sequences"] = len(train)
    return out


def step_times(chain, train, reps: int = 30) -> dict:
    """Seconds per exact training step (float32, dropout on, Adam), per objective, on the same
    data: the torch backend's step with the hand-derived logits gradient (``hand``), the same
    loss through autograd (``autograd``) and the NumPy backend's step (``numpy``); with the
    ratios autograd / hand and hand / numpy."""
    v = chain.shape[1]
    p_log = np.log(chain + 1e-30)
    batch = make_batch(train, p_log, torch.float32, seq_log_p=False)
    setting = Setting(torch.from_numpy(p_log).float(), 500, "exact", 1.0, 1000)
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    model = NeuralBigram(v, 50, 0.1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-4)
    target = ex.make_target(p_log, train, 500, np.float32, False)
    params = ex.init_params(v, 50, rng, np.float32)
    np_opt = ex.Adam(params.flat, 1e-2, 1e-4)
    z = np.empty((v + 1, v), dtype=np.float32)
    q = np.empty_like(z)

    def hand(objective: str) -> None:
        opt.zero_grad(set_to_none=True)
        logits = model.transition_logits()
        _, grad = exact_value_and_grad(objective, 0.9, logits.detach(), batch, setting)
        logits.backward(grad)
        opt.step()

    def autograd(objective: str) -> None:
        opt.zero_grad(set_to_none=True)
        loss, _ = autograd_loss(objective, 0.9, model, batch, setting, rng)
        loss.backward()
        opt.step()

    def numpy(objective: str) -> None:
        nonlocal z
        z, cache = ex.forward(params, 0.1, rng, out=z)
        _, grad, _ = ex.value_and_grad(objective, 0.9, z, target, True, q=q)
        np_opt.step(ex.backward(params, cache, grad))

    out: dict = {}
    for objective in ("forward_kl", "mixce", "mix_kl", "mixce_star"):
        row = {}
        for name, step in (("hand", hand), ("autograd", autograd), ("numpy", numpy)):
            for _ in range(3):  # warm-up
                step(objective)
            t0 = time.perf_counter()
            for _ in range(reps):
                step(objective)
            row[f"{name}_step_s"] = (time.perf_counter() - t0) / reps
        row["autograd_over_hand"] = row["autograd_step_s"] / row["hand_step_s"]
        row["hand_over_numpy"] = row["hand_step_s"] / row["numpy_step_s"]
        out[objective] = row
    return out


def _meta(args: argparse.Namespace, extra: str = "") -> dict:
    return {
        "machine": platform.processor() or platform.machine(),
        "threads": 1,
        "torch": torch.__version__,
        "command": f"python bench/synthetic.py{extra} --vocab " + " ".join(map(str, args.vocab)),
    }


def _print_steps(rows: list[dict]) -> None:
    tables = (  # (header a, key a, header b, key b, ratio key, ratio header)
        ("hand-derived", "hand", "autograd", "autograd", "autograd_over_hand", "autograd / hand"),
        ("NumPy backend", "numpy", "torch backend", "hand", "hand_over_numpy", "torch / NumPy"),
    )
    for head_a, a, head_b, b, ratio, head_ratio in tables:
        print(f"\n| V | objective | {head_a} (ms) | {head_b} (ms) | {head_ratio} |")
        print("|---|---|---|---|---|")
        for r in rows:
            for objective, h in r["steps"].items():
                print(
                    f"| {r['vocab_size']} | {objective} | {1e3 * h[f'{a}_step_s']:.2f} | "
                    f"{1e3 * h[f'{b}_step_s']:.2f} | {h[ratio]:.2f}x |"
                )


def steps_only(args: argparse.Namespace) -> None:
    """Part 3 alone: one exact step, hand-derived gradient against autograd, per V."""
    rows = []
    for v in args.vocab:
        chain, train, _ = data_for(v, args.n_train, args.n_dev, args.max_length)
        rows.append({"vocab_size": v, "steps": step_times(chain, train)})
        print(json.dumps(rows[-1]), flush=True)
    out = args.out or Path("bench/results/synthetic_steps.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": _meta(args, " --steps-only"), "rows": rows}, indent=2))
    _print_steps(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vocab", type=int, nargs="+", default=[20, 50, 100, 500, 1000])
    ap.add_argument("--n-train", type=int, default=50000)
    ap.add_argument("--n-dev", type=int, default=5000)
    ap.add_argument("--max-length", type=int, default=500)
    ap.add_argument("--gumbel-steps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument(
        "--steps-only",
        action="store_true",
        help="only part 3 (one step: hand vs autograd, NumPy vs torch), to "
        "bench/results/synthetic_steps.json",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    threadpool_limits(1)  # NumPy's BLAS too: one thread, as in a training job
    if args.steps_only:
        steps_only(args)
        return
    args.out = args.out or Path("bench/results/synthetic.json")
    rows = []
    for v in args.vocab:
        chain, train, dev = data_for(v, args.n_train, args.n_dev, args.max_length)
        row: dict = {"vocab_size": v, "mean_length": float(np.diff(train.offsets).mean())}
        for objective in ("mix_kl", "mixce"):
            cfg = TrainConfig(estimator="exact", lr=1e-2, max_length=args.max_length)
            result, _ = train_q(chain, train, dev, objective, 0.9, 7, cfg, progress=False)
            row[f"exact_{objective}_run_s"] = result["seconds"]
            row[f"exact_{objective}_steps"] = result["steps"]
        g = gumbel_step_seconds(chain, train, dev, "mix_kl", args.gumbel_steps)
        row["gumbel_mix_kl_step_s"] = g
        row["gumbel_mix_kl_run_s_extrapolated"] = g * 50 * (args.n_train // 1000)
        row["exact_step_s"] = row["exact_mix_kl_run_s"] / row["exact_mix_kl_steps"]
        row["gumbel_over_exact_step"] = g / row["exact_step_s"]
        row["count_vs_token"] = count_vs_token(chain, train)
        row["steps"] = step_times(chain, train)
        rows.append(row)
        print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = _meta(args)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(
        "| V | mean len | exact mix_kl run (s, steps) | exact mixce run (s, steps) | "
        "gumbel step (s) | gumbel run (s, extrapolated) | gumbel/exact per step | "
        "count/token |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        ct = r["count_vs_token"]
        print(
            f"| {r['vocab_size']} | {r['mean_length']:.0f} | {r['exact_mix_kl_run_s']:.1f}, "
            f"{r['exact_mix_kl_steps']} | {r['exact_mixce_run_s']:.1f}, {r['exact_mixce_steps']} "
            f"| {r['gumbel_mix_kl_step_s']:.2f} | {r['gumbel_mix_kl_run_s_extrapolated']:.0f} | "
            f"{r['gumbel_over_exact_step']:.0f}x | {ct['ratio_count_over_token']:.3f} |"
        )
    _print_steps(rows)


if __name__ == "__main__":
    main()
