"""The workflow on a real Slurm cluster, through the profile slurm/ (snakemake --profile slurm).

A single-node cluster (munge, MariaDB + slurmdbd, slurmctld, slurmd; partitions cpu and gpu,
one fake GPU) is started by ci/slurm_up.sh for the session and stopped by ci/slurm_down.sh
afterwards. It needs root (or password-less sudo) and, the first time, the Debian packages
slurm-wlm, slurmdbd, munge and mariadb-server (slurm_up.sh installs them with apt-get), so the
tests run only when MIXCE_SLURM=1 is set:

    MIXCE_SLURM=1 .venv/bin/python -m pytest tests/test_slurm.py -q -x -s

MIXCE_SLURM_STATE names the cluster's state directory (default /tmp/mixce-slurm-test). A
cluster already running there is used and left running.

Each test runs Snakemake in its own copy of the workflow (as tests/test_workflow.py does) with
the site settings of the test cluster in slurm/site.yaml, the place the profile documents.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from mixce.config import load_config
from mixce.synthetic.pipeline import objective_etas

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
WORKFLOW_FILES = [
    "Snakefile",
    "rules",
    "scripts",
    "schemas",
    "envs",
    "config.yaml",
    "config",
    "src",
    "report",
    "slurm",
]
ACCOUNT = "mixce"
LOCAL_RULES = {"download_dataset", "tokenizer", "fetch_model", "fetch_featurizer"}
GPU_RULES = {
    "finetune",
    "pretrain",
    "sample",
    "score_samples",
    "score_human",
    "controlled",
    "controlled_human",
    "perplexity",
    "nll_figure2",
}
RUN_TIMEOUT_S = 1500

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(
        os.environ.get("MIXCE_SLURM") != "1",
        reason="needs a Slurm cluster started by ci/slurm_up.sh (root or sudo, apt packages); "
        "set MIXCE_SLURM=1 to run",
    ),
]


# --------------------------------------------------------------------------- the cluster


@pytest.fixture(scope="session")
def slurm_env() -> dict[str, str]:
    """Environment of a process that talks to the test cluster (started for the session)."""
    state = Path(os.environ.get("MIXCE_SLURM_STATE", "/tmp/mixce-slurm-test"))
    already_up = (state / "run" / "up").exists()
    # Two fake GPUs on the 2-CPU node, so that two GPU jobs run at once (each asks for one).
    env = dict(os.environ, MIXCE_SLURM_ACCOUNT=ACCOUNT)
    env.setdefault("MIXCE_SLURM_GPUS", "2")
    up = subprocess.run(
        ["bash", str(REPO / "ci" / "slurm_up.sh"), str(state)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    print(up.stdout, end="")
    if up.returncode != 0:
        down(state, env)
        pytest.fail(f"ci/slurm_up.sh failed ({up.returncode}):\n{up.stdout}\n{up.stderr}")
    env = dict(env, SLURM_CONF=str(state / "etc" / "slurm.conf"))
    env.pop("MIXCE_SLURM_SITE", None)  # the tests use slurm/site.yaml of their copy
    env.pop("SNAKEMAKE_PROFILE", None)
    # A SIGTERM (CI cancelling the job) still stops the cluster: it becomes a
    # KeyboardInterrupt, which pytest answers with the fixtures' teardown.
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield env
    finally:
        signal.signal(signal.SIGTERM, previous)
        if already_up:
            print(f"\nleaving the cluster under {state} running (it was up before the tests)")
        else:
            down(state, env)


def interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def down(state: Path, env: dict[str, str]) -> None:
    proc = subprocess.run(
        ["bash", str(REPO / "ci" / "slurm_down.sh"), str(state)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    print(proc.stdout, end="")
    assert proc.returncode == 0, f"ci/slurm_down.sh failed:\n{proc.stdout}\n{proc.stderr}"


# --------------------------------------------------------------------------- helpers


def copy_workflow(root: Path) -> Path:
    """A private copy of the workflow, with the test cluster's site settings."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc", "site.yaml")
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=ignore)
        else:
            shutil.copy2(src, root / name)
    # The test cluster: account and partitions as ci/slurm_up.sh makes them; small requests
    # so that the jobs fit its one node; no job needs more than a few minutes.
    (root / "slurm" / "site.yaml").write_text(
        f"account: {ACCOUNT}\n"
        "partitions: {cpu: cpu, gpu: gpu}\n"
        "max_mem_mb: 1500\n"
        "max_runtime: 20\n"
    )
    return root


def snakemake_slurm(
    workdir: Path, env: dict[str, str], *args: str
) -> tuple[subprocess.CompletedProcess, float]:
    """`snakemake --profile slurm all ARGS` in workdir; the process and its wall time."""
    cmd = [
        str(SNAKEMAKE),
        "--profile",
        "slurm",
        "all",
        "--jobs",
        "6",
        # The test cluster answers at once: check job states soon after submission.
        "--slurm-init-seconds-before-status-checks",
        "2",
        *args,
    ]
    start = time.perf_counter()
    with subprocess.Popen(
        cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as child:
        try:
            stdout, stderr = child.communicate(timeout=RUN_TIMEOUT_S)
        except BaseException:  # timeout or interrupt: let Snakemake cancel its Slurm jobs
            child.terminate()
            stdout, stderr = child.communicate(timeout=120)
            (workdir / "snakemake-interrupted.log").write_text(stdout + stderr)
            raise
    seconds = time.perf_counter() - start
    proc = subprocess.CompletedProcess(cmd, child.returncode, stdout, stderr)
    (workdir / f"snakemake-{int(time.time())}.log").write_text(stdout + stderr)
    return proc, seconds


def output(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout + "\n" + proc.stderr


def tail(proc: subprocess.CompletedProcess, n: int = 6000) -> str:
    return output(proc)[-n:]


def run_id(proc: subprocess.CompletedProcess) -> str:
    match = re.search(r"SLURM run ID: (\S+)", output(proc))
    assert match, f"no 'SLURM run ID' in the output:\n{tail(proc)}"
    return match.group(1)


def finished_jobs(proc: subprocess.CompletedProcess) -> Counter:
    """Rule -> number of jobs Snakemake reported finished."""
    return Counter(re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", output(proc)))


def sacct_jobs(env: dict[str, str], run: str, since: str) -> list[dict[str, str]]:
    """The Slurm jobs of one Snakemake run (job name = the plugin's run id)."""
    fields = ["JobIDRaw", "JobName", "Comment", "Partition", "Account", "AllocTRES", "State"]
    proc = subprocess.run(
        ["sacct", "-X", "-P", "-n", "-S", since, "--name", run, "-o", ",".join(fields)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    jobs = []
    for line in proc.stdout.splitlines():
        row = dict(zip(fields, line.split("|"), strict=True))
        # comment: rule_<rule> or rule_<rule>_wildcards_<wildcards joined by _>
        row["Rule"] = re.sub(r"^rule_", "", row["Comment"].split("_wildcards_")[0])
        row["Wildcards"] = row["Comment"].partition("_wildcards_")[2]
        jobs.append(row)
    return jobs


def wait_for_accounting(env, run, since, expected: int) -> list[dict[str, str]]:
    """sacct rows of a run once slurmdbd holds all `expected` finished jobs (it lags a bit)."""
    for _ in range(30):
        jobs = sacct_jobs(env, run, since)
        if len(jobs) >= expected and all(j["State"] not in ("PENDING", "RUNNING") for j in jobs):
            return jobs
        time.sleep(1)
    return jobs


def now() -> str:
    return datetime.now().strftime("%Y-%m-%dT%H:%M:%S")


# --------------------------------------------------------------------------- tests


def test_all_through_slurm(slurm_env: dict[str, str], tmp_path_factory) -> None:
    """config/test.yaml end to end: every non-local job via sbatch, GPU jobs with a GPU."""
    workdir = copy_workflow(tmp_path_factory.mktemp("slurm-all"))
    since = now()
    proc, seconds = snakemake_slurm(workdir, slurm_env, "--configfile", "config/test.yaml")
    print(f"\nsnakemake --profile slurm all (config/test.yaml) through Slurm: {seconds:.1f} s")
    assert proc.returncode == 0, f"the run failed:\n{tail(proc)}"

    for table in ("table1", "table2"):
        assert (workdir / "results" / "test" / "tables" / f"{table}.csv").is_file()

    finished = finished_jobs(proc)
    remote = {rule: n for rule, n in finished.items() if rule not in LOCAL_RULES | {"all"}}
    assert remote, f"no finished jobs found in the output:\n{tail(proc)}"
    assert GPU_RULES <= set(remote), f"GPU rules that did not run: {GPU_RULES - set(remote)}"

    jobs = wait_for_accounting(slurm_env, run_id(proc), since, sum(remote.values()))
    completed = Counter(j["Rule"] for j in jobs if j["State"] == "COMPLETED")
    # Every non-local job went through sbatch, once; no local rule did.
    assert completed == Counter(remote), (
        f"Slurm jobs per rule {dict(completed)} != finished jobs per rule {remote}"
    )
    assert not LOCAL_RULES & {j["Rule"] for j in jobs}
    for job in jobs:
        assert job["Account"] == ACCOUNT, job
        if job["Rule"] in GPU_RULES:
            assert job["Partition"] == "gpu", job
            assert "gres/gpu=1" in job["AllocTRES"], job
        else:
            assert job["Partition"] == "cpu", job
            assert "gres/gpu" not in job["AllocTRES"], job
    # Successful jobs leave no Slurm log behind (the plugin deletes them).
    logs = workdir / ".snakemake" / "slurm_logs"
    assert not [p for p in logs.rglob("*.log")], "Slurm logs of successful jobs were kept"
    print(f"{len(jobs)} Slurm jobs: {dict(sorted(completed.items()))}")


FAIL_CONFIG = """\
# A small synthetic-only run whose real-text init reads texts.jsonl: with a broken line there,
# exactly one job (synthetic_target realtext V20 seed7) fails at run time.
run: slurmfail
gpt2: {enabled: false}
synthetic:
  real_text: {source: texts.jsonl, n_texts: 300}
  seeds: [7]
  objectives: [forward_kl, reverse_kl, mixce]
  etas: [0.5]
  tables:
    table7: {init: realtext, vocab_size: 20, objectives: [forward_kl, mixce]}
"""


def write_texts(path: Path, broken_line: int | None) -> None:
    """300 texts over a 60-word vocabulary; line `broken_line` is not JSON."""
    words = ["w" + chr(97 + i // 26) + chr(97 + i % 26) for i in range(60)]
    lines = []
    for i in range(300):
        text = " ".join(words[(i * 7 + j * j) % 60] for j in range(30))
        lines.append(json.dumps({"text": text}))
    if broken_line is not None:
        lines[broken_line - 1] = '{"text": "cut off'
    path.write_text("\n".join(lines) + "\n")


def test_failure_is_reported_and_rerun_sends_only_what_failed(
    slurm_env: dict[str, str], tmp_path_factory
) -> None:
    """A job that fails at run time is reported with its logs; after the fix, the rerun sends
    only the failed jobs and what depends on them."""
    workdir = copy_workflow(tmp_path_factory.mktemp("slurm-fail"))
    (workdir / "fail.yaml").write_text(FAIL_CONFIG)
    write_texts(workdir / "texts.jsonl", broken_line=123)
    args = ("--configfile", "config/test.yaml", "fail.yaml")
    files = ("config.yaml", "config/test.yaml", "fail.yaml")
    config = load_config([workdir / name for name in files])
    syn = config["synthetic"]
    seeds, vocab = syn["seeds"], syn["vocab_sizes"][0]
    n_train = sum(len(objective_etas(o, syn["etas"])) for o in syn["objectives"])

    # 1. The realtext target fails (bad line 123); keep-going finishes the random50 branch.
    proc, seconds = snakemake_slurm(workdir, slurm_env, *args)
    print(f"\nfailing run: {seconds:.1f} s")
    assert proc.returncode != 0, f"the run should have failed:\n{tail(proc)}"
    text = output(proc)
    assert "Error in rule synthetic_target" in text, tail(proc)
    for seed in seeds:
        rule_log = f"results/slurmfail/logs/synthetic_target/realtext/V{vocab}/seed{seed}.log"
        assert rule_log in text, f"{rule_log} not reported:\n{tail(proc)}"
        assert "texts.jsonl:123: not a JSON object" in (workdir / rule_log).read_text()
    # The error names the Slurm job and its Slurm log (kept, as the job failed), beside the
    # rule's log: "log: <rule log>, <.snakemake/slurm_logs/...> (check log file(s) ...)".
    assert re.search(r"SLURM-job '\d+' failed, SLURM status is: 'FAILED'", text), tail(proc)
    reported = [
        path
        for paths in re.findall(r"^\s+log: (.*) \(check log file", text, flags=re.M)
        for path in paths.split(", ")
        if "/.snakemake/slurm_logs/" in path
    ]
    assert reported, f"no Slurm log of the failed job reported:\n{tail(proc)}"
    for log in reported:
        assert "/rule_synthetic_target/realtext_" in log, log
        assert "Error in rule synthetic_target" in Path(log).read_text(), log
    random50 = sorted((workdir / "results/slurmfail/synthetic/train/random50").rglob("eta*.json"))
    assert len(random50) == n_train, "keep-going did not finish the random50 branch"
    before = {p: p.stat().st_mtime_ns for p in random50}

    # 2. Fixed input: only the failed jobs and what depends on them run again.
    write_texts(workdir / "texts.jsonl", broken_line=None)
    since = now()
    proc, seconds = snakemake_slurm(workdir, slurm_env, *args)
    print(f"rerun after the fix: {seconds:.1f} s")
    assert proc.returncode == 0, f"the rerun failed:\n{tail(proc)}"
    expected = Counter(
        synthetic_target=len(seeds),
        synthetic_data=len(seeds),
        synthetic_train=n_train,
        synthetic_summary=1,
        synthetic_tables=1,
        synthetic_figure=1,
    )
    finished = finished_jobs(proc)
    del finished["all"]
    assert finished == expected, f"rerun ran {dict(finished)}, expected {dict(expected)}"
    jobs = wait_for_accounting(slurm_env, run_id(proc), since, sum(expected.values()))
    assert Counter(j["Rule"] for j in jobs if j["State"] == "COMPLETED") == expected
    for job in jobs:
        if job["Wildcards"]:
            assert job["Wildcards"].startswith("realtext_"), f"unexpected rerun: {job}"
    assert {p: p.stat().st_mtime_ns for p in random50} == before, "random50 runs were redone"
