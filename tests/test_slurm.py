"""The workflow on a real Slurm cluster, through the profile slurm/ (snakemake --profile slurm).

A single-node cluster (munge, MariaDB + slurmdbd, slurmctld, slurmd; partitions cpu and gpu,
two fake GPUs) is started by .ci/slurm_up.sh for the session and stopped by .ci/slurm_down.sh
afterwards, which must leave no daemon behind. It needs root (or password-less sudo) and,
the first time, the Debian packages slurm-wlm, slurmdbd, munge and mariadb-server
(slurm_up.sh installs them with apt-get), so the tests run only when MIXCE_SLURM=1 is set:

    MIXCE_SLURM=1 .venv/bin/python -m pytest tests/test_slurm.py -q -x -s

MIXCE_SLURM_STATE names the cluster's state directory (default /tmp/mixce-slurm-test). A
cluster already running there is used and left running.

Each test runs Snakemake in its own copy of the workflow (as tests/test_workflow.py does) with
the site settings of the test cluster in slurm/site.yaml, the place the profile documents, and
the cluster's limits as a config override (cluster-test.yaml: cluster.max_mem_mb, max_runtime):
- test_all_through_slurm: config/test.yaml end to end, every non-local job through sbatch;
- test_failure_is_reported_and_rerun_sends_only_what_failed: a failing job, its logs, the
  rerun's sbatch submissions, and the --resources gpu=N cap;
- test_killed_finetune_resumes_from_its_checkpoint: SIGTERM to a finetuning job, the rerun
  resumes from its checkpoint and ends with an uninterrupted run's weights.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import layout
import numpy as np
import pandas as pd
import pytest

from mixce.config import load_config
from mixce.gpt2.plan import finetune_jobs
from mixce.synthetic.pipeline import objective_etas

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
ACCOUNT = "mixce"
LOCAL_RULES = {"download_dataset", "tokenizer", "fetch_model", "fetch_featurizer"}
GPU_RULES = {
    "finetune",
    "pretrain",
    "sample",
    "sample_greedy",
    "score_samples",
    "score_human",
    "controlled",
    "controlled_human",
    "perplexity",
    "nll_figure2",
}
RUN_TIMEOUT_S = 2700

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(
        os.environ.get("MIXCE_SLURM") != "1",
        reason="needs a Slurm cluster started by .ci/slurm_up.sh (root or sudo, apt packages); "
        "set MIXCE_SLURM=1 to run",
    ),
]


# --------------------------------------------------------------------------- the cluster


@pytest.fixture(scope="session")
def slurm_env() -> dict[str, str]:
    """Environment of a process that talks to the test cluster.

    The cluster is shared: pytest sessions that run at the same time (there can be only one
    cluster per machine: Slurm's ports are fixed) register under STATE.users/, and the last
    one to finish stops the cluster, if a test session started it. A cluster started by hand
    (.ci/slurm_up.sh) is used and left running.
    """
    state = Path(os.environ.get("MIXCE_SLURM_STATE", "/tmp/mixce-slurm-test"))
    users = Path(f"{state}.users")
    users.mkdir(exist_ok=True)
    me = users / str(os.getpid())
    # Two fake GPUs on the 2-CPU node, so that two GPU jobs run at once (each asks for one).
    env = dict(os.environ, MIXCE_SLURM_ACCOUNT=ACCOUNT)
    env.setdefault("MIXCE_SLURM_GPUS", "2")
    with locked(users / ".lock"):
        others = live_users(users)
        up = subprocess.run(
            ["bash", str(REPO / ".ci" / "slurm_up.sh"), str(state)],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        print(up.stdout, end="")
        if up.returncode != 0:
            if not others:
                down(state, env)
            pytest.fail(f".ci/slurm_up.sh failed ({up.returncode}):\n{up.stdout}\n{up.stderr}")
        if "already running" not in up.stdout:  # started here: a test session stops it
            (users / ".started").write_text(controller_pid(state))
        me.touch()
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
        with locked(users / ".lock"):
            me.unlink(missing_ok=True)
            others = live_users(users)
            started = users / ".started"
            if others:
                print(f"\nleaving the cluster running: also used by pids {others}")
            elif started.exists() and started.read_text() == controller_pid(state):
                down(state, env)
                started.unlink()
            else:
                print(f"\nleaving the cluster under {state} running (not started by the tests)")


@contextlib.contextmanager
def locked(path: Path):
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def live_users(users: Path) -> list[int]:
    """PIDs of the pytest sessions registered under users/ that still run (stale ones removed)."""
    live = []
    for entry in users.glob("[0-9]*"):
        try:
            os.kill(int(entry.name), 0)
            live.append(int(entry.name))
        except ProcessLookupError:
            entry.unlink(missing_ok=True)
        except PermissionError:  # alive, another user's
            live.append(int(entry.name))
    return sorted(live)


def controller_pid(state: Path) -> str:
    """The PID slurm_up.sh recorded for slurmctld: names one start of the cluster."""
    path = state / "run" / "slurmctld.pid"
    return path.read_text().strip() if path.exists() else ""


def interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def down(state: Path, env: dict[str, str]) -> None:
    proc = subprocess.run(
        ["bash", str(REPO / ".ci" / "slurm_down.sh"), str(state)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    print(proc.stdout, end="")
    assert proc.returncode == 0, f".ci/slurm_down.sh failed:\n{proc.stdout}\n{proc.stderr}"
    # Every daemon the cluster started is gone (slurm_down.sh forgets a PID once it exited).
    left = {p.stem: p.read_text().strip() for p in (state / "run").glob("*.pid")}
    assert not left, f"daemons still recorded as running: {left}"
    for comm in ("slurmctld", "slurmd", "slurmdbd", "slurmstepd"):
        pids = subprocess.run(["pgrep", "-x", comm], capture_output=True, text=True).stdout
        for pid in pids.split():
            environ = Path(f"/proc/{pid}/environ")
            with contextlib.suppress(OSError):
                assert f"SLURM_CONF={state}/etc/slurm.conf".encode() not in environ.read_bytes()


# --------------------------------------------------------------------------- helpers


# The test cluster's limits, as a config override (config.yaml's cluster section): small
# requests so that the jobs fit its one node; no job needs more than a few minutes.
CLUSTER_TEST = "cluster: {max_mem_mb: 1500, max_runtime: 20}\n"


def copy_workflow(root: Path) -> Path:
    """A private copy of the workflow, with the test cluster's site settings."""
    layout.copy_workflow(root, ignore=("site.yaml",))
    # The test cluster: account and partitions as .ci/slurm_up.sh makes them.
    (root / "slurm" / "site.yaml").write_text(
        f"account: {ACCOUNT}\npartitions: {{cpu: cpu, gpu: gpu}}\n"
    )
    (root / "cluster-test.yaml").write_text(CLUSTER_TEST)
    return root


def slurm_command(configfiles: list[str], *args: str, targets=("all",)) -> list[str]:
    """`snakemake --profile slurm TARGETS --configfile ... cluster-test.yaml ARGS`."""
    return [
        str(SNAKEMAKE),
        "--profile",
        "slurm",
        *targets,
        "--jobs",
        "6",
        # The test cluster answers at once: check job states soon after submission.
        "--slurm-init-seconds-before-status-checks",
        "2",
        *args,
        "--configfile",
        *configfiles,
        "cluster-test.yaml",
    ]


def snakemake_slurm(
    workdir: Path, env: dict[str, str], configfiles: list[str], *args: str, targets=("all",)
) -> tuple[subprocess.CompletedProcess, float]:
    """`snakemake --profile slurm TARGETS ...` in workdir; the process and its wall time."""
    cmd = slurm_command(configfiles, *args, targets=targets)
    start = time.perf_counter()
    with subprocess.Popen(
        cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as child:
        stdout = communicate(child, workdir)
    seconds = time.perf_counter() - start
    proc = subprocess.CompletedProcess(cmd, child.returncode, stdout, "")
    (workdir / f"snakemake-{time.time_ns()}.log").write_text(stdout)
    return proc, seconds


def communicate(child: subprocess.Popen, workdir: Path, timeout: float = RUN_TIMEOUT_S) -> str:
    """The child's output once it exits; on a timeout or an interrupt, Snakemake is stopped
    (SIGTERM: it cancels its Slurm jobs) and the error raised again."""
    try:
        stdout, _ = child.communicate(timeout=timeout)
    except BaseException:
        child.terminate()
        try:
            stdout, _ = child.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
            stdout, _ = child.communicate()
        (workdir / "snakemake-interrupted.log").write_text(stdout or "")
        raise
    return stdout


def output(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout + "\n" + (proc.stderr or "")


def tail(proc: subprocess.CompletedProcess, n: int = 6000) -> str:
    return output(proc)[-n:]


def run_id(proc: subprocess.CompletedProcess) -> str:
    match = re.search(r"SLURM run ID: (\S+)", output(proc))
    assert match, f"no 'SLURM run ID' in the output:\n{tail(proc)}"
    return match.group(1)


def finished_jobs(proc: subprocess.CompletedProcess) -> Counter:
    """Rule -> number of jobs Snakemake reported finished."""
    return Counter(re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", output(proc)))


SACCT_FIELDS = [
    "JobIDRaw",
    "JobName",
    "Comment",
    "Partition",
    "Account",
    "ReqTRES",
    "AllocTRES",
    "State",
    "Start",
    "End",
]


def sacct_jobs(env: dict[str, str], run: str, since: str) -> list[dict[str, str]]:
    """The Slurm jobs of one Snakemake run (job name = the plugin's run id)."""
    proc = subprocess.run(
        ["sacct", "-X", "-P", "-n", "-S", since, "--name", run, "-o", ",".join(SACCT_FIELDS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    jobs = []
    for line in proc.stdout.splitlines():
        row = dict(zip(SACCT_FIELDS, line.split("|"), strict=True))
        # comment: rule_<rule> or rule_<rule>_wildcards_<wildcards joined by _>
        row["Rule"] = re.sub(r"^rule_", "", row["Comment"].split("_wildcards_")[0])
        row["Wildcards"] = row["Comment"].partition("_wildcards_")[2]
        jobs.append(row)
    return jobs


def wait_for_accounting(env, run, since, expected: int) -> list[dict[str, str]]:
    """sacct rows of a run once slurmdbd holds all `expected` finished jobs (it lags a bit)."""
    for _ in range(60):
        jobs = sacct_jobs(env, run, since)
        if len(jobs) >= expected and all(j["State"] not in ("PENDING", "RUNNING") for j in jobs):
            return jobs
        time.sleep(1)
    return jobs


def now() -> str:
    return datetime.now().strftime("%Y-%m-%dT%H:%M:%S")


def overlaps(jobs: list[dict[str, str]]) -> list[tuple[str, str]]:
    """Pairs of jobs whose run times overlap (sacct Start / End, to the second)."""
    spans = sorted((j["Start"], j["End"], j["Comment"]) for j in jobs)
    return [(a[2], b[2]) for a, b in zip(spans, spans[1:], strict=False) if b[0] < a[1]]


# --------------------------------------------------------------------------- tests


def test_all_through_slurm(slurm_env: dict[str, str], tmp_path_factory) -> None:
    """config/test.yaml end to end: every non-local job via sbatch, GPU jobs with a GPU."""
    workdir = copy_workflow(tmp_path_factory.mktemp("slurm-all"))
    since = now()
    proc, seconds = snakemake_slurm(workdir, slurm_env, ["config/test.yaml"])
    print(f"\nsnakemake --profile slurm all (config/test.yaml) through Slurm: {seconds:.1f} s")
    assert proc.returncode == 0, f"the run failed:\n{tail(proc)}"

    for table in ("table1", "table2"):
        assert (workdir / "results" / "test" / "tables" / f"{table}.csv").is_file()

    finished = finished_jobs(proc)
    local = {rule: n for rule, n in finished.items() if rule in LOCAL_RULES}
    remote = {rule: n for rule, n in finished.items() if rule not in LOCAL_RULES | {"all"}}
    assert remote, f"no finished jobs found in the output:\n{tail(proc)}"
    assert local, "no local rule ran (tokenizer at least should have)"
    assert GPU_RULES <= set(remote), f"GPU rules that did not run: {GPU_RULES - set(remote)}"
    for rule in local:  # local rules run in the Snakemake process, not through sbatch
        assert re.search(rf"^localrule {rule}:", output(proc), flags=re.M), rule

    jobs = wait_for_accounting(slurm_env, run_id(proc), since, sum(remote.values()))
    completed = Counter(j["Rule"] for j in jobs if j["State"] == "COMPLETED")
    # Every non-local job went through sbatch, once; no local rule did.
    assert completed == Counter(remote), (
        f"Slurm jobs per rule {dict(completed)} != finished jobs per rule {remote}"
    )
    assert len(jobs) == sum(remote.values()), "failed or repeated Slurm jobs"
    assert not LOCAL_RULES & {j["Rule"] for j in jobs}
    for job in jobs:
        assert job["Account"] == ACCOUNT, job
        if job["Rule"] in GPU_RULES:
            assert job["Partition"] == "gpu", job
            assert "gres/gpu=1" in job["ReqTRES"], job  # asked for one GPU
            assert "gres/gpu=1" in job["AllocTRES"], job  # and got it
        else:
            assert job["Partition"] == "cpu", job
            assert "gres/gpu" not in job["AllocTRES"], job
    # Successful jobs leave no Slurm log behind (the plugin deletes them).
    logs = workdir / ".snakemake" / "slurm_logs"
    assert not [p for p in logs.rglob("*.log")], "Slurm logs of successful jobs were kept"
    print(f"{len(jobs)} Slurm jobs: {dict(sorted(completed.items()))}; local: {local}")


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
    """A job that fails at run time (a bad input file of one wildcard) is reported with its
    logs; after the fix, the rerun sends only the failed job and what depends on it.

    The first run also checks the cap on concurrent GPU jobs: its synthetic_train jobs are
    made to ask for a GPU (--set-resources), the node has two, and --resources gpu=1 must
    keep them from running at the same time."""
    workdir = copy_workflow(tmp_path_factory.mktemp("slurm-fail"))
    (workdir / "fail.yaml").write_text(FAIL_CONFIG)
    write_texts(workdir / "texts.jsonl", broken_line=123)
    configfiles = ["config/test.yaml", "fail.yaml"]
    files = ("config.yaml", *configfiles, "cluster-test.yaml")
    config = load_config([workdir / name for name in files])
    syn = config["synthetic"]
    seeds, vocab = syn["seeds"], syn["vocab_sizes"][0]
    n_train = sum(len(objective_etas(o, syn["etas"])) for o in syn["objectives"])

    # 1. The realtext target fails (bad line 123), on its retry too (retries: 1);
    #    keep-going finishes the random50 branch, one "GPU" job at a time.
    since = now()
    cap = ("--set-resources", "synthetic_train:gpu=1", "--resources", "gpu=1")
    proc, seconds = snakemake_slurm(workdir, slurm_env, configfiles, *cap)
    print(f"\nfailing run: {seconds:.1f} s")
    assert proc.returncode != 0, f"the run should have failed:\n{tail(proc)}"
    text = output(proc)
    assert "Error in rule synthetic_target" in text, tail(proc)
    for seed in seeds:
        rule_log = f"results/slurmfail/logs/synthetic_target/realtext/V{vocab}/seed{seed}.log"
        assert rule_log in text, f"{rule_log} not reported:\n{tail(proc)}"
        assert "texts.jsonl, line 123: not valid JSON" in (workdir / rule_log).read_text()
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
    n_done = sum(n for rule, n in finished_jobs(proc).items() if rule != "all")
    jobs = wait_for_accounting(slurm_env, run_id(proc), since, n_done + 2 * len(seeds))
    failed = [j for j in jobs if j["State"] != "COMPLETED"]
    capped = [j for j in jobs if j["Rule"] == "synthetic_train"]
    assert len(capped) == n_train and all("gres/gpu=1" in j["AllocTRES"] for j in capped)
    assert not overlaps(capped), f"GPU jobs ran at once despite gpu=1: {overlaps(capped)}"
    assert {j["Rule"] for j in failed} == {"synthetic_target"}, failed
    assert len(failed) == 2 * len(seeds), f"each failing job runs twice (retries: 1): {failed}"
    random50 = sorted((workdir / "results/slurmfail/synthetic/train/random50").rglob("eta*.json"))
    assert len(random50) == n_train, "keep-going did not finish the random50 branch"
    before = {p: p.stat().st_mtime_ns for p in random50}

    # 2. Fixed input: only the failed jobs and what depends on them are submitted again.
    write_texts(workdir / "texts.jsonl", broken_line=None)
    since = now()
    proc, seconds = snakemake_slurm(workdir, slurm_env, configfiles)
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
    submitted = Counter(j["Rule"] for j in jobs)
    assert submitted == expected, f"sbatch submissions {dict(submitted)} != {dict(expected)}"
    assert all(j["State"] == "COMPLETED" for j in jobs), jobs
    for job in jobs:
        if job["Wildcards"]:
            assert job["Wildcards"].startswith("realtext_"), f"unexpected rerun: {job}"
    assert {p: p.stat().st_mtime_ns for p in random50} == before, "random50 runs were redone"
    print(f"rerun submitted {sum(submitted.values())} jobs: {dict(submitted)}")


RESUME_CONFIG = """\
# GPT-2 only: the test run's tiny model, finetuned long enough (20 epochs of 4 steps) to be
# stopped in the middle; a resume checkpoint every 5 steps.
run: slurmresume
synthetic: {enabled: false}
gpt2:
  finetune: {epochs: 20, checkpoint_every: 5}
"""


def finetune_target(workdir: Path, configfiles: list[str]) -> tuple[str, Path]:
    """The summary.json of the run's first MLE finetuning job, and its work directory."""
    files = ("config.yaml", *configfiles, "cluster-test.yaml")
    config = load_config([workdir / name for name in files])
    job = next(j for j in finetune_jobs(config["gpt2"]) if j.variant.startswith("mle"))
    parts = (job.dataset, job.model, job.variant)
    run = Path("results", config["run"])
    return str(run.joinpath("finetune", *parts, "summary.json")), run.joinpath(
        "work", "finetune", *parts
    )


def slurm_job_of(env: dict[str, str], workdir: Path, rule: str) -> str | None:
    """Id of the running Slurm job of `rule` submitted from workdir (None if none)."""
    proc = subprocess.run(
        ["squeue", "-h", "-t", "RUNNING", "-o", "%i|%k|%Z"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    for line in proc.stdout.splitlines():
        job, comment, cwd = line.split("|", 2)
        if comment.startswith(f"rule_{rule}_") and Path(cwd) == workdir:
            return job
    return None


def model_tensors(model_dir: Path) -> dict:
    from safetensors.numpy import load_file

    tensors = {}
    for path in sorted(model_dir.glob("*.safetensors")):
        tensors.update(load_file(path))
    assert tensors, f"no safetensors under {model_dir}"
    return tensors


def test_killed_finetune_resumes_from_its_checkpoint(
    slurm_env: dict[str, str], tmp_path_factory
) -> None:
    """A finetuning job sent SIGTERM (what Slurm sends at the time limit) saves its resume
    checkpoint and fails; the rerun submits only that job, which resumes and ends with the
    weights of an uninterrupted run."""
    workdir = copy_workflow(tmp_path_factory.mktemp("slurm-resume"))
    (workdir / "resume.yaml").write_text(RESUME_CONFIG)
    configfiles = ["config/test.yaml", "resume.yaml"]
    target, work = finetune_target(workdir, configfiles)
    resume = workdir / work / "resume.pt"

    # 1. Run up to the finetuning job; SIGTERM it once its first checkpoint is written.
    #    --retries 0: the failure ends the run (with the default retry, the resubmitted job
    #    would resume at once).
    cmd = slurm_command(configfiles, "--retries", "0", targets=(target,))
    start = time.perf_counter()
    signalled = None
    with subprocess.Popen(
        cmd,
        cwd=workdir,
        env=slurm_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as child:
        try:
            while child.poll() is None and time.perf_counter() - start < RUN_TIMEOUT_S:
                if signalled is None and resume.is_file():
                    job = slurm_job_of(slurm_env, workdir, "finetune")
                    if job:
                        subprocess.run(["scancel", "--signal=TERM", job], env=slurm_env, check=True)
                        signalled = job
                time.sleep(0.2)
        finally:
            stdout = communicate(child, workdir, timeout=60)
    (workdir / "snakemake-killed.log").write_text(stdout)
    first = subprocess.CompletedProcess(cmd, child.returncode, stdout, "")
    print(f"\nrun with SIGTERM to finetuning job {signalled}: {time.perf_counter() - start:.1f} s")
    assert signalled, f"the finetuning job ended before its checkpoint was seen:\n{tail(first)}"
    assert first.returncode != 0, f"the signalled run should have failed:\n{tail(first)}"
    assert "Error in rule finetune" in stdout, tail(first)
    log = workdir / "results" / "slurmresume" / "logs" / "finetune"
    log_text = "\n".join(p.read_text() for p in log.rglob("*.log"))
    stopped = re.search(r"stopped at step (\d+) of (\d+)", log_text)
    assert stopped, f"no 'stopped at step' in the finetuning log:\n{log_text[-3000:]}"
    step, total = int(stopped[1]), int(stopped[2])
    assert 0 < step < total
    assert resume.is_file(), "the resume checkpoint is gone"
    assert not (workdir / target).exists()

    # 2. Rerun: only the finetuning job is submitted, and it resumes at that step.
    since = now()
    proc, seconds = snakemake_slurm(workdir, slurm_env, configfiles, targets=(target,))
    print(f"rerun: {seconds:.1f} s")
    assert proc.returncode == 0, f"the rerun failed:\n{tail(proc)}"
    jobs = wait_for_accounting(slurm_env, run_id(proc), since, 1)
    assert [(j["Rule"], j["State"]) for j in jobs] == [("finetune", "COMPLETED")], jobs
    log_text = "\n".join(p.read_text() for p in log.rglob("*.log"))
    assert re.search(rf"resumed from \S*resume\.pt at step {step}\b", log_text), log_text[-3000:]
    summary = json.loads((workdir / target).read_text())
    assert summary["steps"] == total, summary
    resumed = model_tensors(workdir / Path(target).parent / "model")
    resumed_log = pd.read_csv(workdir / Path(target).parent / "log.csv")

    # 3. The same job uninterrupted (forced rerun, one more Slurm job): the same weights and
    #    per-step losses, up to float rounding. Bitwise equality held in 2 of 3 runs on this
    #    project's machine; in one, every tensor differed (by an amount not recorded; most
    #    likely the order of float sums in the CPU kernels). A broken resume (lost optimizer
    #    state, data order or RNG state) moves the weights by far more than MAX_DRIFT.
    proc, seconds = snakemake_slurm(
        workdir, slurm_env, configfiles, "--forcerun", "finetune", targets=(target,)
    )
    print(f"uninterrupted run: {seconds:.1f} s")
    assert proc.returncode == 0, f"the uninterrupted run failed:\n{tail(proc)}"
    assert "resumed from" not in "\n".join(p.read_text() for p in log.rglob("*.log"))
    uninterrupted = model_tensors(workdir / Path(target).parent / "model")
    uninterrupted_log = pd.read_csv(workdir / Path(target).parent / "log.csv")
    assert resumed.keys() == uninterrupted.keys()
    drift = weight_drift(resumed, uninterrupted)
    assert max(drift.values()) <= MAX_DRIFT, (
        f"resumed weights differ from an uninterrupted run (relative L2 difference per "
        f"tensor, largest first): {sorted(drift.items(), key=lambda kv: -kv[1])[:5]}"
    )
    assert list(resumed_log["step"]) == list(uninterrupted_log["step"]) == list(range(1, total + 1))
    np.testing.assert_allclose(resumed_log["loss"], uninterrupted_log["loss"], rtol=1e-4)
    same = all(np.array_equal(resumed[k], uninterrupted[k]) for k in resumed)
    print(
        f"stopped at step {step} of {total}, resumed; weights vs an uninterrupted run: "
        + ("bitwise equal" if same else f"largest relative difference {max(drift.values()):.2e}")
    )


# Largest relative L2 difference per tensor allowed between resumed and uninterrupted weights.
MAX_DRIFT = 1e-3


def weight_drift(a: dict, b: dict) -> dict[str, float]:
    """Per tensor: ||a - b|| / ||b|| (0 where both are 0)."""
    drift = {}
    for name in a:
        x, y = a[name].astype(np.float64), b[name].astype(np.float64)
        norm = np.linalg.norm(y)
        drift[name] = float(np.linalg.norm(x - y) / norm) if norm else float(np.abs(x).max())
    return drift
