"""The generators of the README's demo numbers and of PROTOCOL.md's demo effects."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_log_facts_reads_jobs_and_wall_time(tmp_path) -> None:
    demo = load("demo_readme")
    log = tmp_path / "x.snakemake.log"
    log.write_text(
        "Building DAG of jobs...\nJob stats:\njob    count\n-----  -----\nall        1\n"
        "total    198\n\n[Mon Nov 30 15:58:10 2026]\nlocalrule all:\n"
        "[Mon Nov 30 16:16:20 2026]\nFinished job 0.\n"
    )
    assert demo.log_facts(log) == (198, 18 * 60 + 10.0)


def test_table2_markdown_by_hand(tmp_path) -> None:
    demo = load("demo_readme")
    path = tmp_path / "table2.csv"
    pd.DataFrame(
        {
            "model": ["human", "tiny"],
            "objective": ["human", "mixce"],
            "wiki_eta": [float("nan"), 0.1],
            "wiki_ppl": [float("nan"), 2917.4],
            "wiki_div": [0.94, 0.998],
            "wiki_mauve": [1.0, 0.25],
            "wiki_mauve_std": [float("nan"), 0.031],
            "wiki_coh": [0.4891, 0.0461],
        }
    ).to_csv(path, index=False)
    lines = demo.table2_md(path, "wiki").splitlines()
    assert lines[2] == "| human | human | - | 0.94 | 1.000 | 0.489 |"
    assert lines[3] == "| tiny | MixCE (eta 0.1) | 2917 | 1.00 | 0.250 (0.031) | 0.046 |"


def test_docs_hold_the_generated_blocks() -> None:
    demo, effects = load("demo_readme"), load("protocol_effects")
    readme = (ROOT / "README.md").read_text()
    assert demo.START in readme and demo.END in readme
    protocol = (ROOT / "docs" / "PROTOCOL.md").read_text()
    assert effects.START in protocol and effects.END in protocol


def test_replace_marked_block_keeps_the_markers_and_the_rest() -> None:
    import pytest
    from layout import replace_marked_block

    text = "intro\n<!-- a -->\nold\nlines\n<!-- b -->\noutro\n"
    assert replace_marked_block(text, "<!-- a -->", "<!-- b -->", "new") == (
        "intro\n<!-- a -->\nnew\n<!-- b -->\noutro\n"
    )
    with pytest.raises(ValueError, match="no block"):
        replace_marked_block("<!-- b --> then <!-- a -->", "<!-- a -->", "<!-- b -->", "x")


def test_ceiling_row_and_largest_std_by_hand(tmp_path) -> None:
    demo = load("demo_readme")
    human = tmp_path / "human.csv"
    pd.DataFrame(
        {
            "dataset": ["wiki", "wiki"],
            "split": ["dev", "test"],
            "mauve_halves": [0.5, 0.934],
            "mauve_halves_std": [0.1, 0.0123],
            "n_half": [100, 100],
        }
    ).to_csv(human, index=False)
    assert demo.ceiling_row(human, "wiki") == (
        "| human vs human | two halves of 100 texts | - | - | 0.934 (0.012) | - |"
    )
    assert demo.ceiling_row(human, "news") is None
    table2 = tmp_path / "table2.csv"
    pd.DataFrame(
        {"objective": ["human", "mle", "mixce"], "wiki_mauve_std": [float("nan"), 0.021, 0.043]}
    ).to_csv(table2, index=False)
    assert demo.largest_std(table2, "wiki") == (0.043, "MixCE")
    objectives = tmp_path / "objectives.csv"
    pd.DataFrame({"objective": ["tailr", "lfd"], "mauve_std": [0.13, 0.01]}).to_csv(objectives)
    assert demo.largest_std(table2, "wiki", objectives) == (0.13, "TaiLr")
    assert demo.largest_std(table2, "wiki", tmp_path / "none.csv") == (0.043, "MixCE")


def test_timing_line_from_the_fresh_clone_record(tmp_path) -> None:
    demo = load("demo_readme")
    log = tmp_path / "x.snakemake.log"
    log.write_text("Job stats:\njob    count\n-----  -----\ntotal    141\n\n")
    timing = {
        "commit": "0123456789abcdef",
        "cores": 2,
        "venv_s": 95.2,
        "demo_s": 1000.0,
        "total_s": 1095.2,
        "loadavg_before": [0.2, 0.5, 1.0],
    }
    line = demo.timing_line(timing, log, "")
    assert "commit 0123456" in line and "on 2 cores: **18 min 15 s** in all" in line
    assert "1 min 35 s for the venv and 16 min 40 s for the workflow's 141 jobs" in line
    assert "load average before the run: 0.2, 0.5, 1.0" in line


def test_timing_line_after_an_update(tmp_path) -> None:
    demo = load("demo_readme")
    fresh, rerun = tmp_path / "fresh.snakemake.log", tmp_path / "rerun.snakemake.log"
    fresh.write_text("Job stats:\njob    count\n-----  -----\ntotal    141\n\n")
    rerun.write_text("Job stats:\njob    count\n-----  -----\ntotal    23\n\n")
    timing = {
        "commit": "0123456789abcdef",
        "cores": 2,
        "venv_s": 60.0,
        "demo_s": 960.0,
        "total_s": 1020.0,
        "loadavg_before": [0.2, 0.5, 1.0],
        "snakemake_log": str(fresh),
        "update": {
            "commit": "fedcba9876543210",
            "demo_s": 125.0,
            "loadavg_before": [2.0, 2.0, 2.0],
            "snakemake_log": str(rerun),
        },
    }
    line = demo.timing_line(timing, rerun, "")
    assert "16 min 0 s for the workflow's 141 jobs" in line
    assert "updated to commit fedcba9" in line and "reran only the 23 jobs" in line
    assert "in 2 min 5 s (load average before: 2.0, 2.0, 2.0)" in line
