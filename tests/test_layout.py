"""The private workflow copy used by the Snakemake tests and docs/cluster_plan.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from mixce.layout import REPO, WORKFLOW_FILES, copy_workflow


def test_copy_has_every_workflow_file_and_no_caches(tmp_path: Path) -> None:
    dest = copy_workflow(tmp_path / "copy", ignore=("site.yaml",))
    for name in WORKFLOW_FILES:
        assert (dest / name).exists(), name
    assert (dest / "rules" / "common.smk").read_text() == (REPO / "rules/common.smk").read_text()
    assert not list(dest.rglob("__pycache__")) and not list(dest.rglob("*.pyc"))
    assert not list(dest.rglob("site.yaml"))
    assert not (dest / "results").exists() and not (dest / ".venv").exists()


def test_every_include_and_script_of_the_workflow_is_copied() -> None:
    """Paths the Snakefile and rules name resolve inside the copied top-level entries."""
    text = (REPO / "Snakefile").read_text() + "".join(
        p.read_text() for p in sorted((REPO / "rules").glob("*.smk"))
    )
    for top in ("rules", "scripts", "schemas", "envs", "report"):
        if f"{top}/" in text:
            assert top in WORKFLOW_FILES, top


def test_missing_workflow_file_is_named(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "Snakefile").write_text("")
    with pytest.raises(FileNotFoundError, match="rules"):
        copy_workflow(tmp_path / "copy", repo=repo)
