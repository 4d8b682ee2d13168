"""Paper-scale job counts per rule and a GPU-hour estimate per stage, for the Slurm guide.

    python docs/cluster_plan.py            # print the Markdown block
    python docs/cluster_plan.py --write    # rewrite slurm/README.md's block (make cluster-plan)
    python docs/cluster_plan.py --check    # exit 1 if slurm/README.md's block is stale (a test)

The job counts come from a dry run (`snakemake all -n --forceall`) of config.yaml through the
Slurm profile, in a temporary copy of the workflow (so no results/ of this checkout count).
Jobs after the selection checkpoint (controlled metrics, Table 2 ...) are planned only once
the selection has run, so the dry run cannot count them: the guide says so.

The GPU-hour estimate is work over rate:
- work per job in FLOPs: 6 x parameters x tokens for training, 2 x parameters x tokens for a
  forward pass (sampling, perplexity, features), with the token counts of config.yaml
  (texts are counted at their maximum length, so this is an upper bound);
- rates MEASURED on a GPU by `make gpu-check` (bench/gpu_check.py) when
  bench/results/gpu.json holds them: tokens/s per kind of work (training, sampling, forward
  passes), model size and setting of the precision protocol point, turned into FLOP/s with
  the same FLOPs per token as above; the config's precision setting picks the rows, sizes
  between two measured models are interpolated (log-log) and sizes outside are given the
  nearest one's rate. Results not measured on CUDA, or made with --tiny, are ignored;
- otherwise the CPU rate measured by bench/ (bench/results/train_step.json: training;
  sample.json: unbiased sampling) in FLOP/s, multiplied by an ASSUMED GPU speed-up
  (GPU_RATE below: an A100-class GPU at a stated share of its bf16 peak).
The block says which rates it used.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]  # the package; the tests' layout helper

from layout import copy_workflow  # noqa: E402

from mixce.config import load_config  # noqa: E402
from mixce.gpt2.plan import BASE, parse_variant  # noqa: E402
from mixce.gpt2.protocol import point  # noqa: E402

# The Slurm guide, beside the profile, holds the generated block between START and END.
GUIDE = REPO / "slurm" / "README.md"
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
# Measured GPU rates: written by `make gpu-check` (bench/gpu_check.py); FLOPs per token and
# parameter of each kind of work, as job_flops counts them.
GPU_JSON = REPO / "bench/results/gpu.json"
FLOPS_PER_TOKEN = {"train": 6, "forward": 2, "decode": 2}
KIND_NAMES = {"train": "training", "decode": "sampling", "forward": "forward passes"}

# Stages of the estimate: the rules whose jobs run on a GPU.
STAGES = {
    "pretrain": "pretraining (scratch models)",
    "finetune": "finetuning",
    "sample": "sampling",
    "sample_greedy": "greedy sampling (base models)",
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
    """One dict per planned job: rule, wildcards (dict) and resources (dict of strings).
    The jobs of a group job are printed indented under the group's line: they count too."""
    jobs = []
    for block in re.split(r"\n(?=[ \t]*(?:local)?rule \w+:\n)", text):
        head = re.match(r"[ \t]*(?:local)?rule (\w+):\n", block)
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
    # a sample, score or controlled job does every seed's file (one job per seed: a {seed}
    # wildcard); sample_greedy one file
    files = 1 if "seed" in wc else len(sampling["seeds"])
    if rule == "pretrain":
        pre = gpt2["pretrain"]
        return "train", 6 * n_params * pre["max_steps"] * pre["batch_size"] * pre["max_length"]
    if rule == "finetune":
        n_train = parse_variant(wc["variant"]).n_train if wc["variant"] != BASE else 0
        train = 6 * n_params * n_train * ft["epochs"] * ft["max_length"]
        dev = 2 * n_params * n_split["dev"] * ft["epochs"] * ft["max_length"]
        return "train", train + dev
    if rule in ("sample", "sample_greedy"):
        n = sampling["n_prompts"] or n_split[wc["split"]]
        return "decode", 2 * n_params * n * text_tokens * (files if rule == "sample" else 1)
    if rule == "perplexity":
        return "forward", 2 * n_params * n_split["test"] * ft["max_length"]
    if rule == "nll_figure2":
        return "forward", 3 * 2 * n_params * n_split["test"] * ft["max_length"]
    if rule in ("score_human", "score_samples"):
        n = sampling["n_prompts"] or n_split[wc["split"]]
        files_ = files if rule == "score_samples" else 1
        return "forward", 2 * (mauve + coherence) * n * text_tokens * files_
    if rule in ("controlled_human", "controlled"):
        ctl = metrics["controlled"]
        files_ = files if rule == "controlled" else 1
        return "forward", 2 * (mauve + coherence) * ctl["n_fragments"] * sum(
            ctl["lengths"]
        ) * files_
    raise KeyError(rule)


def job_size(job: dict, config: dict) -> float:
    """Parameters of the model doing a GPU job's work: the job's model, or the MAUVE featurizer
    for the feature and score rules."""
    gpt2, wc = config["gpt2"], job["wildcards"]
    own = ("pretrain", "finetune", "sample", "sample_greedy", "perplexity", "nll_figure2")
    if "model" in wc and job["rule"] in own:
        return model_params(gpt2["models"][wc["model"]])
    return featurizer_params(gpt2["metrics"]["mauve"]["featurizer"])


def measured_rates(path: Path, precision: str) -> dict | None:
    """GPU rates of bench/results/gpu.json for the ``precision`` protocol setting:
    ``{"device": ..., "started_at": ..., "rates": {kind: [(parameters, FLOP/s), ...]}}``
    sorted by size; None when the file is absent, was not measured on CUDA, or is a --tiny
    run (the reason goes to stderr)."""
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    device = data.get("device", {})
    if device.get("type") != "cuda" or data.get("tiny"):
        print(
            f"cluster_plan: ignoring {path}: measured on {device.get('type', '?')}"
            f"{' with --tiny' if data.get('tiny') else ''}, not a CUDA GPU at full size",
            file=sys.stderr,
        )
        return None
    rates: dict[str, list[tuple[float, float]]] = {}
    for row in data.get("rates", []):
        kind = row["kind"]
        if kind in FLOPS_PER_TOKEN and row["precision"] in (precision, "any"):
            flops = FLOPS_PER_TOKEN[kind] * row["parameters"] * row["tokens_per_s"]
            rates.setdefault(kind, []).append((float(row["parameters"]), flops))
    for rows in rates.values():
        rows.sort()
    return {"device": device, "started_at": data.get("started_at", "?"), "rates": rates}


def rate_at(rows: list[tuple[float, float]], size: float) -> float:
    """FLOP/s at model ``size`` from measured (parameters, FLOP/s) rows sorted by size:
    log-log interpolation between the two around it, the nearest one's rate outside."""
    sizes = [p for p, _ in rows]
    i = bisect.bisect_left(sizes, size)
    if i == 0:
        return rows[0][1]
    if i == len(rows):
        return rows[-1][1]
    (p0, r0), (p1, r1) = rows[i - 1], rows[i]
    t = math.log(size / p0) / math.log(p1 / p0)
    return math.exp(math.log(r0) + t * (math.log(r1) - math.log(r0)))


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


def markdown(jobs: list[dict], config: dict, gpu_json: Path = GPU_JSON) -> str:
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

    precision = point(config, "precision")
    measured = measured_rates(gpu_json, precision)
    gpu = measured["rates"] if measured else {}

    def rate(kind: str, job: dict) -> float:
        return rate_at(gpu[kind], job_size(job, config)) if kind in gpu else GPU_RATE[kind]

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
        hours = 0.0
        for job in rows:
            kind, flops = job_flops(job, config)
            hours += flops / rate(kind, job) / 3600
        asked = sum(runtime_hours(j) for j in rows)
        total_est += hours
        total_asked += asked
        lines.append(f"| {stage} (`{rule}`) | {len(rows)} | {hours_str(hours)} | {asked:,.0f} |")
    lines.append(f"| **total** | | **{total_est:,.0f}** | **{total_asked:,.0f}** |")
    lines += ["", rates_text(measured, precision), "", END]
    return "\n".join(lines)


def rates_text(measured: dict | None, precision: str) -> str:
    """The guide's sentence on the rates behind the estimate: measured or assumed."""
    cpu = cpu_rates()
    assumed = (
        "ASSUMED for one A100-class GPU (bf16): "
        f"training and forward passes {GPU_RATE['train'] / 1e12:.0f} TFLOP/s "
        f"({GPU_RATE['train'] / cpu['train']:,.0f}x the CPU rate measured by `bench/`, "
        f"{cpu['train'] / 1e9:.0f} GFLOP/s, `bench/results/train_step.json`), sampling "
        f"{GPU_RATE['decode'] / 1e12:.0f} TFLOP/s ({GPU_RATE['decode'] / cpu['decode']:,.0f}x "
        f"the CPU's {cpu['decode'] / 1e9:.0f} GFLOP/s, `bench/results/sample.json`)"
    )
    setting = f"config.yaml's precision protocol point is {precision}"
    if not measured:
        text = (
            "Rates behind the estimate: no GPU measurement in `bench/results/gpu.json` "
            "(`make gpu-check` on a CUDA GPU writes one, and this estimate then uses it; "
            f"results of a CPU or --tiny run are ignored), so {assumed}."
        )
        if precision == "official":
            text += (
                f" {setting}: training and sampling run in float32 with TF32 off, so they run "
                "slower than these bf16 rates."
            )
        return text
    device, rates = measured["device"], measured["rates"]
    parts = []
    for kind, name in KIND_NAMES.items():
        if kind in rates:
            values = ", ".join(
                f"{r / 1e12:.0f} TFLOP/s at {p / 1e6:,.0f}M parameters" for p, r in rates[kind]
            )
            parts.append(f"{name} {values}")
    missing = [KIND_NAMES[k] for k in KIND_NAMES if k not in rates]
    text = (
        f"Rates behind the estimate: MEASURED on one {device.get('name', 'GPU')} by "
        f"`make gpu-check` (`bench/results/gpu.json`, {measured['started_at'][:10]}) at "
        f"config.yaml's precision setting ({precision}): {'; '.join(parts)} (6 or 2 FLOPs "
        "per parameter and token, as the work above; other model sizes interpolated log-log "
        "between these, the nearest one's rate outside them). The hours are for that GPU."
    )
    if missing:
        text += f" {' and '.join(missing).capitalize()}: not measured, so {assumed}."
    return text


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
    group.add_argument("--write", action="store_true", help="rewrite the block in slurm/README.md")
    group.add_argument("--check", action="store_true", help="exit 1 if slurm/README.md is stale")
    args = parser.parse_args()
    _, block = plan()
    if not (args.write or args.check):
        print(block)
        return 0
    name = GUIDE.relative_to(REPO)
    readme = GUIDE.read_text()
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), flags=re.S)
    if not pattern.search(readme):
        print(f"{name} has no block {START} ... {END}", file=sys.stderr)
        return 1
    updated = pattern.sub(lambda _: block, readme)
    if args.check:
        if updated != readme:
            print(f"{name}'s cluster plan is stale: run `make cluster-plan`", file=sys.stderr)
            return 1
        return 0
    GUIDE.write_text(updated)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
