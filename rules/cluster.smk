# Cluster resources from config `cluster`: GPUs, runtime and memory per job (per model size where
# given so), within the partition's limit cluster.max_runtime (the arithmetic: mixce.cluster).
import math
import sys

from mixce import cluster

CLUSTER = config.get("cluster", {})
try:
    MAX_RUNTIME = cluster.resolve_max_runtime(CLUSTER.get("max_runtime"))
except cluster.ClusterLimitError as error:
    raise WorkflowError(str(error)) from None
# For the Slurm profile's default-resources (rules cluster.rules does not list).
os.environ.update(MIXCE_MAX_RUNTIME=str(MAX_RUNTIME if MAX_RUNTIME is not None else 10**9))
# Training rules resume from their checkpoint: past the limit they run as a chain of
# attempts of at most MAX_RUNTIME minutes (the profile signals them 5 minutes before it).
TRAINING_RULES = ("pretrain", "finetune")
# A model variant's jobs of these rules go to Slurm in group jobs of whole components (a
# sample and its score, or a perplexity), as many as fit in cluster.group_runtime (and
# max_runtime), run one after another (model_jobs). Group ids MODEL_PARTS_<variant>_<part>
# are all named MODEL_PARTS, whose --group-components (slurm/config.yaml) spans components.
MODEL_PARTS = "model_parts"
GROUPED_RULES = ("sample", "score_samples", "perplexity")
# Rules whose config runtime is per sample file: a job does every sampling seed with its model
# and featurizers loaded once, or, where that would not fit max_runtime, one seed (seed_files).
PER_SEED_RULES = ("sample", "score_samples", "controlled")


resource_scopes:
    model_jobs="local",


# The limit of model_jobs within a group job (see cluster_resources).
workflow.register_resource("model_jobs", 1)


def _rule_spec(name):
    specs = CLUSTER.get("rules", {})
    if name not in specs:
        raise WorkflowError(
            f"config cluster.rules has no entry for {name!r} (its gpu, runtime, mem_mb); "
            f"entries: {sorted(specs)}"
        )
    return specs[name]


def _per_model(value, wildcards):
    return value.get(wildcards.get("model"), value["default"]) if isinstance(value, dict) else value


def _every_seed_fits(name):
    if MAX_RUNTIME is None or not GPT2_ENABLED:
        return True
    per_file = max(_per_model(_rule_spec(name)["runtime"], {"model": m}) for m in GPT2_MODELS)
    return per_file * len(SAMPLE_SEEDS) <= MAX_RUNTIME


JOB_PER_SEED = {name for name in PER_SEED_RULES if not _every_seed_fits(name)}
if JOB_PER_SEED and workflow.is_main_process:
    print(
        f"cluster.max_runtime = {MAX_RUNTIME} min: {', '.join(sorted(JOB_PER_SEED))} jobs of "
        f"all {len(SAMPLE_SEEDS)} sampling seeds would not fit: one job per seed (each "
        "loads its model)",
        file=sys.stderr,
    )


def seed_files(name, path):
    """Files ``path`` (with ``{seed}``) of a ``name`` job: one per seed, or one (JOB_PER_SEED)."""
    return path if name in JOB_PER_SEED else expand(path, seed=SAMPLE_SEEDS, allow_missing=True)


def seed_stem(name, stem):
    """Log / benchmark stem of a job of ``name`` (seed{seed} appended when one per seed)."""
    return f"{stem}/seed{{seed}}" if name in JOB_PER_SEED else stem


def runtime_estimate(name, wildcards):
    """Estimated minutes of a job of ``name`` before any cap: cluster.rules' per model, x its
    sample files (PER_SEED_RULES), x the variant's share of the training texts (finetune)."""
    spec = _rule_spec(name)
    minutes = _per_model(spec["runtime"], wildcards)
    if name in PER_SEED_RULES and name not in JOB_PER_SEED:
        minutes *= 1 if wildcards.get("decoding") == "greedy" else len(SAMPLE_SEEDS)
    if spec.get("scale_with_train_size") and wildcards.get("variant", BASE) != BASE:
        n_train = parse_variant(wildcards.get("variant")).n_train
        minutes *= max(0.25, n_train / N_MAIN)
    return minutes


# --------------------------------------------------------------------------- training chains


def _training_estimates(name):
    if name == "finetune":
        return [runtime_estimate(name, {"model": m, "variant": v}) for _, m, v in FINETUNE_PLAN]
    models = scratch_models(GPT2) if GPT2_ENABLED else []
    return [runtime_estimate(name, {"model": m}) for m in models]


if workflow.is_main_process:
    for _name in TRAINING_RULES:
        _longest = max(_training_estimates(_name), default=0)
        try:
            _attempts = cluster.training_attempts(_longest, MAX_RUNTIME)
        except cluster.ClusterLimitError as error:
            raise WorkflowError(f"{_name} jobs: {error}") from None
        if _attempts > 1:
            print(
                f"cluster.max_runtime = {MAX_RUNTIME} min: {_name} jobs estimated at up to "
                f"{_longest:.0f} min run as chains of up to {_attempts} attempts of at most "
                f"{MAX_RUNTIME} min, each resuming from the last one's checkpoint (retries: "
                f"{_attempts - 1} + the run's retries; --retries 0: one attempt)",
                file=sys.stderr,
            )


@cache
def _set_chain_retries(name):
    """Give training rule ``name`` the retries its chains need, once, when its first job is
    planned: the run's --retries is known only then (--retries 0: no chains either)."""
    spare = getattr(getattr(workflow, "execution_settings", None), "retries", 0)
    retries = cluster.chain_retries(_training_estimates(name), MAX_RUNTIME, spare)
    if retries is not None:
        workflow.get_rule(name).restart_times = retries


# --------------------------------------------------------------------------- group jobs


def _component_minutes(model):
    """Estimated minutes of the longest component of a model's grouped jobs: a (split,
    decoding)'s sample and score jobs (every seed), or a perplexity."""
    sample, score, perplexity = (
        math.ceil(runtime_estimate(name, {"model": model}))
        * (len(SAMPLE_SEEDS) if name in JOB_PER_SEED else 1)
        for name in GROUPED_RULES
    )
    return max(sample + score, perplexity)


def _group_parts():
    """(dataset, model, variant, split, decoding) of each planned component (split, decoding
    None: a perplexity) -> (group id, group_factor): a variant's components, in plan order,
    in parts of as many as fit; a model whose component does not fit is not grouped."""
    budget = CLUSTER.get("group_runtime")
    if budget is None or not GPT2_ENABLED:
        return {}
    if MAX_RUNTIME is not None:
        budget = min(budget, MAX_RUNTIME)
    components = {}
    for dataset, model, variant, split, decoding in sample_groups(GPT2):
        components.setdefault((dataset, model, variant), []).append((split, decoding))
    for key in FINETUNE_PLAN:
        components.setdefault(key, []).append((None, None))
    parts, skipped = {}, set()
    for (dataset, model, variant), members in components.items():
        minutes = _component_minutes(model)
        size = budget // minutes
        if size < 1:
            skipped.add((model, minutes))
            continue
        factor = cluster.group_factor(minutes, size, MAX_RUNTIME)
        for i, member in enumerate(members):
            groupid = f"{MODEL_PARTS}_{dataset}_{model}_{variant}_{i // size}"
            parts[(dataset, model, variant, *member)] = (groupid, factor)
    if skipped and workflow.is_main_process:
        print(
            "cluster: "
            + ", ".join(f"{m} ({n} min)" for m, n in sorted(skipped))
            + f": a sample and its score take longer than the {budget} min a group job may "
            "take (cluster.group_runtime, max_runtime): their jobs go to Slurm one by one",
            file=sys.stderr,
        )
    return parts


GROUP_PARTS = _group_parts()


def _part(wildcards):
    """(group id, factor) of a grouped job, or None (not grouped)."""
    keys = ("dataset", "model", "variant", "split", "decoding")
    return GROUP_PARTS.get(tuple(wildcards.get(k) for k in keys))


def model_group(wildcards):
    """`group:` of GROUPED_RULES: the job's part or None, registered under MODEL_PARTS (as
    Snakemake does for a group string with wildcards) for --group-components."""
    part = _part(wildcards)
    if part is None:
        return None
    workflow.parent_groupids[part[0]] = MODEL_PARTS
    return part[0]


def cluster_resources(name):
    """Resources of a rule's jobs from config cluster.rules.<name>: gpu; runtime (per attempt,
    mixce.cluster.job_runtime) and mem_mb, capped by cluster.max_runtime and max_mem_mb. The
    script reads gpu (mixce.device.job_gpus): device ``auto`` is the GPU the job was given, and
    a job given one stops at once when torch cannot use CUDA (no silent CPU fallback)."""
    spec = _rule_spec(name)
    training = name in TRAINING_RULES
    grouped = name in GROUPED_RULES

    def runtime(wildcards, attempt):
        if training:
            _set_chain_retries(name)
        part = _part(wildcards) if grouped else None
        return cluster.job_runtime(
            runtime_estimate(name, wildcards),
            attempt,
            MAX_RUNTIME,
            training=training,
            group=part[1] if part else None,
        )

    def mem_mb(wildcards):
        value, cap = _per_model(spec["mem_mb"], wildcards), CLUSTER.get("max_mem_mb")
        return value if cap is None else min(value, cap)

    resources = {"runtime": runtime, "mem_mb": mem_mb}
    if spec.get("gpu"):
        resources["gpu"] = spec["gpu"]
    if grouped:
        # 1 in a group job, which then runs one such job at a time (model_jobs is a local
        # resource: a limit within each group job, not a count across the cluster), so the
        # group asks for one GPU, the largest memory and the sum of the runtimes. 0 where
        # Snakemake forms no groups (a local run): no limit there.
        resources["model_jobs"] = lambda wildcards: int(
            workflow.non_local_exec_or_dryrun and _part(wildcards) is not None
        )
    return resources
