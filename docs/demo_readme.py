"""The README's demo numbers, generated from a finished `make demo` run (so they cannot drift).

    python docs/demo_readme.py                       # print the Markdown block
    python docs/demo_readme.py --write               # replace the block in README.md
    python docs/demo_readme.py --run-dir DIR --log LOG --context "..."

Reads results/<run>/tables/table2.csv and objectives.csv, and the run's Snakemake log
(.snakemake/log/*.snakemake.log, the newest by default) for the job count and the wall time
(from its first to its last time stamp). ``--context`` says how the run was made (e.g. what
else shared the machine); it is printed beside the wall time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from mixce.io import replace_marked_block  # noqa: E402

README = REPO / "README.md"
START = "<!-- demo-numbers:start (python docs/demo_readme.py --write) -->"
END = "<!-- demo-numbers:end -->"
LABELS = {"human": "human", "mle": "MLE", "mixce": "MixCE", "tailr": "TaiLr", "lfd": "LFD"}
STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]")


def log_facts(log: Path) -> tuple[int | None, float | None]:
    """(jobs in the run, wall seconds from the first to the last time stamp) of a log."""
    text = log.read_text(errors="replace")
    stamps = [
        dt.datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
        for line in text.splitlines()
        if (m := STAMP.match(line))
    ]
    total = re.search(r"^total\s+(\d+)", text, re.M)
    wall = (stamps[-1] - stamps[0]).total_seconds() if len(stamps) > 1 else None
    return (int(total.group(1)) if total else None), wall


def num(x: float, digits: int) -> str:
    if x is None or not np.isfinite(x):
        return "-"
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.{digits}f}"


def with_std(df: pd.DataFrame, i: int, col: str, digits: int = 2) -> str:
    value = df.at[i, col] if col in df else np.nan
    std = df.at[i, f"{col}_std"] if f"{col}_std" in df else np.nan
    out = num(value, digits)
    return out if not np.isfinite(std) else f"{out} ({num(std, digits)})"


def table2_md(path: Path, dataset: str) -> str:
    df = pd.read_csv(path)
    lines = [
        f"| model | objective | {dataset} ppl | {dataset} div | {dataset} MAUVE (std) "
        f"| {dataset} coh |",
        "|---|---|---|---|---|---|",
    ]
    for i in df.index:
        objective = LABELS.get(str(df.at[i, "objective"]), str(df.at[i, "objective"]))
        eta = df.at[i, f"{dataset}_eta"] if f"{dataset}_eta" in df else np.nan
        if objective == "MixCE" and np.isfinite(eta):
            objective += f" (eta {eta:g})"
        lines.append(
            f"| {df.at[i, 'model']} | {objective} | {num(df.at[i, f'{dataset}_ppl'], 0)} "
            f"| {num(df.at[i, f'{dataset}_div'], 2)} | {with_std(df, i, f'{dataset}_mauve')} "
            f"| {num(df.at[i, f'{dataset}_coh'], 3)} |"
        )
    return "\n".join(lines)


def objectives_md(path: Path) -> str:
    df = pd.read_csv(path)
    cols = ["ppl", "div", "mauve", "coh", "distinct_1", "self_bleu", "seq_rep_4"]
    names = ["ppl", "div", "MAUVE (std)", "coh", "distinct-1", "self-BLEU", "seq-rep-4"]
    lines = ["| objective (setting) | " + " | ".join(names) + " |", "|---" * 8 + "|"]
    for i in df.index:
        objective = LABELS.get(str(df.at[i, "objective"]), str(df.at[i, "objective"]))
        setting = df.at[i, "setting"] if "setting" in df else ""
        label = f"{objective} ({setting})" if isinstance(setting, str) and setting else objective
        cells = []
        for col in cols:
            digits = 0 if col == "ppl" else 3 if col in ("coh", "self_bleu", "seq_rep_4") else 2
            cells.append(with_std(df, i, col) if col == "mauve" else num(df.at[i, col], digits))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def block(run_dir: Path, log: Path | None, context: str) -> str:
    tables = run_dir / "tables"
    dataset = next(
        c.removesuffix("_ppl")
        for c in pd.read_csv(tables / "table2.csv").columns
        if c.endswith("_ppl")
    )
    parts = []
    if log is not None:
        jobs, wall = log_facts(log)
        when = f"{int(wall // 60)} min {int(wall % 60)} s" if wall is not None else "?"
        parts.append(
            f"Last generated from a `make demo` run: {jobs} jobs, **{when}** wall time from "
            f"the first to the last line of its Snakemake log{'; ' + context if context else ''}."
        )
    parts += [
        "",
        f"Table 2 as produced (`{tables.relative_to(run_dir.parent.parent)}/table2.csv`, "
        "test split, means over the sampling seeds, MAUVE's standard deviation over seeds "
        "in brackets):",
        "",
        table2_md(tables / "table2.csv", dataset),
    ]
    if (tables / "objectives.csv").exists():
        parts += [
            "",
            "The comparison of objectives (`tables/objectives.csv`, each objective at the "
            "setting dev MAUVE selected):",
            "",
            objectives_md(tables / "objectives.csv"),
        ]
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default=str(REPO / "results" / "demo"))
    parser.add_argument("--log", default=None, help="the run's Snakemake log (default: newest)")
    parser.add_argument("--context", default="", help="how the run was made (printed)")
    parser.add_argument("--write", action="store_true", help="update README.md")
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir).resolve()
    log = Path(args.log) if args.log else None
    if log is None:
        logs = sorted((run_dir.parent.parent / ".snakemake" / "log").glob("*.snakemake.log"))
        log = logs[-1] if logs else None
    text = block(run_dir, log, args.context)
    if not args.write:
        print(text)
        return 0
    README.write_text(replace_marked_block(README.read_text(), START, END, text))
    print(f"updated {README}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
