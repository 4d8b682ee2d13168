"""The Slurm profile (slurm/) on the paper-scale config, by dry run: no cluster needed.

One dry run (`snakemake --profile slurm all -n --forceall`, in a copy of the workflow) with
a site file of made-up names shows every job's resources as the plugin would submit them:
GPU jobs to the site's GPU partition with one GPU of the site's model, every other job to
the CPU partition, runtime and memory by model size from config.yaml's cluster section.
The same run regenerates the README's job table (docs/cluster_plan.py), which must be current.
The real-Slurm tests are in tests/test_slurm.py (MIXCE_SLURM=1).
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mixce.config import load_config
from mixce.layout import copy_workflow
from mixce.plan import parse_variant

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


def test_readme_cluster_plan_is_current(paper_plan) -> None:
    _, block = paper_plan
    readme = (REPO / "README.md").read_text()
    assert block in readme, (
        "README.md's job table is stale (job counts or resources changed): run `make cluster-plan`"
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
    the rule routed to the GPU partition by the site file, as the README says."""
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
