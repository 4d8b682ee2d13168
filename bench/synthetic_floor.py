"""A lower bound on the full synthetic grid's wall time on this machine, from measured parts.

Every exact training step, whatever its objective, runs Q's network forward over all V + 1
inputs, backpropagates a (V + 1) x V logits gradient through it and takes an Adam step, and
computes its objective's value and logits gradient. This bench times those parts alone
(float32, 1 thread), each on its own:

- ``matmuls``: only the three (V + 1) x d x V matrix products of the network step (forward,
  and the two of its backward), the arithmetic no implementation of this model can skip;
- ``matmuls_plus_cheapest``: plus the hand-derived value and gradient of forward KL (MLE),
  the cheapest objective (no visit counts), for every step;
- ``matmuls_plus_own``: plus each run's own objective (hand-derived value and gradient as
  training computes them, visit counts included; JS's sampling counted as free);
- ``network``: the network step as training runs it (dropout, Adam) with a fixed logits
  gradient, one process alone;
- ``network_concurrent``: the same, two processes at once, one per core, as a 2-core grid
  runs;
- ``network_plus_own``: ``network`` plus each run's own objective: a training step without
  its dev checks.

It multiplies each by the number of steps that the grid's runs actually took (read from the
per-run JSON files of reproduced grids, ``results/<run>/synthetic/train/**/eta*.json``, per
V and objective) and divides by the number of cores. The grid's wall time cannot be below
these numbers with the protocol of config.yaml (model, Adam at lr 1e-2, early stopping):
they leave out the dev checks, JS's sampling, data preparation and process start-up.

Usage:
  python bench/synthetic_floor.py --runs results/paper_v100 results/paper_v500 results/paper_v1000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from mixce.synthetic.data import chain_matrix
from mixce.synthetic.model import NeuralBigram
from mixce.synthetic.objectives import Batch, Setting, exact_value_and_grad
from mixce.synthetic.target import random_target, uniform_start

HIDDEN = 50  # synthetic.model.hidden_size of config.yaml


def steps_taken(run_dirs: list[Path]) -> dict[int, dict]:
    """Per V: the number of trained models, their total steps and the steps per objective."""
    out: dict[int, dict] = defaultdict(
        lambda: {"models": 0, "steps": 0, "by_objective": defaultdict(int), "runs": set()}
    )
    for run_dir in run_dirs:
        files = sorted((run_dir / "synthetic" / "train").rglob("eta*.json"))
        if not files:
            raise FileNotFoundError(f"no training results under {run_dir}/synthetic/train")
        for f in files:
            for model in json.loads(f.read_text()):
                row = out[int(model["vocab_size"])]
                row["models"] += 1
                row["steps"] += int(model["steps"])
                row["by_objective"][model["objective"]] += int(model["steps"])
                row["runs"].add(run_dir.name)
    return {
        v: {**r, "by_objective": dict(sorted(r["by_objective"].items())), "runs": sorted(r["runs"])}
        for v, r in sorted(out.items())
    }


def network_step_seconds(
    v: int, steps: int = 200, seed: int = 0, start_at: float | None = None
) -> float:
    """Seconds per step of Q's forward, backward of a fixed logits gradient and Adam
    (timed from the wall-clock time ``start_at`` when given, so processes overlap)."""
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    model = NeuralBigram(v, HIDDEN, 0.1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-4)
    grad = torch.randn(v + 1, v) * 1e-3

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        model.transition_logits().backward(grad)
        opt.step()

    for _ in range(max(steps // 10, 5)):
        step()
    if start_at is not None:
        time.sleep(max(0.0, start_at - time.time()))
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps


def matmul_seconds(v: int, reps: int = 200, seed: int = 0) -> float:
    """Seconds for the step's three (V + 1) x d x V products (forward, grad W, grad h)."""
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(v + 1, HIDDEN, generator=gen)
    w = torch.randn(v, HIDDEN, generator=gen)  # nn.Linear's (out, in) layout
    g = torch.randn(v + 1, v, generator=gen)

    def products() -> None:
        h @ w.t()
        g.t() @ h
        g @ w

    for _ in range(max(reps // 10, 5)):
        products()
    t0 = time.perf_counter()
    for _ in range(reps):
        products()
    return (time.perf_counter() - t0) / reps


def objective_seconds(v: int, objective: str, reps: int = 200, seed: int = 0) -> float:
    """Seconds for one objective's hand-derived value and logits gradient (float32), at eta
    0.5 on a random 50% target P with Q = P perturbed (JS: 0, its cost is sampling)."""
    if objective == "js":
        return 0.0
    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    p = chain_matrix(random_target(v, 0.5, 0.5, rng), uniform_start(v))
    log_p = torch.from_numpy(np.log(p + 1e-30)).float()
    logits = torch.from_numpy(np.log(p + 1e-3) + 0.1 * rng.standard_normal(p.shape)).float()
    counts = torch.from_numpy(rng.poisson(50.0 * p)).float()
    batch = Batch(counts=counts, n_seq=50000, seqs=None, seq_log_p=None)  # type: ignore[arg-type]
    setting = Setting(log_p, 500, "exact", 1.0, 0)

    def run() -> None:
        exact_value_and_grad(objective, 0.5, logits, batch, setting)

    for _ in range(max(reps // 10, 5)):
        run()
    t0 = time.perf_counter()
    for _ in range(reps):
        run()
    return (time.perf_counter() - t0) / reps


def _concurrent(v: int, steps: int, procs: int) -> float:
    """Mean seconds per step of ``procs`` processes timing network steps at once (all start
    timing at the same wall-clock time, after their imports and warm-up)."""
    ctx = mp.get_context("spawn")
    start_at = time.time() + 10.0
    with ctx.Pool(procs) as pool:
        times = pool.starmap(network_step_seconds, [(v, steps, i, start_at) for i in range(procs)])
    return sum(times) / len(times)


def floor_rows(steps: dict[int, dict], times: dict[int, dict], cores: int) -> list[dict]:
    """Per V, the wall-time bound (s) of each part: steps x seconds per step / cores.

    ``times[v]`` holds seconds per step of ``matmuls``, ``network`` and
    ``network_concurrent``, and ``objective``: seconds per objective name.
    """
    rows = []
    for v, s in steps.items():
        t = times[v]
        own = sum(n * t["objective"][obj] for obj, n in s["by_objective"].items())
        cheapest = s["steps"] * t["objective"]["forward_kl"]
        wall = {
            "matmuls": s["steps"] * t["matmuls"],
            "matmuls_plus_cheapest": s["steps"] * t["matmuls"] + cheapest,
            "matmuls_plus_own": s["steps"] * t["matmuls"] + own,
            "network": s["steps"] * t["network"],
            "network_concurrent": s["steps"] * t["network_concurrent"],
            "network_plus_own": s["steps"] * t["network"] + own,
        }
        rows.append(
            {
                "vocab_size": v,
                "models": s["models"],
                "steps": s["steps"],
                "steps_by_objective": s["by_objective"],
                "runs": s["runs"],
                "seconds_per_step": {k: t[k] for k in ("matmuls", "network", "network_concurrent")},
                "objective_seconds_per_step": t["objective"],
                **{f"{k}_wall_s": sec / cores for k, sec in wall.items()},
            }
        )
    return rows


PARTS = (
    "matmuls",
    "matmuls_plus_cheapest",
    "matmuls_plus_own",
    "network",
    "network_concurrent",
    "network_plus_own",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=Path, nargs="+", required=True, help="results/<run> dirs")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--steps", type=int, default=300, help="timed steps per measurement")
    ap.add_argument("--target-min", type=float, default=30.0)
    ap.add_argument("--out", type=Path, default=Path("bench/results/synthetic_floor.json"))
    args = ap.parse_args()
    steps = steps_taken(args.runs)
    times: dict[int, dict] = {}
    for v, s in steps.items():
        times[v] = {
            "matmuls": matmul_seconds(v, args.steps),
            "network": network_step_seconds(v, args.steps),
            "network_concurrent": _concurrent(v, args.steps, args.cores),
            "objective": {
                obj: objective_seconds(v, obj, args.steps)
                for obj in sorted({*s["by_objective"], "forward_kl"})
            },
        }
        print(v, json.dumps(times[v]), flush=True)
    rows = floor_rows(steps, times, args.cores)
    total = {p: sum(r[f"{p}_wall_s"] for r in rows) for p in PARTS}
    result = {
        "meta": {
            "machine": platform.processor() or platform.machine(),
            "cores": args.cores,
            "torch": torch.__version__,
            "command": "python bench/synthetic_floor.py --runs "
            + " ".join(str(r) for r in args.runs)
            + f" --steps {args.steps}",
        },
        "rows": rows,
        "total_wall_s": total,
        "target_s": 60 * args.target_min,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print("\nminutes of wall on", args.cores, "cores")
    print("| V | models | steps | " + " | ".join(PARTS) + " |")
    print("|---|---|---|" + "---|" * len(PARTS))
    for r in rows:
        cells = " | ".join(f"{r[f'{p}_wall_s'] / 60:.1f}" for p in PARTS)
        print(f"| {r['vocab_size']} | {r['models']} | {r['steps']:,} | {cells} |")
    cells = " | ".join(f"**{total[p] / 60:.1f}**" for p in PARTS)
    print(f"| all | | {sum(r['steps'] for r in rows):,} | {cells} |")
    print(f"target: {args.target_min:g} min")


if __name__ == "__main__":
    main()
