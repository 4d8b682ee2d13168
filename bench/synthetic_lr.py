"""How many exact-estimator steps a V = 1000 model needs, at the config's learning rate and a
larger one: the number of steps is what sets the synthetic grid's time (bench/synthetic_floor.py).

Each run trains one Q with the NumPy backend (mixce.synthetic.exact.train, the workflow's
training loop) on bench/synthetic.py's random-50% target and data (the paper's sizes), for a
fixed number of steps, with the dev loss and avg.js checked every 20 steps as the config does
but early stopping switched off, once per learning rate. Per objective and learning rate it reports:

- ``early_stop``: where the config's early stop (``--patience`` checks without a better dev
  loss) would have stopped, replayed on the run's checks (exact: the run is the same up to
  there), and its best check (the checkpoint a run keeps);
- ``final``: the best check within the whole budget of ``--steps`` steps;
- ``steps_to_match``: the first check whose dev loss is at least as good as the best one of
  the first learning rate within the budget (None: never).

Usage: python bench/synthetic_lr.py [--vocab 1000] [--steps 3000] [--lrs 0.01 0.03]
       [--out bench/results/synthetic_lr.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import sys
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

from mixce.synthetic import exact
from mixce.synthetic.settings import TrainConfig


def _synthetic_bench():
    """bench/synthetic.py, the sibling benchmark whose data this one reuses."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import synthetic

    return synthetic


RUNS = [("forward_kl", 1.0), ("mixce", 0.5), ("mix_kl", 0.5), ("mixce_star", 0.5)]


def steps_to_match(curve: list[dict], target: float) -> int | None:
    """The first check's step whose dev loss is at most ``target`` (None: none is)."""
    for row in curve:
        if row["dev_loss"] <= target:
            return int(row["step"])
    return None


def best_check(curve: list[dict]) -> dict:
    """The check with the lowest dev loss (the first of equals), as training keeps it."""
    return dict(min(curve, key=lambda row: row["dev_loss"]))


def early_stop(curve: list[dict], patience: int) -> dict:
    """Replay DevChecks' rule on a run's checks: stop after ``patience`` checks without a
    better dev loss. Returns the stopping step and the best check up to it."""
    best, bad = float("inf"), 0
    for i, row in enumerate(curve):
        if row["dev_loss"] < best:
            best, bad = row["dev_loss"], 0
        else:
            bad += 1
            if bad >= patience:
                return {"stopped_at": int(row["step"]), **best_check(curve[: i + 1])}
    return {"stopped_at": None, **best_check(curve)}


def summarize(runs: list[dict], lrs: list[float], patience: int) -> dict:
    """Per objective and learning rate: the early stop, the best check within the budget and
    the steps to reach the first learning rate's best dev loss."""
    out: dict = {}
    curves: dict = {}
    for run in runs:
        key = f"{run['objective']} eta={run['eta']}"
        curves[key, str(run["lr"])] = run["curve"]
        out.setdefault(key, {})[str(run["lr"])] = {
            "early_stop": early_stop(run["curve"], patience),
            "final": best_check(run["curve"]),
            "seconds": run["seconds"],
        }
    for key, entry in out.items():
        target = entry[str(lrs[0])]["final"]["dev_loss"]
        for lr in entry:
            entry[lr]["steps_to_match"] = steps_to_match(curves[key, lr], target)
    return out


def one_run(job: tuple) -> dict:
    vocab, objective, eta, lr, steps, every, seed = job
    with threadpool_limits(1):
        chain, train, dev = _synthetic_bench().data_for(vocab, 50_000, 5_000, 500)
        cfg = TrainConfig(
            lr=lr,
            max_steps=steps,
            eval_every=every,
            patience=steps // every + 1,
            cpu_backend="numpy",
        )
        t0 = time.perf_counter()
        _, log = exact.train(chain, train, dev, objective, eta, seed, cfg, progress=False)
        seconds = time.perf_counter() - t0
    curve = [
        {"step": r["step"], "dev_loss": float(r["dev_loss"]), "avg_js": float(r["avg_js"])}
        for r in log
    ]
    return {"objective": objective, "eta": eta, "lr": lr, "seconds": seconds, "curve": curve}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vocab", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--every", type=int, default=20)
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--lrs", type=float, nargs="+", default=[0.01, 0.03])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("bench/results/synthetic_lr.json"))
    args = ap.parse_args()
    jobs = [
        (args.vocab, obj, eta, lr, args.steps, args.every, args.seed)
        for obj, eta in RUNS
        for lr in args.lrs
    ]
    with mp.Pool(args.processes) as pool:
        runs = pool.map(one_run, jobs, chunksize=1)
    result = {
        "meta": {
            "machine": platform.machine(),
            "vocab_size": args.vocab,
            "steps": args.steps,
            "every": args.every,
            "patience": args.patience,
            "command": "python bench/synthetic_lr.py "
            f"--vocab {args.vocab} --steps {args.steps} --lrs {' '.join(map(str, args.lrs))}",
        },
        "summary": summarize(runs, args.lrs, args.patience),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["summary"], indent=1))


if __name__ == "__main__":
    main()
