# Cluster resources of the jobs, from the config's cluster section: GPUs, runtime and
# memory per job (per model size where the config gives one number per model), within the
# partition's time limit cluster.max_runtime (mixce.cluster: the arithmetic, tested alone).
import math
import sys

from mixce.cluster import (
    ClusterLimitError,
    chain_retries,
    group_factor,
    job_runtime,
    resolve_max_runtime,
    training_attempts,
)

CLUSTER = config.get("cluster", {})
try:
    MAX_RUNTIME = resolve_max_runtime(CLUSTER.get("max_runtime"))
except ClusterLimitError as error:
    raise WorkflowError(str(error)) from None
# For the Slurm profile's default-resources (runtime of the rules cluster.rules does not list).
os.environ.update(
    MIXCE_MAX_RUNTIME=str(MAX_RUNTIME if MAX_RUNTIME is not None else 10**9)
)
# Training rules resume from their checkpoint: past the limit they run as a chain of
# attempts of at most MAX_RUNTIME minutes (the profile signals them 5 minutes before it).
TRAINING_RULES = ("pretrain", "finetune")
# On a cluster, the jobs of these rules for one model variant go to Slurm together: group
# jobs of whole components (a sample and its score, or a perplexity), as many as fit in
# cluster.group_runtime minutes (and max_runtime). Group ids are MODEL_PARTS_<variant>_<part>,
# all under the name MODEL_PARTS, whose --group-components in slurm/config.yaml lets a
# group span its components. A group job runs its jobs one after another (model_jobs);
# each job loads its model once for all its seeds.
MODEL_PARTS = "model_parts"
GROUPED_RULES = ("sample", "score_samples", "perplexity")
# Rules whose config runtime is per sample file. A job of these rules does every sampling
# seed of its (model, split, decoding) with the model and featurizers loaded once, unless
# that would not fit cluster.max_runtime: then the rule has one job per seed (seed_files).
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
    if isinstance(value, dict):
        return value.get(wildcards.get("model"), value["default"])
    return value


def _every_seed_fits(name):
    if MAX_RUNTIME is None or not GPT2_ENABLED:
        return True
    per_file = max(
        _per_model(_rule_spec(name)["runtime"], {"model": m}) for m in GPT2_MODELS
    )
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
    """Files ``path`` (with ``{seed}``) of a job of ``name`` (one of PER_SEED_RULES): one per
    sampling seed, or ``path`` itself where the rule has one job per seed (JOB_PER_SEED).
    """
    if name in JOB_PER_SEED:
        return path
    return expand(path, seed=SAMPLE_SEEDS, allow_missing=True)


def seed_stem(name, stem):
    """Log / benchmark stem of a job of ``name`` (seed{seed} appended when one per seed)."""
    return f"{stem}/seed{{seed}}" if name in JOB_PER_SEED else stem


def runtime_estimate(name, wildcards):
    """Minutes one job of rule ``name`` is estimated to take (config cluster.rules), before
    any cap: per model, x the job's sample files for PER_SEED_RULES (greedy or one job per
    seed: one), and for finetune x the variant's share of the training texts."""
    spec = _rule_spec(name)
    minutes = _per_model(spec["runtime"], wildcards)
    if name in PER_SEED_RULES and name not in JOB_PER_SEED:
        minutes *= 1 if wildcards.get("decoding") == "greedy" else len(SAMPLE_SEEDS)
    if spec.get("scale_with_train_size") and wildcards.get("variant", BASE) != BASE:
        n_train = parse_variant(wildcards.get("variant")).n_train
        minutes *= max(0.25, n_train / GPT2["finetune"]["train_size"])
    return minutes


# --------------------------------------------------------------------------- training chains


def _training_estimates(name):
    """Estimated minutes of the planned jobs of a training rule."""
    if name == "finetune":
        jobs = [{"model": m, "variant": v} for _, m, v in FINETUNE_PLAN]
    else:
        models = GPT2_MODELS if GPT2_ENABLED else []
        jobs = [
            {"model": m}
            for m in models
            if model_spec(m)["source"] not in ("hub", "local")
        ]
    return [runtime_estimate(name, wc) for wc in jobs]


if workflow.is_main_process:
    for _name in TRAINING_RULES:
        _longest = max(_training_estimates(_name), default=0)
        try:
            _attempts = training_attempts(_longest, MAX_RUNTIME)
        except ClusterLimitError as error:
            raise WorkflowError(f"{_name} jobs: {error}") from None
        if _attempts > 1:
            print(
                f"cluster.max_runtime = {MAX_RUNTIME} min: {_name} jobs estimated at up to "
                f"{_longest:.0f} min run as chains of up to {_attempts} attempts of at most "
                f"{MAX_RUNTIME} min, each resuming from the last one's checkpoint (retries: "
                f"{_attempts - 1} + the run's retries; --retries 0: one attempt)",
                file=sys.stderr,
            )


_RETRIES_SET = set()


def _set_chain_retries(name):
    """Give training rule ``name`` the retries its chains need (mixce.cluster.chain_retries),
    once, when its first job is planned: the run's --retries is known only then (not while
    the rules are parsed), and --retries 0 means no resubmission, chains included."""
    if name in _RETRIES_SET:
        return
    _RETRIES_SET.add(name)
    settings = getattr(workflow, "execution_settings", None)
    spare = settings.retries if settings is not None else 0
    retries = chain_retries(_training_estimates(name), MAX_RUNTIME, spare)
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
    """(dataset, model, variant, split, decoding) of each planned component (a sample job and
    its score job; split and decoding None for a perplexity) -> (group id, factor of
    mixce.cluster.group_factor). Each variant's components, in the plan's order, are cut into
    parts of as many as fit in cluster.group_runtime (at most max_runtime); a model whose
    component does not fit is not grouped (and said so)."""
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
        factor = group_factor(minutes, size, MAX_RUNTIME)
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
    key = (wildcards.dataset, wildcards.model, wildcards.variant)
    return GROUP_PARTS.get(key + (wildcards.get("split"), wildcards.get("decoding")))


def model_group(wildcards):
    """`group:` of the rules in GROUPED_RULES: the job's part, or None (not grouped). The id
    is registered under MODEL_PARTS (as Snakemake does for a group string with wildcards),
    so that the profile's --group-components MODEL_PARTS=N merges a part's components.
    """
    part = _part(wildcards)
    if part is None:
        return None
    workflow.parent_groupids[part[0]] = MODEL_PARTS
    return part[0]


def cluster_resources(name):
    """The resources of the jobs of one rule, from config cluster.rules.<name>: gpu as a
    number; runtime and mem_mb as functions of the job's wildcards (and attempt), capped by
    cluster.max_runtime (mixce.cluster.job_runtime: training rules ask for their estimate,
    at most the cap, on every attempt; grouped jobs stay within their group's share) and
    cluster.max_mem_mb. The rule's script reads its gpu resource (mixce.device.job_gpus): a
    device setting ``auto`` is the GPU the job was given, and a job given one stops at once
    when torch cannot use CUDA (no silent CPU fallback)."""
    spec = _rule_spec(name)
    training = name in TRAINING_RULES
    grouped = name in GROUPED_RULES

    def runtime(wildcards, attempt):
        if training:
            _set_chain_retries(name)
        part = _part(wildcards) if grouped else None
        return job_runtime(
            runtime_estimate(name, wildcards),
            attempt,
            MAX_RUNTIME,
            training=training,
            group=part[1] if part else None,
        )

    def mem_mb(wildcards):
        value = _per_model(spec["mem_mb"], wildcards)
        cap = CLUSTER.get("max_mem_mb")
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
