"""The Slurm profile (slurm/) on the paper-scale config, by dry run: no cluster needed.

One dry run (`snakemake --profile slurm all -n --forceall`, in a copy of the workflow) with
a site file of made-up names shows every job's resources as the plugin would submit them:
GPU jobs to the site's GPU partition with one GPU of the site's model, every other job to
the CPU partition, runtime and memory by model size from config.yaml's cluster section.
The same run regenerates slurm/README.md's job table (docs/cluster_plan.py), which must be current.
The real-Slurm tests are in tests/test_slurm.py (MIXCE_SLURM=1).
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from layout import copy_workflow

from mixce.cluster import (
    ClusterLimitError,
    chain_retries,
    group_factor,
    job_runtime,
    parse_slurm_minutes,
    resolve_max_runtime,
    training_attempts,
    training_work_bytes,
)
from mixce.config import load_config
from mixce.gpt2.plan import parse_variant

REPO = Path(__file__).resolve().parents[1]
LOCAL_RULES = {"download_dataset", "tokenizer", "fetch_model", "fetch_featurizer"}
SITE = """\
account: acct_x
partitions: {cpu: cpuq, gpu: gpuq}
gpu_model: a100
qos: {gpu: gpu_qos}
"""


def load_cluster_plan():
    spec = importlib.util.spec_from_file_location("cluster_plan", REPO / "docs/cluster_plan.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cluster_plan = load_cluster_plan()


@pytest.fixture(scope="module")
def paper_plan(tmp_path_factory) -> tuple[list[dict], str]:
    site = tmp_path_factory.mktemp("site") / "site.yaml"
    site.write_text(SITE)
    env = dict(os.environ, MIXCE_SLURM_SITE=str(site))
    env.pop("SNAKEMAKE_PROFILE", None)
    return cluster_plan.plan(env)


@pytest.fixture(scope="module")
def cluster_config() -> dict:
    return load_config([REPO / "config.yaml"])["cluster"]


def test_gpu_jobs_ask_for_one_gpu_on_the_gpu_partition(paper_plan, cluster_config) -> None:
    jobs, _ = paper_plan
    gpu_rules = {name for name, spec in cluster_config["rules"].items() if spec.get("gpu")}
    gpu_rules.add("sample_greedy")  # rule sample's greedy variant, with sample's resources
    seen = set()
    for job in jobs:
        if job["local"]:
            continue
        res = job["resources"]
        assert res.get("slurm_account") == "acct_x", job
        if job["rule"] in gpu_rules:
            seen.add(job["rule"])
            assert res.get("gpu") == "1", job
            assert res.get("slurm_partition") == "gpuq", job
            assert res.get("gpu_model") == "a100", job  # the plugin sends --gpus=a100:1
            assert res.get("qos") == "gpu_qos", job
        else:
            assert "gpu" not in res and "gpu_model" not in res, job
            assert res.get("slurm_partition") == "cpuq", job
            assert "qos" not in res, job
        assert "gres" not in res and "--gpus" not in res.get("slurm_extra", ""), job
    assert {"finetune", "sample", "score_samples", "perplexity"} <= seen


def test_runtime_and_memory_scale_with_model_size(paper_plan, cluster_config) -> None:
    jobs, _ = paper_plan
    config = load_config([REPO / "config.yaml"])
    train_size = config["gpt2"]["finetune"]["train_size"]
    spec = cluster_config["rules"]["finetune"]
    finetune = [j for j in jobs if j["rule"] == "finetune"]
    sizes = set()
    for job in finetune:
        wc, res = job["wildcards"], job["resources"]
        n_train = parse_variant(wc["variant"]).n_train
        sizes.add(n_train)
        minutes = spec["runtime"][wc["model"]] * max(0.25, n_train / train_size)
        assert int(res["runtime"]) == math.ceil(minutes), job
        assert int(res["mem_mb"]) == spec["mem_mb"][wc["model"]], job
        assert res["slurm_extra"] == "--signal=TERM@300", job  # checkpoint before the limit
    assert len(sizes) > 1, "no Table 5 train sizes in the paper config"
    by_model = {}
    for job in jobs:
        if job["rule"] == "sample":
            by_model.setdefault(job["wildcards"]["model"], set()).add(job["resources"]["runtime"])
    runtimes = {model: int(values.pop()) for model, values in by_model.items()}
    assert runtimes["small"] < runtimes["medium"] < runtimes["large"], runtimes


def test_downloads_are_local_rules(paper_plan) -> None:
    jobs, _ = paper_plan
    assert cluster_plan.declared_localrules() == LOCAL_RULES
    local = {j["rule"] for j in jobs if j["local"]}
    assert local == LOCAL_RULES
    assert not any("gpu" in j["resources"] for j in jobs if j["local"])


def test_slurm_guide_cluster_plan_is_current(paper_plan) -> None:
    _, block = paper_plan
    guide = cluster_plan.GUIDE.read_text()
    assert cluster_plan.GUIDE == REPO / "slurm" / "README.md"
    assert block in guide, (
        "slurm/README.md's job table is stale (job counts or resources changed): "
        "run `make cluster-plan`"
    )


def test_site_file_with_unknown_key_stops_before_any_job(tmp_path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("account: a\nmax_runtime: 30\n")
    env = dict(os.environ, MIXCE_SLURM_SITE=str(site))
    snakemake = Path(sys.executable).with_name("snakemake")
    proc = subprocess.run(
        [str(snakemake), "--profile", "slurm", "--list-rules"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "unknown key(s) ['max_runtime']" in text, text[-2000:]
    assert "cluster section" in text, text[-2000:]


def test_synthetic_training_on_gpus_through_config_and_site_file(tmp_path) -> None:
    """synthetic.train.device: cuda with one GPU per synthetic_train job in the config, and
    the rule routed to the GPU partition by the site file, as slurm/README.md says."""
    root = copy_workflow(tmp_path / "wf", ignore=("site.yaml",))
    site = tmp_path / "site.yaml"
    site.write_text(SITE + "resources:\n  synthetic_train: {slurm_partition: \"'gpuq'\"}\n")
    override = tmp_path / "cuda.yaml"
    override.write_text(
        "synthetic: {train: {device: cuda}}\ncluster: {rules: {synthetic_train: {gpu: 1}}}\n"
    )
    env = dict(os.environ, MIXCE_SLURM_SITE=str(site))
    env.pop("SNAKEMAKE_PROFILE", None)
    snakemake = Path(sys.executable).with_name("snakemake")
    cmd = [str(snakemake), "--profile", "slurm", "all", "-n", "--forceall", "--nocolor"]
    cmd += ["--configfile", "config/test.yaml", str(override)]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = cluster_plan.parse_jobs(proc.stdout + proc.stderr)
    train = [j for j in jobs if j["rule"] == "synthetic_train"]
    assert train, "no synthetic_train job planned"
    for job in train:
        assert job["resources"]["slurm_partition"] == "gpuq", job
        assert job["resources"]["gpu"] == "1", job
    target = next(j for j in jobs if j["rule"] == "synthetic_target")
    assert target["resources"]["slurm_partition"] == "cpuq", target
    assert "gpu" not in target["resources"], target


# --------------------------------------------------------------------------- cluster limits

spec = importlib.util.spec_from_file_location("cluster_limits", REPO / "docs/cluster_limits.py")
cluster_limits = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cluster_limits)


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("2-00:00:00", 2880),
        ("1-12", 2160),
        ("1-00:30", 1470),
        ("4:00:00", 240),
        ("30:59", 30),
        ("45", 45),
        ("infinite", None),
        ("UNLIMITED\n", None),
    ],
)
def test_slurm_time_limits_parse_to_minutes(text, minutes) -> None:
    assert parse_slurm_minutes(text) == minutes


def test_a_time_limit_that_is_none_is_refused() -> None:
    with pytest.raises(ValueError, match="'n/a' is not a Slurm time limit"):
        parse_slurm_minutes("n/a")


def fake_run(answers: dict[str, tuple[int, str]], calls: list):
    def run(cmd, **_):
        calls.append(cmd)
        code, out = answers[cmd[-1]]
        return subprocess.CompletedProcess(cmd, code, out, "sinfo: error: bad partition")

    return run


def test_limit_from_sinfo_is_the_smallest_partition_limit_read_once() -> None:
    calls: list = []
    run = fake_run({"gpu": (0, "2-00:00:00\n1-00:00:00\n"), "cpu": (0, "infinite\n")}, calls)
    environ: dict[str, str] = {}
    assert resolve_max_runtime("sinfo:gpu,cpu", environ, run) == 1440
    assert calls == [["sinfo", "-h", "-o", "%l", "-p", p] for p in ("gpu", "cpu")]
    assert resolve_max_runtime("sinfo:gpu,cpu", environ, run) == 1440  # kept: no new call
    assert len(calls) == 2
    assert resolve_max_runtime(30, environ, run) == 30 and resolve_max_runtime(None) is None
    with pytest.raises(ClusterLimitError, match="'sinfo:gpu': sinfo lists no partition 'gpu'"):
        resolve_max_runtime("sinfo:gpu", {}, fake_run({"gpu": (0, "")}, []))
    with pytest.raises(ClusterLimitError, match=r"`sinfo -h -o %l -p gpu` failed \(1\)"):
        resolve_max_runtime("sinfo:gpu", {}, fake_run({"gpu": (1, "")}, []))
    with pytest.raises(ClusterLimitError, match="cluster.max_runtime = 'slurm'"):
        resolve_max_runtime("slurm", {}, run)


def test_training_chain_never_asks_more_than_the_limit() -> None:
    # 960 min under a 240-min limit: attempts of 240 - 10 min of training each
    assert training_attempts(960, 240) == math.ceil(960 / 230) == 5
    assert training_attempts(960, None) == training_attempts(200, 240) == 1
    for attempt in range(1, 7):
        assert job_runtime(960, attempt, 240, training=True) == 240  # not 960, 1920, ...
        assert job_runtime(200, attempt, 240, training=True) == 200  # resumes: no more
        assert job_runtime(50, attempt, 240) == min(50 * attempt, 240)  # restarts: more
    assert job_runtime(960, 2, None, training=True) == 960
    # retries: the chain's extra attempts plus the run's own; --retries 0: none at all
    assert chain_retries([100, 960], 240, spare=1) == 5
    assert chain_retries([100, 200], 240, spare=1) is None  # the run's retries apply
    assert chain_retries([960], 240, spare=0) is None
    with pytest.raises(ClusterLimitError, match="max_runtime = 10 min leaves no time"):
        training_attempts(60, 10)


def test_a_group_job_stays_within_the_limit_on_every_attempt() -> None:
    # components of at most 120 min (a sample of 90, its score of 30), 3 per part, limit 480
    factor = group_factor(120, 3, 480)
    assert factor == pytest.approx(480 / 360)
    assert group_factor(120, 5, 480) is None and group_factor(120, 5, None) == math.inf
    part = [90, 30, 90, 30, 90, 30]
    for attempt in range(1, 4):
        asked = [job_runtime(m, attempt, 480, group=factor) for m in part]
        assert all(a >= m for a, m in zip(asked, part, strict=True))
        assert sum(asked) <= 480, (attempt, asked)


def test_disk_per_running_training_job() -> None:
    # resume.pt (12 B/param) with its replacement being written, and best/ (4 B/param)
    assert training_work_bytes(774e6) == pytest.approx(774e6 * 28)


def limits_run(tmp_path: Path, override: str, env: dict | None = None) -> tuple[str, list]:
    """A dry run of config/test.yaml + ``override`` through the Slurm profile (and the hook
    that prints each group job's resources as a cluster run computes them)."""
    root = copy_workflow(tmp_path / "wf", ignore=("site.yaml",))
    (root / "override.yaml").write_text(override)
    args = ("--configfile", "config/test.yaml", "override.yaml")
    return cluster_limits.dry_run(*args, env=env, root=root)


def fake_slurm(tmp_path: Path, sinfo: str) -> dict[str, str]:
    """An environment whose PATH has a fake `sinfo` (running the shell lines ``sinfo``) and
    `sacct` (the Slurm plugin wants one of sacct / squeue once it sees sinfo; a dry run
    never calls it)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("sinfo", sinfo), ("sacct", "exit 1")):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    return dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_max_runtime_read_with_sinfo_caps_jobs_and_chains_training(tmp_path) -> None:
    """cluster.max_runtime: sinfo:gpu with a fake sinfo on PATH (30 min): the finetune jobs
    (estimated at 60 min) ask for 30 and run as chains of 3 attempts; sample and score (60
    min together) do not fit a group job; sinfo ran once."""
    calls = tmp_path / "calls"
    env = fake_slurm(tmp_path, f'echo "$@" >> {calls}\necho 0:30:00')
    text, groups = limits_run(tmp_path, "cluster: {max_runtime: 'sinfo:gpu'}\n", env)
    assert calls.read_text().split("\n") == ["-h -o %l -p gpu", ""]
    jobs = cluster_plan.parse_jobs(text)
    finetune = [j for j in jobs if j["rule"] == "finetune"]
    assert finetune and all(j["resources"]["runtime"] == "30" for j in finetune)
    assert all(int(j["resources"]["runtime"]) <= 30 for j in jobs if "runtime" in j["resources"])
    assert "finetune jobs estimated at up to 60 min run as chains of up to 3 attempts" in text
    # a job of both seeds (60 min) does not fit 30: one job per seed, and a component (2 x
    # (30 + 30) min) no group job
    assert "sample, score_samples jobs of all 2 sampling seeds would not fit" in text
    assert not groups and "tiny (120 min): a sample and its score take longer" in text
    # 3 attempts of 30 - 10 min for 60 min of finetuning: 2 retries + the profile's 1
    retries = cluster_limits.rule_retries(text)
    assert retries["finetune"] == 3 and retries["pretrain"] == math.ceil(240 / 20)
    assert retries["sample"] == 1  # not a training rule: the profile's retries


def test_retries_0_means_no_chain(tmp_path) -> None:
    root = copy_workflow(tmp_path / "wf", ignore=("site.yaml",))
    (root / "override.yaml").write_text("cluster: {max_runtime: 30}\n")
    args = ("--configfile", "config/test.yaml", "override.yaml", "--retries", "0")
    text, _ = cluster_limits.dry_run(*args, root=root)
    assert set(cluster_limits.rule_retries(text).values()) == {0}


def test_max_runtime_from_a_failing_sinfo_stops_before_any_job(tmp_path) -> None:
    env = fake_slurm(tmp_path, "echo 'invalid partition' >&2\nexit 1")
    with pytest.raises(RuntimeError) as error:
        limits_run(tmp_path, "cluster: {max_runtime: 'sinfo:gpu'}\n", env)
    text = str(error.value)
    assert "cluster.max_runtime = 'sinfo:gpu': `sinfo -h -o %l -p gpu` failed (1)" in text
    assert "Job stats" not in text


def test_group_jobs_of_the_test_config(tmp_path) -> None:
    """config/test.yaml with a 400-min limit: the sample, score and perplexity jobs of each
    model variant go to Slurm in parts of whole components (a sample job and its score job,
    2 seeds x (30 + 30) = 120 min, so 3), each job in one group job; a group job asks for one
    GPU, the largest memory of its jobs and at most the limit; without group_runtime, no
    group jobs."""
    text, groups = limits_run(tmp_path, "cluster: {max_runtime: 400}\n")
    specs = load_config([REPO / "config.yaml", REPO / "config/test.yaml"])["cluster"]["rules"]
    # sample_greedy is rule sample's greedy variant, with sample's resources
    mem = {rule: specs[rule.removesuffix("_greedy")]["mem_mb"] for rule in GROUPED}
    mem = {rule: m["default"] if isinstance(m, dict) else m for rule, m in mem.items()}
    jobs = cluster_plan.parse_jobs(text)
    grouped = Counter(j["rule"] for j in jobs if j["rule"] in GROUPED)
    assert Counter(rule for g in groups for rule in g["rules"]) == grouped  # each job once
    for group in groups:
        res = group["resources"]
        assert res["gpu"] == 1 and res["model_jobs"] == 1, group
        assert res["runtime"] <= 400, group
        assert res["mem_mb"] == max(mem[rule] for rule in group["rules"]), group
        assert Counter(group["rules"])["sample"] <= 3, group
    # each variant's components (its sample jobs, each with its score, and its perplexity)
    # in parts of 3: 400 min // 120 min
    components = Counter(
        (j["wildcards"]["model"], j["wildcards"]["variant"])
        for j in jobs
        if j["rule"] in ("sample", "sample_greedy", "perplexity")
    )
    assert len(groups) == sum(math.ceil(n / 3) for n in components.values())
    local = cluster_plan.declared_localrules()
    singles = sum(j["rule"] not in local for j in jobs)
    assert cluster_limits.submissions(text, local) == singles - sum(grouped.values()) + len(groups)

    plain, none = limits_run(tmp_path / "plain", "cluster: {group_runtime: null}\n")
    assert not none and "Group job" not in plain
    assert cluster_limits.submissions(plain, local) == singles


GROUPED = ("sample", "sample_greedy", "score_samples", "perplexity")


@pytest.fixture(scope="module")
def paper_groups(tmp_path_factory) -> tuple[str, list]:
    root = copy_workflow(tmp_path_factory.mktemp("paper-groups"), ignore=("site.yaml",))
    return cluster_limits.dry_run(root=root)


def test_group_jobs_cut_paper_scale_submissions(paper_groups) -> None:
    """config.yaml through the Slurm profile: the 1,089 sample, score and perplexity jobs go
    to Slurm in fewer group jobs, each job in exactly one, none longer than
    cluster.group_runtime; a sample or score job does every seed (3 files)."""
    text, groups = paper_groups
    jobs = cluster_plan.parse_jobs(text)
    local = cluster_plan.declared_localrules()
    before = sum(j["rule"] not in local for j in jobs)  # one sbatch per job without groups
    after = cluster_limits.submissions(text, local)
    print(f"\nSlurm submissions of config.yaml: {before} without group jobs, {after} with")
    grouped = Counter(j["rule"] for j in jobs if j["rule"] in GROUPED)
    assert grouped["sample"] == 495 and grouped["score_samples"] == 486
    assert Counter(rule for g in groups for rule in g["rules"]) == grouped
    assert after == before - sum(grouped.values()) + len(groups) < before * 0.75
    budget = load_config([REPO / "config.yaml"])["cluster"]["group_runtime"]
    assert all(g["resources"]["runtime"] <= budget for g in groups)
    assert all(g["resources"]["gpu"] == 1 for g in groups)
