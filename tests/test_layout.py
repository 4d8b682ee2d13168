"""The private workflow copy used by the Snakemake tests and docs/cluster_plan.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from layout import REPO, WORKFLOW_FILES, copy_workflow


def test_copy_has_every_workflow_file_and_no_caches(tmp_path: Path) -> None:
    dest = copy_workflow(tmp_path / "copy", ignore=("site.yaml",))
    for name in WORKFLOW_FILES:
        assert (dest / name).exists(), name
    assert (dest / "rules" / "common.smk").read_text() == (REPO / "rules/common.smk").read_text()
    assert not list(dest.rglob("__pycache__")) and not list(dest.rglob("*.pyc"))
    assert not list(dest.rglob("site.yaml"))
    assert not (dest / "results").exists() and not (dest / ".venv").exists()


def test_every_script_and_caption_the_rules_name_is_copied(tmp_path: Path) -> None:
    """Each script and report caption a rules file names (a path relative to rules/) exists
    in a copy of the workflow."""
    dest = copy_workflow(tmp_path / "copy")
    named = set()
    for smk in sorted((REPO / "rules").glob("*.smk")):
        named |= set(re.findall(r'"((?:scripts|report)/[^"{}]+)"', smk.read_text()))
    assert len(named) >= 20, named
    for path in sorted(named):
        assert (dest / "rules" / path).is_file(), path
    assert (dest / "rules/report/workflow.rst").is_file()


def test_missing_workflow_file_is_named(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "Snakefile").write_text("")
    with pytest.raises(FileNotFoundError, match="rules"):
        copy_workflow(tmp_path / "copy", repo=repo)
