"""Helpers of the tests and the docs scripts: the files that make up the workflow and a private
copy of them; a generated block of a document.

A copy holds everything `snakemake` reads from the repository: rules (with their scripts and
report captions), schemas, environments, configs, the source package (whose code the rules
fingerprint) and the local and Slurm profiles; no results, caches or virtual environment.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_FILES: tuple[str, ...] = (
    "Snakefile",
    "rules",
    "schemas",
    "envs",
    "config.yaml",
    "config",
    "src",
    "slurm",
    "profiles",
)
IGNORED = ("__pycache__", "*.egg-info", "*.pyc")


def copy_workflow(dest: Path, ignore: tuple[str, ...] = (), repo: Path = REPO) -> Path:
    """Copy :data:`WORKFLOW_FILES` of ``repo`` into ``dest`` (which may exist); return it.

    ``ignore`` adds glob patterns to leave out (e.g. ``site.yaml``, a site's own settings).
    """
    dest.mkdir(parents=True, exist_ok=True)
    patterns = shutil.ignore_patterns(*IGNORED, *ignore)
    for name in WORKFLOW_FILES:
        src = repo / name
        if not src.exists():
            raise FileNotFoundError(f"{src}: a workflow file is missing from the repository")
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=patterns)
        else:
            shutil.copy2(src, dest / name)
    return dest


def load_bench(name: str, repo: Path = REPO) -> ModuleType:
    """Import bench/<name>.py (benchmarks are scripts, not part of the package) for tests."""
    path = repo / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"no benchmark script {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def replace_marked_block(text: str, start: str, end: str, block: str) -> str:
    """``text`` with what stands between the marker lines ``start`` and ``end`` replaced by
    ``block`` (markers kept; ValueError if one is missing): docs/*.py's generated parts."""
    if start not in text or end not in text.split(start, 1)[1]:
        raise ValueError(f"no block {start} ... {end}")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{block}\n{end}{tail}"
