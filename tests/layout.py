"""The files that make up the workflow, and a private copy of them (tests, docs scripts).

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
