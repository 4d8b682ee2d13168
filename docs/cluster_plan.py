"""Paper-scale job counts per rule and a GPU-hour estimate per stage, for the README.

    python docs/cluster_plan.py            # print the Markdown block
    python docs/cluster_plan.py --write    # replace the block in README.md (make cluster-plan)
    python docs/cluster_plan.py --check    # exit 1 if README.md's block is stale (a test)

The job counts come from a dry run (`snakemake all -n --forceall`) of config.yaml through the
Slurm profile, in a temporary copy of the workflow (so no results/ of this checkout count).
Jobs after the selection checkpoint (controlled metrics, Table 2 ...) are planned only once
the selection has run, so the dry run cannot count them: the README says so.

The GPU-hour estimate is a model, not a measurement (no GPU was available):
- work per job in FLOPs: 6 x parameters x tokens for training, 2 x parameters x tokens for a
  forward pass (sampling, perplexity, features), with the token counts of config.yaml
  (texts are counted at their maximum length, so this is an upper bound);
- the CPU rate measured by bench/ (bench/results/train_step.json: training; sample.json:
  unbiased sampling) in FLOP/s, multiplied by an ASSUMED GPU speed-up (GPU_RATE below:
  an A100-class GPU at a stated share of its bf16 peak).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from mixce.config import load_config  # noqa: E402
from mixce.layout import copy_workflow  # noqa: E402
from mixce.plan import BASE, parse_variant  # noqa: E402

README = REPO / "README.md"
START = "<!-- cluster-plan:start (python docs/cluster_plan.py --write) -->"
END = "<!-- cluster-plan:end -->"
# ASSUMED sustained GPU rates (FLOP/s) on one A100-class GPU (bf16 autocast, as the training
# loop runs on CUDA): 30% of the 312 TFLOP/s bf16 peak for training and batched forward
# passes; 3% for token-by-token sampling (batch 32 with a KV cache is memory-bound).
GPU_RATE = {"train": 0.30 * 312e12, "forward": 0.30 * 312e12, "decode": 0.03 * 312e12}
# Parameters of the hub models (the scratch models' are computed from their architecture).
HUB_PARAMS = {"gpt2": 124e6, "gpt2-medium": 355e6, "gpt2-large": 774e6, "gpt2-xl": 1558e6}
FEATURIZER_PARAMS = {"gpt2": None, "simcse": 110e6, "sentence": 22.7e6}
VOCAB = 50257

# Stages of the estimate: the rules whose jobs run on a GPU.
STAGES = {
    "pretrain": "pretraining (scratch models)",
    "finetune": "finetuning",
    "sample": "sampling",
    "perplexity": "perplexity",
    "nll_figure2": "Figure 2 NLLs",
    "score_human": "human-text features and scores",
    "score_samples": "sample features and scores (MAUVE, coherence)",
    "controlled_human": "controlled metrics, human side",
    "controlled": "controlled metrics, models",
}


def dry_run(env: dict | None = None) -> str:
    """Output of `snakemake --profile slurm all -n --forceall` on config.yaml in a copy."""
    with tempfile.TemporaryDirectory(prefix="cluster-plan-") as tmp:
        root = Path(tmp)
        copy_workflow(root, ignore=("site.yaml",))
        snakemake = Path(sys.executable).with_name("snakemake")
        cmd = [str(snakemake), "--profile", "slurm", "all", "-n", "--forceall", "--nocolor"]
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"dry run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc.stdout + proc.stderr


def parse_jobs(text: str) -> list[dict]:
    """One dict per planned job: rule, wildcards (dict) and resources (dict of strings)."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", text):
        head = re.match(r"(?:local)?rule (\w+):\n", block)
        if not head or head[1] == "all":
            continue
        job = {"rule": head[1], "wildcards": {}, "resources": {}}
        for key in ("wildcards", "resources"):
            line = re.search(rf"^\s+{key}: (.*)$", block, flags=re.M)
            if line:
                for item in line[1].split(", "):
                    name, _, value = item.partition("=")
                    job[key][name] = value
        jobs.append(job)
    return jobs


def model_params(spec: dict) -> float:
    if spec.get("source") == "hub":
        return HUB_PARAMS[spec["name"]]
    d, layers, positions = spec["n_embd"], spec["n_layer"], spec["n_positions"]
    return VOCAB * d + positions * d + layers * 12 * d * d


def featurizer_params(spec: dict) -> float:
    if spec["kind"] == "gpt2":
        return HUB_PARAMS[spec["name"]]
    return FEATURIZER_PARAMS[spec["kind"]]


def job_flops(job: dict, config: dict) -> tuple[str, float]:
    """(kind of work, FLOPs) of one GPU job; an upper bound (texts at their maximum length)."""
    gpt2 = config["gpt2"]
    wc, rule = job["wildcards"], job["rule"]
    ft, sampling, metrics = gpt2["finetune"], gpt2["sampling"], gpt2["metrics"]
    n_split = {"dev": gpt2["data"]["n_dev"], "test": gpt2["data"]["n_test"]}
    n_params = model_params(gpt2["models"][wc["model"]]) if "model" in wc else 0.0
    mauve = featurizer_params(metrics["mauve"]["featurizer"])
    coherence = featurizer_params(metrics["coherence"]["featurizer"])
    text_tokens = sampling["prompt_tokens"] + sampling["max_new_tokens"]
    if rule == "pretrain":
        pre = gpt2["pretrain"]
        return "train", 6 * n_params * pre["max_steps"] * pre["batch_size"] * pre["max_length"]
    if rule == "finetune":
        n_train = parse_variant(wc["variant"]).n_train if wc["variant"] != BASE else 0
        train = 6 * n_params * n_train * ft["epochs"] * ft["max_length"]
        dev = 2 * n_params * n_split["dev"] * ft["epochs"] * ft["max_length"]
        return "train", train + dev
    if rule == "sample":
        n = sampling["n_prompts"] or n_split[wc["split"]]
        return "decode", 2 * n_params * n * text_tokens
    if rule == "perplexity":
        return "forward", 2 * n_params * n_split["test"] * ft["max_length"]
    if rule == "nll_figure2":
        return "forward", 3 * 2 * n_params * n_split["test"] * ft["max_length"]
    if rule in ("score_human", "score_samples"):
        n = sampling["n_prompts"] or n_split[wc["split"]]
        return "forward", 2 * (mauve + coherence) * n * text_tokens
    if rule in ("controlled_human", "controlled"):
        ctl = metrics["controlled"]
        return "forward", 2 * (mauve + coherence) * ctl["n_fragments"] * sum(ctl["lengths"])
    raise KeyError(rule)


def cpu_rates() -> dict[str, float]:
    """FLOP/s measured on this project's CPU by bench/ (2 threads)."""
    step = json.loads((REPO / "bench/results/train_step.json").read_text())
    tokens = step["batch"]["texts"] * step["batch"]["tokens_per_text"]
    train = 6 * step["model"]["parameters"] * tokens / step["step_seconds_median"]["mle"]
    sample = json.loads((REPO / "bench/results/sample.json").read_text())
    s = sample["meta"]["settings"]
    params = model_params({**s, "source": "scratch"})
    row = next(r for r in sample["rows"] if r["case"] == "unbiased")
    decode = 2 * params * row["ours_tok_per_s"]
    # No forward-only bench: a batched forward pass is taken at the training rate.
    return {"train": train, "forward": train, "decode": decode}


def hours_str(hours: float) -> str:
    return f"{hours:,.1f}" if hours < 10 else f"{hours:,.0f}"


def runtime_hours(job: dict) -> float:
    gpus = int(job["resources"].get("gpu", 0) or 0)
    return gpus * float(job["resources"].get("runtime", 0)) / 60


def markdown(jobs: list[dict], config: dict) -> str:
    counts = Counter(j["rule"] for j in jobs)
    local = {j["rule"] for j in jobs if j.get("local")}
    gpu_rules = {j["rule"] for j in jobs if int(j["resources"].get("gpu", 0) or 0) > 0}
    lines = [
        START,
        "",
        "| rule | jobs | where | runtime asked per job (min) | mem asked per job (MB) |",
        "|---|---|---|---|---|",
    ]
    for rule, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        rows = [j for j in jobs if j["rule"] == rule]
        where = (
            "login node (localrule)" if rule in local else ("GPU" if rule in gpu_rules else "CPU")
        )
        spans = []
        for key in ("runtime", "mem_mb"):
            values = sorted(
                {int(float(j["resources"][key])) for j in rows if key in j["resources"]}
            )
            spans.append(
                "-"
                if not values or rule in local
                else f"{values[0]}"
                if len(values) == 1
                else f"{values[0]}-{values[-1]}"
            )
        lines.append(f"| {rule} | {n} | {where} | {spans[0]} | {spans[1]} |")
    lines.append(f"| **total** | **{sum(counts.values())}** | | | |")

    cpu = cpu_rates()
    lines += [
        "",
        "| GPU stage | jobs | estimated GPU-hours | GPU-hours asked (runtime x GPUs) |",
        "|---|---|---|---|",
    ]
    total_est = total_asked = 0.0
    for rule, stage in STAGES.items():
        rows = [j for j in jobs if j["rule"] == rule]
        if not rows:
            continue
        hours = sum(
            flops / GPU_RATE[kind] / 3600 for kind, flops in (job_flops(j, config) for j in rows)
        )
        asked = sum(runtime_hours(j) for j in rows)
        total_est += hours
        total_asked += asked
        lines.append(f"| {stage} (`{rule}`) | {len(rows)} | {hours_str(hours)} | {asked:,.0f} |")
    lines.append(f"| **total** | | **{total_est:,.0f}** | **{total_asked:,.0f}** |")
    lines += [
        "",
        "Rates behind the estimate: measured on this project's CPU (2 threads) by `bench/`, "
        f"training {cpu['train'] / 1e9:.0f} GFLOP/s (`bench/results/train_step.json`) and "
        f"unbiased sampling {cpu['decode'] / 1e9:.0f} GFLOP/s (`bench/results/sample.json`); "
        "ASSUMED for one A100-class GPU (bf16): "
        f"training and forward passes {GPU_RATE['train'] / 1e12:.0f} TFLOP/s "
        f"({GPU_RATE['train'] / cpu['train']:,.0f}x the CPU rate), sampling "
        f"{GPU_RATE['decode'] / 1e12:.0f} TFLOP/s "
        f"({GPU_RATE['decode'] / cpu['decode']:,.0f}x).",
        "",
        END,
    ]
    return "\n".join(lines)


def declared_localrules() -> set[str]:
    """Rules listed in the `localrules:` directives of rules/*.smk."""
    names = set()
    for path in sorted((REPO / "rules").glob("*.smk")):
        for block in re.findall(r"^localrules:\n((?:[ \t]+\w+,?\n)+)", path.read_text(), re.M):
            names.update(re.findall(r"\w+", block))
    return names


def plan(env: dict | None = None) -> tuple[list[dict], str]:
    text = dry_run(env)
    jobs = parse_jobs(text)
    local_rules = declared_localrules()
    for job in jobs:
        job["local"] = job["rule"] in local_rules
    config = load_config([REPO / "config.yaml"])
    return jobs, markdown(jobs, config)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="rewrite the block in README.md")
    group.add_argument("--check", action="store_true", help="exit 1 if README.md is stale")
    args = parser.parse_args()
    _, block = plan()
    if not (args.write or args.check):
        print(block)
        return 0
    readme = README.read_text()
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), flags=re.S)
    if not pattern.search(readme):
        print(f"README.md has no block {START} ... {END}", file=sys.stderr)
        return 1
    updated = pattern.sub(lambda _: block, readme)
    if args.check:
        if updated != readme:
            print("README.md's cluster plan is stale: run `make cluster-plan`", file=sys.stderr)
            return 1
        return 0
    README.write_text(updated)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
