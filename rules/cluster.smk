# Cluster resources of the jobs, from the config's cluster section: GPUs, runtime and
# memory per job (per model size where the config gives one number per model).
import math

CLUSTER = config.get("cluster", {})


def cluster_resources(name):
    """The resources of the jobs of one rule, from config cluster.rules.<name>: gpu as a
    number; runtime and mem_mb as functions of the job's wildcards (and attempt), capped by
    cluster.max_runtime and cluster.max_mem_mb. The rule's script reads its gpu resource
    (mixce.device.job_gpus): a device setting ``auto`` is the GPU the job was given, and a
    job given one stops at once when torch cannot use CUDA (no silent CPU fallback).
    """
    specs = CLUSTER.get("rules", {})
    if name not in specs:
        raise WorkflowError(
            f"config cluster.rules has no entry for {name!r} (its gpu, runtime, mem_mb); "
            f"entries: {sorted(specs)}"
        )
    spec = specs[name]

    def per_model(value, wildcards):
        if isinstance(value, dict):
            return value.get(wildcards.get("model"), value["default"])
        return value

    def capped(value, cap):
        return value if cap is None else min(value, cap)

    def runtime(wildcards, attempt):
        minutes = per_model(spec["runtime"], wildcards)
        if spec.get("scale_with_train_size") and wildcards.get("variant", BASE) != BASE:
            n_train = parse_variant(wildcards.variant).n_train
            minutes *= max(0.25, n_train / GPT2["finetune"]["train_size"])
        return capped(math.ceil(minutes * attempt), CLUSTER.get("max_runtime"))

    def mem_mb(wildcards):
        return capped(per_model(spec["mem_mb"], wildcards), CLUSTER.get("max_mem_mb"))

    resources = {"runtime": runtime, "mem_mb": mem_mb}
    if spec.get("gpu"):
        resources["gpu"] = spec["gpu"]
    return resources
