"""Cluster limits at paper scale: Slurm submissions with and without group jobs, what a group
job asks for, and the disk each stage needs.

    python docs/cluster_limits.py            # print it all (two dry runs, about a minute)

Submissions: dry runs (`snakemake --profile slurm all -n --forceall`) of config.yaml in a copy
of the workflow, as docs/cluster_plan.py makes them: once as it is (group jobs of
cluster.group_runtime minutes), once with `cluster: {group_runtime: null}` (no groups). Each
group job, and each job outside a group that is not a local rule, is one sbatch. A group job's
resources are computed as Snakemake computes them for a cluster run (a dry run computes them
as for a local run, summing what runs in parallel), and printed by a hook (PROBE).

Disk: from parameter counts (docs/cluster_plan.py's), bytes per parameter (mixce.cluster: a
resume checkpoint is 12 bytes per parameter, a saved model 4) and the job counts of the dry
run; sample files from their texts' token counts (config.yaml) and the bytes per token that
mixce.gpt2.sample.write_samples writes for English prose (measured here, on PROSE: the prose
lines of this repository's README at commit d15723a, kept fixed so that README edits move no
number).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# English prose for the bytes per token of a sample file (see its first lines).
PROSE = REPO / "docs" / "cluster_limits_prose.txt"
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]  # the package; the tests' layout helper
sys.path.insert(0, str(REPO / "docs"))

import cluster_plan  # noqa: E402
from layout import copy_workflow  # noqa: E402

from mixce.cluster import (  # noqa: E402
    MODEL_BYTES_PER_PARAM,
    RESUME_BYTES_PER_PARAM,
    training_work_bytes,
)
from mixce.config import load_config  # noqa: E402

# Run Snakemake's CLI with hooks that print, for each group job the dry run submits (and
# prints), its resources as a cluster run computes them (run_local=False: layers one after
# another, so the maximum of what runs at once and the sum of the runtimes), one JSON line;
# and at the end each rule's retries (those of training rules are set while the DAG is built).
PROBE = r"""
import json, sys
import snakemake.jobs as jobs
from snakemake.cli import main
import snakemake.workflow as workflow
from snakemake.resources import GroupResources

log_info = jobs.GroupJob.log_info

def report(self, *args, **kwargs):
    log_info(self, *args, **kwargs)
    res = GroupResources.basic_layered(
        toposorted_jobs=self.toposorted, constraints=self.global_resources, run_local=False,
        additive_resources=["runtime"], sortby=["runtime"],
    )
    print("GROUP-JOB " + json.dumps({
        "group": self.groupid,
        "rules": sorted(job.rule.name for job in self.jobs),
        "resources": {k: v for k, v in res.items() if isinstance(v, (int, float, str))},
    }), file=sys.stderr, flush=True)

jobs.GroupJob.log_info = report
execute = workflow.Workflow.execute

def execute_and_report(self, *args, **kwargs):
    try:
        return execute(self, *args, **kwargs)
    finally:
        retries = {rule.name: rule.restart_times for rule in self.rules}
        print("RULE-RETRIES " + json.dumps(retries), file=sys.stderr, flush=True)

workflow.Workflow.execute = execute_and_report
sys.argv[0] = "snakemake"
sys.exit(main())
"""


def dry_run(
    *args: str, env: dict | None = None, root: Path | None = None
) -> tuple[str, list[dict]]:
    """Output of `snakemake --profile slurm all -n --forceall ARGS` in a copy of the workflow
    (or in ``root``), and the group jobs the hook printed."""
    env = dict(os.environ if env is None else env)
    env.pop("SNAKEMAKE_PROFILE", None)
    with tempfile.TemporaryDirectory(prefix="cluster-limits-") as tmp:
        workdir = root or copy_workflow(Path(tmp), ignore=("site.yaml",))
        cmd = [sys.executable, "-c", PROBE, "--profile", "slurm", "all", "-n", "--forceall"]
        # --cores: a dry run limits the cores to 1, which would line up a group's jobs by
        # itself; a cluster run has no such limit (only model_jobs does it there)
        cmd += ["--nocolor", "--cores", "1000000", *args]
        proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    text = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"dry run failed ({' '.join(args)}):\n{text[-3000:]}")
    groups = [json.loads(line[10:]) for line in text.splitlines() if line.startswith("GROUP-JOB ")]
    return text, groups


def rule_retries(text: str) -> dict[str, int]:
    """Each rule's retries at the end of a dry run made by :func:`dry_run`."""
    lines = [line for line in text.splitlines() if line.startswith("RULE-RETRIES ")]
    return json.loads(lines[-1][len("RULE-RETRIES ") :])


def submissions(text: str, local_rules: set[str]) -> int:
    """sbatch calls of a dry run: its group jobs, and its jobs outside groups that are not
    local rules (a job inside a group job is printed indented under the group's line)."""
    singles = [r for r in re.findall(r"^rule (\w+):$", text, flags=re.M) if r != "all"]
    groups = re.findall(r"^\[[^\]]*\] Group job ", text, flags=re.M)
    return sum(r not in local_rules for r in singles) + len(groups)


# --------------------------------------------------------------------------- disk


def sample_bytes_per_token(prompt_tokens: int, new_tokens: int) -> float:
    """Bytes per token of a sample file (mixce.gpt2.sample.write_samples: text and token ids) of
    texts of ``prompt_tokens`` + ``new_tokens`` tokens, measured on English prose: the
    lines of PROSE (a fixed sample of this repository's documentation), cut into such texts."""
    from mixce.gpt2.sample import Generation, parse_decoding, write_samples
    from mixce.gpt2.tokenizer import build_tokenizer

    tokenizer = build_tokenizer("package")
    prose = " ".join(
        line for line in PROSE.read_text().splitlines() if line[:1].isalpha() and "|" not in line
    )
    ids = tokenizer.encode(prose)
    size = prompt_tokens + new_tokens
    texts = [ids[start : start + size] for start in range(0, len(ids) - size + 1, size)]
    generations = [
        Generation(i, t[:prompt_tokens], t[prompt_tokens:], "length", 1.0, new_tokens)
        for i, t in enumerate(texts)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "samples.jsonl")
        unbiased = parse_decoding("unbiased")
        write_samples(path, generations, tokenizer=tokenizer, seed=0, decoding=unbiased)
        return path.stat().st_size / (len(texts) * size)


def disk_rows(jobs: list[dict], config: dict) -> list[tuple[str, float, str]]:
    """(stage, bytes, how) per stage of a paper-scale run, from the dry run's jobs."""
    gpt2 = config["gpt2"]
    params = {m: cluster_plan.model_params(gpt2["models"][m]) for m in gpt2["use_models"]}
    count = Counter((j["rule"], j["wildcards"].get("model")) for j in jobs)
    rows = []
    hub = [m for m in params if gpt2["models"][m].get("source") == "hub"]
    rows.append(
        (
            "hub models (`resources/`: the Hugging Face cache and the saved copy)",
            sum(2 * MODEL_BYTES_PER_PARAM * params[m] for m in hub),
            f"2 x {MODEL_BYTES_PER_PARAM} B/param, {', '.join(hub)}",
        )
    )
    finetuned = sum(count[("finetune", m)] * MODEL_BYTES_PER_PARAM * params[m] for m in params)
    rows.append(
        (
            "finetuned models (`results/<run>/finetune/`, kept)",
            finetuned,
            f"{MODEL_BYTES_PER_PARAM} B/param x "
            + ", ".join(f"{count[('finetune', m)]} {m}" for m in params),
        )
    )
    largest = max(params, key=params.get)
    rows.append(
        (
            "one running finetune job (`results/<run>/work/`, removed when it ends well)",
            training_work_bytes(params[largest]),
            f"{largest}: resume.pt ({RESUME_BYTES_PER_PARAM} B/param) + its replacement while "
            "it is written, "
            f"best/ ({MODEL_BYTES_PER_PARAM} B/param)",
        )
    )
    sampling = gpt2["sampling"]
    per_token = sample_bytes_per_token(sampling["prompt_tokens"], sampling["max_new_tokens"])
    n_split = {"dev": gpt2["data"]["n_dev"], "test": gpt2["data"]["n_test"]}
    tokens = sampling["prompt_tokens"] + sampling["max_new_tokens"]
    # a sample job writes one file per sampling seed (one job per seed: a {seed} wildcard);
    # sample_greedy one file
    files = {
        id(j): 1
        if j["rule"] == "sample_greedy" or "seed" in j["wildcards"]
        else len(sampling["seeds"])
        for j in jobs
        if j["rule"] in ("sample", "sample_greedy")
    }
    sample_bytes = sum(
        files[id(j)]
        * (sampling["n_prompts"] or n_split[j["wildcards"]["split"]])
        * tokens
        * per_token
        for j in jobs
        if id(j) in files
    )
    rows.append(
        (
            "sample files (`results/<run>/samples/`)",
            sample_bytes,
            f"{sum(files.values())} files x texts x {tokens} tokens x "
            f"{per_token:.1f} B/token (at most)",
        )
    )
    return rows


def count_rule(jobs: list[dict], rule: str) -> int:
    return sum(j["rule"] == rule for j in jobs)


def disk_markdown(rows: list[tuple[str, float, str]]) -> str:
    lines = ["| stage | disk | from |", "|---|---|---|"]
    for stage, size, how in rows:
        lines.append(f"| {stage} | {size / 1e9:,.0f} GB | {how} |")
    kept = sum(size for stage, size, _ in rows if "running" not in stage)
    lines.append(
        f"| **kept after the run** | **{kept / 1e9:,.0f} GB** | the rows but the running job |"
    )
    return "\n".join(lines)


def main() -> int:
    local = cluster_plan.declared_localrules()
    config = load_config([REPO / "config.yaml"])
    grouped_text, groups = dry_run()
    with tempfile.TemporaryDirectory() as tmp:
        override = Path(tmp, "no-groups.yaml")
        override.write_text("cluster: {group_runtime: null}\n")
        plain_text, plain_groups = dry_run("--configfile", str(override))
    assert not plain_groups, "group_runtime: null still formed group jobs"
    jobs = cluster_plan.parse_jobs(grouped_text)
    before, after = submissions(plain_text, local), submissions(grouped_text, local)
    print(f"Slurm submissions (sbatch) of config.yaml: {before} without groups, {after} with")
    in_groups = Counter(rule for g in groups for rule in g["rules"])
    print(f"{len(groups)} group jobs hold {dict(in_groups)}")
    widths = Counter((g["resources"].get("gpu"), g["resources"].get("model_jobs")) for g in groups)
    print(f"group jobs by (gpu, jobs at once): {dict(widths)}")
    runtimes = [g["resources"]["runtime"] for g in groups]
    print(f"runtime asked per group job: {min(runtimes)}-{max(runtimes)} min")
    print()
    print(disk_markdown(disk_rows(jobs, config)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
