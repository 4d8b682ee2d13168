"""Wall time of a whole synthetic grid through Snakemake, and job time per rule and V.

Runs ``snakemake all --profile profiles/local --cores N [--configfile F ...]`` (unless
``--summarize-only``), then adds up the per-job benchmark files of the run.

Usage:
  python bench/grid_time.py --configfile my_grid.yaml [--cores 2]   # run and time it
  python bench/grid_time.py --run paper_v100 --summarize-only        # job times of a past run
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd
import yaml

from mixce.config import load_config


def job_seconds(run_dir: Path) -> pd.DataFrame:
    """One row per job benchmark file of results/<run>/benchmarks: rule, V, objective, s."""
    rows = []
    for tsv in sorted((run_dir / "benchmarks").rglob("*.tsv")):
        rule = tsv.relative_to(run_dir / "benchmarks").parts[0]
        parts = tsv.relative_to(run_dir / "benchmarks").parts
        v = next((int(p[1:]) for p in parts if p.startswith("V") and p[1:].isdigit()), None)
        objective = parts[3] if rule == "synthetic_train" and len(parts) > 4 else None
        seconds = float(pd.read_csv(tsv, sep="\t")["s"].iloc[-1])
        rows.append({"rule": rule, "vocab_size": v, "objective": objective, "seconds": seconds})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configfile", nargs="*", default=[])
    ap.add_argument("--run", help="run name (default: from the config files)")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--summarize-only", action="store_true")
    ap.add_argument("--out", type=Path, help="report file (default bench/results/grid_<run>.json)")
    ap.add_argument(
        "--snakemake-arg",
        action="append",
        default=[],
        help="an extra snakemake argument (repeat), e.g. --snakemake-arg=--until=synthetic_data",
    )
    args = ap.parse_args()
    config = load_config(["config.yaml", *args.configfile])
    run = args.run or config["run"]
    wall = None
    if not args.summarize_only:
        cmd = [
            sys.executable,
            "-m",
            "snakemake",
            "all",
            "--profile",
            "profiles/local",
            "--cores",
            str(args.cores),
        ]
        if args.configfile:
            cmd += ["--configfile", *args.configfile]
        cmd += args.snakemake_arg
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - t0
    jobs = job_seconds(Path("results", run))
    per_rule = jobs.groupby("rule")["seconds"].agg(["count", "sum"]).round(1)
    per_v = defaultdict(dict)
    train = jobs[jobs["rule"] == "synthetic_train"]
    for (v, objective), g in train.groupby(["vocab_size", "objective"]):
        per_v[int(v)][objective] = round(float(g["seconds"].mean()), 2)
    report = {
        "run": run,
        "cores": args.cores,
        "wall_seconds": wall,
        "job_seconds_per_rule": per_rule.to_dict("index"),
        "mean_train_job_seconds_by_vocab_and_objective": dict(per_v),
    }
    out = args.out or Path("bench/results") / f"grid_{run}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(yaml.safe_dump(report, sort_keys=False))


if __name__ == "__main__":
    main()
