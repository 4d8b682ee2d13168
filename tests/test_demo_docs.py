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
    assert lines[2] == "| human | human | - | 0.94 | 1.00 | 0.489 |"
    assert lines[3] == "| tiny | MixCE (eta 0.1) | 2917 | 1.00 | 0.25 (0.03) | 0.046 |"


def test_docs_hold_the_generated_blocks() -> None:
    demo, effects = load("demo_readme"), load("protocol_effects")
    readme = (ROOT / "README.md").read_text()
    assert demo.START in readme and demo.END in readme
    protocol = (ROOT / "docs" / "PROTOCOL.md").read_text()
    assert effects.START in protocol and effects.END in protocol


def test_replace_marked_block_keeps_the_markers_and_the_rest() -> None:
    import pytest

    from mixce.io import replace_marked_block

    text = "intro\n<!-- a -->\nold\nlines\n<!-- b -->\noutro\n"
    assert replace_marked_block(text, "<!-- a -->", "<!-- b -->", "new") == (
        "intro\n<!-- a -->\nnew\n<!-- b -->\noutro\n"
    )
    with pytest.raises(ValueError, match="no block"):
        replace_marked_block("<!-- b --> then <!-- a -->", "<!-- a -->", "<!-- b -->", "x")
