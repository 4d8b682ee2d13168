"""Cluster limits: the runtime each job asks for under a partition's time limit (pure
functions: rules/cluster.smk turns config ``cluster`` into resources with them).

- The limit ``cluster.max_runtime``: minutes, or ``sinfo:<partition>[,...]`` read once.
- Training chains: a training job estimated past the limit runs as a chain of attempts: Slurm
  signals it :data:`SIGNAL_MINUTES` before the limit (slurm/config.yaml), the loop saves its
  resume checkpoint and fails, and Snakemake's retry resumes from it. Each attempt makes
  ``limit -`` :data:`TRAINING_MARGIN` minutes of progress.
- Group jobs: a model variant's sampling and scoring jobs run in one Slurm job of up to N
  connected components (``group:``, ``--group-components``), one after another.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
from collections.abc import Callable, Iterable, MutableMapping, Sequence

# Training jobs get SIGTERM this long before their time limit (slurm/config.yaml:
# --signal=TERM@300) and save their resume checkpoint.
SIGNAL_MINUTES = 5
# ASSUMED time a training attempt spends before its first step: Python and Snakemake start-up,
# reading and tokenizing the texts, loading the model and the resume checkpoint.
STARTUP_MINUTES = 5
TRAINING_MARGIN = SIGNAL_MINUTES + STARTUP_MINUTES
# The limit read with sinfo, kept for the jobs' own Snakemake processes (they inherit the
# environment of the process that submits them), so that sinfo runs once per workflow.
SINFO_ENV = "MIXCE_SINFO_MAX_RUNTIME"
SINFO_PREFIX = "sinfo:"


class ClusterLimitError(ValueError):
    """A cluster limit that cannot be used: the message names the config key."""


def parse_slurm_minutes(text: str) -> int | None:
    """Minutes (rounded down) of a Slurm time limit as sinfo prints it (M, M:S, H:M:S, D-H,
    D-H:M, D-H:M:S); None for ``infinite`` / ``UNLIMITED``; else a ValueError naming it."""
    value = text.strip()
    if value.lower() in ("infinite", "unlimited"):
        return None
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", value)
    if not match:
        raise ValueError(f"{text!r} is not a Slurm time limit ([D-]H:M:S, M, M:S, infinite)")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    if match[1] is None and match[4] is None:  # M[:S], else [D-]H[:M[:S]]
        hours, minutes, seconds = 0, hours, minutes
    return (days * 24 + hours) * 60 + minutes + seconds // 60


Runner = Callable[..., subprocess.CompletedProcess]


def sinfo_limit(partitions: Sequence[str], run: Runner = subprocess.run) -> int | None:
    """The smallest time limit in minutes of ``partitions`` (``sinfo -h -o %l -p P``), None
    when none has one; :class:`ClusterLimitError` when sinfo is missing, fails or lacks one."""
    where = f"cluster.max_runtime = '{SINFO_PREFIX}{','.join(partitions)}'"
    limits = []
    for partition in partitions:
        cmd = ["sinfo", "-h", "-o", "%l", "-p", partition]
        try:
            proc = run(cmd, capture_output=True, text=True, timeout=60)
        except FileNotFoundError:
            raise ClusterLimitError(
                f"{where}: no `sinfo` command here; run Snakemake on a Slurm login node or "
                "give the limit in minutes"
            ) from None
        except subprocess.TimeoutExpired:
            raise ClusterLimitError(f"{where}: `{' '.join(cmd)}` did not answer in 60 s") from None
        if proc.returncode != 0:
            raise ClusterLimitError(
                f"{where}: `{' '.join(cmd)}` failed ({proc.returncode}): {proc.stderr.strip()}"
            )
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        if not lines:
            raise ClusterLimitError(f"{where}: sinfo lists no partition {partition!r}")
        try:
            values = [parse_slurm_minutes(line) for line in lines]
        except ValueError as error:
            raise ClusterLimitError(f"{where}: sinfo -p {partition}: {error}") from None
        limits += [v for v in values if v is not None]
    return min(limits) if limits else None


def resolve_max_runtime(
    value: int | str | None,
    environ: MutableMapping[str, str] = os.environ,
    run: Runner = subprocess.run,
) -> int | None:
    """``cluster.max_runtime`` in minutes: a number or None as given; ``sinfo:P[,P...]`` read
    with :func:`sinfo_limit` once (kept in ``environ[SINFO_ENV]`` for processes it starts)."""
    if value is None or isinstance(value, int):
        return value
    partitions = value.removeprefix(SINFO_PREFIX)
    if partitions == value or not partitions:
        raise ClusterLimitError(
            f"cluster.max_runtime = {value!r}: minutes, null, or 'sinfo:<partition>' (e.g. "
            "'sinfo:gpu', 'sinfo:gpu,cpu')"
        )
    key, _, minutes = environ.get(SINFO_ENV, "").rpartition("=")
    if key == value:
        return None if minutes == "none" else int(minutes)
    limit = sinfo_limit(partitions.split(","), run)
    environ[SINFO_ENV] = f"{value}={'none' if limit is None else limit}"
    return limit


# --------------------------------------------------------------------------- training chains


def training_attempts(estimate: float, cap: int | None) -> int:
    """Attempts of at most ``cap`` minutes a training job of ``estimate`` minutes needs: 1 when
    it fits, else each trains ``cap -`` :data:`TRAINING_MARGIN` minutes."""
    if cap is None or estimate <= cap:
        return 1
    usable = cap - TRAINING_MARGIN
    if usable <= 0:
        raise ClusterLimitError(
            f"cluster.max_runtime = {cap} min leaves no time to train: an attempt spends "
            f"about {STARTUP_MINUTES} min starting and gets SIGTERM {SIGNAL_MINUTES} min "
            "before the limit; give the partition's real limit"
        )
    return math.ceil(estimate / usable)


def chain_retries(estimates: Iterable[float], cap: int | None, spare: int) -> int | None:
    """The ``retries`` of a training rule: its longest job's attempts beyond the first plus
    ``spare`` (the run's retries, for other failures). None (the run's retries apply) when
    every job fits one attempt or ``spare`` is 0 (``--retries 0``: a chain stops after one)."""
    attempts = max((training_attempts(e, cap) for e in estimates), default=1)
    if attempts == 1 or spare == 0:
        return None
    return attempts - 1 + spare


# --------------------------------------------------------------------------- group jobs


def group_factor(component_minutes: float, components: int, cap: int | None) -> float | None:
    """How far each job of a group of ``components`` components of at most
    ``component_minutes`` may stretch its runtime on retries and stay within ``cap``:
    ``cap / (components x component_minutes)``, inf without a cap, None when it cannot fit."""
    if cap is None:
        return math.inf
    need = components * component_minutes
    return cap / need if need <= cap else None


def job_runtime(
    estimate: float,
    attempt: int,
    cap: int | None,
    *,
    training: bool = False,
    group: float | None = None,
) -> int:
    """Minutes one attempt of a job asks for, never above ``cap``: attempt x estimate; for
    ``training`` the estimate on every attempt (each resumes from the last one's checkpoint);
    in a group (its :func:`group_factor`) at most factor x estimate, so the group fits."""
    if training:
        minutes = math.ceil(estimate)
    else:
        minutes = math.ceil(estimate * attempt)
        if group is not None and math.isfinite(group):
            minutes = min(minutes, max(math.ceil(estimate), math.floor(estimate * group)))
    return minutes if cap is None else min(minutes, cap)


# --------------------------------------------------------------------------- disk

# Bytes per parameter on disk: a resume checkpoint holds the fp32 weights and AdamW's two fp32
# moments (tests/test_train.py measures a real one); a saved model is fp32 safetensors.
RESUME_BYTES_PER_PARAM = 12
MODEL_BYTES_PER_PARAM = 4


def training_work_bytes(parameters: float) -> float:
    """Peak disk of a running training job's work directory: the resume checkpoint, its
    replacement written beside it (atomic rename), and the best model so far (replaced the
    same way, but not while a checkpoint is written)."""
    return parameters * (2 * RESUME_BYTES_PER_PARAM + MODEL_BYTES_PER_PARAM)
