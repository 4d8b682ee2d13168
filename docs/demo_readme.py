"""The README's demo numbers, generated from a finished `make demo` run (so they cannot drift).

    python docs/demo_readme.py                       # print the Markdown block
    python docs/demo_readme.py --write               # replace the block in README.md
    python docs/demo_readme.py --run-dir DIR --log LOG --context "..."

By default it reads the fresh-clone run that `python bench/fresh_demo.py` timed
(bench/results/fresh_demo.json: the venv and workflow times, the run's directory and log);
``--run-dir`` / ``--log`` read another run instead. From the run: tables/table2.csv and
objectives.csv, metrics/human.csv (the human-vs-human ceiling), and the Snakemake log for
the job count. ``--context`` says how the run was made; it is printed beside the time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]  # the package; tests/layout.py

from layout import replace_marked_block  # noqa: E402

README = REPO / "README.md"
TIMING = REPO / "bench" / "results" / "fresh_demo.json"
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
            f"| {num(df.at[i, f'{dataset}_div'], 2)} | {with_std(df, i, f'{dataset}_mauve', 3)} "
            f"| {num(df.at[i, f'{dataset}_coh'], 3)} |"
        )
    return "\n".join(lines)


def ceiling_row(human_csv: Path, dataset: str) -> str | None:
    """Table 2's human-vs-human row: MAUVE of two disjoint halves of the test texts (mean and
    std over the splits), or None when the run has no such score."""
    df = pd.read_csv(human_csv)
    rows = df[(df["dataset"] == dataset) & (df["split"] == "test")]
    if rows.empty or "mauve_halves" not in rows:
        return None
    row = rows.iloc[0]
    cell = f"{num(row['mauve_halves'], 3)} ({num(row['mauve_halves_std'], 3)})"
    half = int(row["n_half"])
    return f"| human vs human | two halves of {half} texts | - | - | {cell} | - |"


def largest_std(path: Path, dataset: str, objectives: Path | None = None) -> tuple[float, str]:
    """The largest seed-to-seed standard deviation of test MAUVE among the models of Table 2
    and of the objectives table (when given), and the row it belongs to."""
    df = pd.read_csv(path)
    i = df[f"{dataset}_mauve_std"].idxmax()
    best = float(df.at[i, f"{dataset}_mauve_std"]), LABELS.get(df.at[i, "objective"], "?")
    if objectives is not None and objectives.exists():
        obj = pd.read_csv(objectives)
        j = obj["mauve_std"].idxmax()
        if obj.at[j, "mauve_std"] > best[0]:
            best = float(obj.at[j, "mauve_std"]), LABELS.get(obj.at[j, "objective"], "?")
    return best


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
            cells.append(with_std(df, i, col, 3) if col == "mauve" else num(df.at[i, col], digits))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def timing_line(timing: dict | None, log: Path | None, context: str) -> str | None:
    """Where the numbers come from and how long the run took."""
    jobs, wall = log_facts(log) if log is not None else (None, None)
    if timing is not None:
        load = ", ".join(f"{x:.1f}" for x in timing["loadavg_before"])
        fresh_jobs = log_facts(Path(timing["snakemake_log"]))[0] if "update" in timing else jobs
        text = (
            f"Last generated from `python bench/fresh_demo.py` (a fresh clone of commit "
            f"{timing['commit'][:7]}, then `make venv` and `make demo`) on {timing['cores']} "
            f"cores: **{minutes(timing['total_s'])}** in all, {minutes(timing['venv_s'])} for "
            f"the venv and {minutes(timing['demo_s'])} for the workflow's {fresh_jobs} jobs (load "
            f"average before the run: {load}){'; ' + context if context else ''}."
        )
        if "update" in timing:
            up = timing["update"]
            up_load = ", ".join(f"{x:.1f}" for x in up["loadavg_before"])
            text += (
                f" The numbers below come from the same clone updated to commit "
                f"{up['commit'][:7]} (`python bench/fresh_demo.py --update`), where `make demo` "
                f"reran only the {jobs} jobs the change touched, in {minutes(up['demo_s'])} "
                f"(load average before: {up_load})."
            )
        return text
    if wall is None:
        return None
    return (
        f"Last generated from a `make demo` run: {jobs} jobs, **{minutes(wall)}** wall time "
        f"from the first to the last line of its Snakemake log{'; ' + context if context else ''}."
    )


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"


def block(run_dir: Path, log: Path | None, context: str, timing: dict | None = None) -> str:
    tables = run_dir / "tables"
    dataset = next(
        c.removesuffix("_ppl")
        for c in pd.read_csv(tables / "table2.csv").columns
        if c.endswith("_ppl")
    )
    parts = []
    line = timing_line(timing, log, context)
    if line:
        parts.append(line)
    table = table2_md(tables / "table2.csv", dataset)
    ceiling = ceiling_row(run_dir / "metrics" / "human.csv", dataset)
    if ceiling is not None:
        table += "\n" + ceiling
    parts += [
        "",
        "Table 2 as produced (`results/demo/tables/table2.csv`, test split, means over the "
        "sampling seeds, MAUVE's standard deviation over seeds in brackets), with the "
        "human-vs-human ceiling (`results/demo/metrics/human.csv`: MAUVE between two disjoint "
        "halves of the test texts, one random split per sampling seed):",
        "",
        table,
        "",
        "The largest seed-to-seed standard deviation of test MAUVE among the models of both "
        "tables is {:.3f} ({}).".format(
            *largest_std(tables / "table2.csv", dataset, tables / "objectives.csv")
        ),
    ]
    if (tables / "objectives.csv").exists():
        parts += [
            "",
            "The comparison of objectives (`results/demo/tables/objectives.csv`, each "
            "objective at the setting dev MAUVE selected):",
            "",
            objectives_md(tables / "objectives.csv"),
        ]
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timing", default=str(TIMING), help="bench/fresh_demo.py's record")
    parser.add_argument("--run-dir", default=None, help="another run (default: the timed one)")
    parser.add_argument("--log", default=None, help="the run's Snakemake log (default: newest)")
    parser.add_argument("--context", default="", help="how the run was made (printed)")
    parser.add_argument("--write", action="store_true", help="update README.md")
    args = parser.parse_args(argv)
    timing = None
    if args.run_dir is None:
        timing = json.loads(Path(args.timing).read_text())
        run_dir = Path(timing["run_dir"])
        log = Path(timing.get("update", timing)["snakemake_log"])
    else:
        run_dir = Path(args.run_dir).resolve()
        log = Path(args.log) if args.log else None
        if log is None:
            logs = sorted((run_dir.parent.parent / ".snakemake" / "log").glob("*.snakemake.log"))
            log = logs[-1] if logs else None
    text = block(run_dir, log, args.context, timing)
    if not args.write:
        print(text)
        return 0
    README.write_text(replace_marked_block(README.read_text(), START, END, text))
    print(f"updated {README}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
