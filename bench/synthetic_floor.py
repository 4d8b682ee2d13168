"""A lower bound on the full synthetic grid's wall time on this machine, from measured parts.

Every exact training step, whatever its objective, runs Q's network forward over all V + 1
inputs, backpropagates a (V + 1) x V logits gradient through it and takes an Adam step. This
bench times exactly that part of ``train_q`` (dropout on, float32, 1 thread) with a fixed
logits gradient, so the objective itself costs nothing:

- ``network``: one process alone;
- ``network, 2 processes``: two processes at once, one per core, as a 2-core grid runs;
- ``matmuls``: only the three (V + 1) x d x V matrix products of that step (forward, and the
  two of its backward), the arithmetic no implementation of this model can skip;
- ``cheapest_objective``: the hand-derived value and logits gradient of forward KL (MLE), the
  cheapest objective (no visit counts), on a dense count matrix;
- ``matmuls + cheapest_objective``: the sum of the two, the least any step of the grid costs
  with these kernels.

It multiplies each by the number of steps that the grid's runs actually took (read from the
per-run JSON files of reproduced grids, ``results/<run>/synthetic/train/**/eta*.json``) and
divides by the number of cores. The grid's wall time cannot be below these numbers with the
protocol of config.yaml (model, Adam at lr 1e-2, early stopping), since they leave out the
objectives, the dev checks, JS's sampling, data preparation and process start-up.

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

import torch

from mixce.synthetic.model import NeuralBigram
from mixce.synthetic.objectives import Batch, Setting, exact_value_and_grad

HIDDEN = 50  # synthetic.model.hidden_size of config.yaml


def steps_taken(run_dirs: list[Path]) -> dict[int, dict]:
    """Per V: the number of trained models and the total number of steps they took."""
    out: dict[int, dict] = defaultdict(lambda: {"models": 0, "steps": 0, "runs": set()})
    for run_dir in run_dirs:
        files = sorted((run_dir / "synthetic" / "train").rglob("eta*.json"))
        if not files:
            raise FileNotFoundError(f"no training results under {run_dir}/synthetic/train")
        for f in files:
            for model in json.loads(f.read_text()):
                row = out[int(model["vocab_size"])]
                row["models"] += 1
                row["steps"] += int(model["steps"])
                row["runs"].add(run_dir.name)
    return {v: {**r, "runs": sorted(r["runs"])} for v, r in sorted(out.items())}


def network_step_seconds(v: int, steps: int = 200, seed: int = 0) -> float:
    """Seconds per step of Q's forward, backward of a fixed logits gradient and Adam."""
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


def objective_seconds(v: int, reps: int = 200, seed: int = 0) -> float:
    """Seconds for forward KL's hand-derived value and logits gradient (float32)."""
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(v + 1, v, generator=gen)
    counts = torch.randint(0, 50, (v + 1, v), generator=gen).float()
    batch = Batch(counts=counts, n_seq=50000, seqs=None, seq_log_p=None)  # type: ignore[arg-type]
    setting = Setting(torch.zeros(v + 1, v), 500, "exact", 1.0, 0)

    def objective() -> None:
        exact_value_and_grad("forward_kl", 1.0, logits, batch, setting)

    for _ in range(max(reps // 10, 5)):
        objective()
    t0 = time.perf_counter()
    for _ in range(reps):
        objective()
    return (time.perf_counter() - t0) / reps


def _concurrent(v: int, steps: int, procs: int) -> float:
    """Mean seconds per step of ``procs`` processes timing network steps at once."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(procs) as pool:
        times = pool.starmap(network_step_seconds, [(v, steps, i) for i in range(procs)])
    return sum(times) / len(times)


def floor_rows(
    steps: dict[int, dict], times: dict[int, dict[str, float]], cores: int
) -> list[dict]:
    """Per V, the wall-time bound (s) of each timed part: total steps x s/step / cores."""
    rows = []
    for v, s in steps.items():
        row = {"vocab_size": v, "models": s["models"], "steps": s["steps"], "runs": s["runs"]}
        for part, sec in times[v].items():
            row[f"{part}_step_s"] = sec
            row[f"{part}_wall_s"] = s["steps"] * sec / cores
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=Path, nargs="+", required=True, help="results/<run> dirs")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--steps", type=int, default=300, help="timed steps per measurement")
    ap.add_argument("--target-min", type=float, default=30.0)
    ap.add_argument("--out", type=Path, default=Path("bench/results/synthetic_floor.json"))
    args = ap.parse_args()
    steps = steps_taken(args.runs)
    times: dict[int, dict[str, float]] = {}
    for v in steps:
        times[v] = {
            "network": network_step_seconds(v, args.steps),
            "network_concurrent": _concurrent(v, args.steps, args.cores),
            "matmuls": matmul_seconds(v, args.steps),
            "cheapest_objective": objective_seconds(v, args.steps),
        }
        times[v]["matmuls_plus_objective"] = times[v]["matmuls"] + times[v]["cheapest_objective"]
        print(v, json.dumps(times[v]), flush=True)
    rows = floor_rows(steps, times, args.cores)
    parts = ("matmuls", "matmuls_plus_objective", "network", "network_concurrent")
    total = {p: sum(r[f"{p}_wall_s"] for r in rows) for p in parts}
    result = {
        "meta": {
            "machine": platform.processor() or platform.machine(),
            "cores": args.cores,
            "torch": torch.__version__,
            "command": "python bench/synthetic_floor.py --runs "
            + " ".join(str(r) for r in args.runs),
        },
        "rows": rows,
        "total_wall_s": total,
        "target_s": 60 * args.target_min,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(
        "\n| V | models | steps | matmuls: ms/step (wall) | matmuls + cheapest objective | "
        "network alone | network, 2 at once |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['vocab_size']} | {r['models']} | {r['steps']} | "
            + " | ".join(
                f"{1e3 * r[f'{p}_step_s']:.2f} ({r[f'{p}_wall_s'] / 60:.1f} min)" for p in parts
            )
            + " |"
        )
    print(
        "| all | | | "
        + " | ".join(f"{total[p] / 60:.1f} min" for p in parts)
        + f" | (target {args.target_min:g} min)"
    )


if __name__ == "__main__":
    main()
