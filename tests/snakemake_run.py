"""Running the workflow's Snakemake from tests (tests/test_workflow.py, tests/test_reruns.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SNAKEMAKE = Path(sys.executable).with_name("snakemake")
# A guard against a hung run, not a speed target: the test config takes about 5 minutes on
# 2 idle cores; 30 minutes leaves room for a loaded machine (MIXCE_TEST_TIMEOUT_S overrides).
TIMEOUT_S = int(os.environ.get("MIXCE_TEST_TIMEOUT_S", "1800"))


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``snakemake *args`` in ``workdir``; a failure (with ``check``) fails the test with
    the ends of its output."""
    proc = subprocess.run(
        [str(SNAKEMAKE), *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"snakemake {' '.join(args)} exited with {proc.returncode}:\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        )
    return proc


def job_counts(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """The first "Job stats" table of a (dry) run; {} when there is nothing to do."""
    text = proc.stdout + "\n" + proc.stderr
    match = re.search(r"Job stats:\n(.*?)\n\s*\n", text + "\n\n", flags=re.S)
    if match is None:
        return {}
    counts = {}
    for line in match.group(1).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
            counts[parts[0]] = int(parts[1])
    return counts
