"""Time `make demo` as a new user runs it: a fresh clone, `make venv`, then the workflow.

    python bench/fresh_demo.py                    # clone HEAD into /tmp/mixce-fresh-demo
    python bench/fresh_demo.py --clone-dir DIR    # elsewhere (DIR must not exist)
    python bench/fresh_demo.py --update           # pull HEAD into that clone, make demo again

``--update`` records, beside the fresh run, the commit the clone was updated to and what
`make demo` then reran (its jobs and seconds): what a user sees after pulling a change.

Writes bench/results/fresh_demo.json: the commit, the seconds of each step and in all, the
machine's cores and its load average before and after (a loaded machine makes every number
an upper bound), and where the clone's results and Snakemake log are, which
`python docs/demo_readme.py --write` then reads. The clone is kept for that.
Only committed work is timed (the clone is of HEAD); pip's download cache is used as is.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "results" / "fresh_demo.json"


def timed(cmd: list[str], cwd: Path, log: Path) -> float:
    """Run ``cmd`` in ``cwd`` with its output appended to ``log``; its wall seconds."""
    start = time.perf_counter()
    with log.open("a") as handle:
        handle.write(f"$ {' '.join(cmd)}\n")
        handle.flush()
        proc = subprocess.run(cmd, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): see {log}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clone-dir", default="/tmp/mixce-fresh-demo")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--update", action="store_true", help="pull HEAD into the clone, rerun")
    args = parser.parse_args(argv)
    clone = Path(args.clone_dir)
    if args.update:
        return update(clone, Path(args.out))
    if clone.exists():
        raise SystemExit(f"{clone} exists: remove it or pass another --clone-dir")
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if dirty:
        print("note: uncommitted changes are not in the clone (HEAD is timed)", file=sys.stderr)
    load_before = os.getloadavg()
    clone.parent.mkdir(parents=True, exist_ok=True)
    log = clone.parent / f"{clone.name}.log"
    log.write_text("")
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    venv_s = timed(["make", "venv"], clone, log)
    demo_s = timed(["make", "demo"], clone, log)
    logs = sorted((clone / ".snakemake" / "log").glob("*.snakemake.log"))
    record = {
        "command": "python bench/fresh_demo.py",
        "commit": commit,
        "venv_s": round(venv_s, 1),
        "demo_s": round(demo_s, 1),
        "total_s": round(venv_s + demo_s, 1),
        "cores": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "run_dir": str(clone / "results" / "demo"),
        "snakemake_log": str(logs[-1]) if logs else None,
        "output_log": str(log),
    }
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return 0


def update(clone: Path, out: Path) -> int:
    """Pull this repository's HEAD into an existing clone and time `make demo` there."""
    record = json.loads(out.read_text())
    if Path(record["run_dir"]).parent.parent != clone:
        raise SystemExit(f"{out} records another clone than {clone}")
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run(
        ["git", "pull", "--quiet", "--ff-only", str(REPO), "HEAD"], cwd=clone, check=True
    )
    log = clone.parent / f"{clone.name}.log"
    load_before = os.getloadavg()
    seconds = timed(["make", "demo"], clone, log)
    logs = sorted((clone / ".snakemake" / "log").glob("*.snakemake.log"))
    record["update"] = {
        "command": "python bench/fresh_demo.py --update",
        "commit": commit,
        "demo_s": round(seconds, 1),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "snakemake_log": str(logs[-1]) if logs else None,
    }
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record["update"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
