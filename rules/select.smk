# GPT-2 track, model selection (paper section 4.2): the best MixCE eta per dataset and model
# by dev MAUVE of unbiased samples (Table 12), the best top-p per model (Table 3). A
# checkpoint: the controlled metrics run on the models it selects.


checkpoint select_models:
    input:
        samples=METRICS_TABLES["samples"],
    output:
        **SELECTION,
    log:
        log_path("select_models"),
    benchmark:
        benchmark_path("select_models")
    conda:
        "../envs/report.yaml"
    params:
        code=code(),
        n_train=N_MAIN,
        selected_eta=GPT2["selected_eta"],
        datasets=GPT2_DATASETS,
        models=GPT2_MODELS,
        objectives=GPT2["finetune"]["objectives"],
    script:
        "scripts/gpt2_select.py"


# The params of controlled_human and controlled alike.
CONTROLLED_PARAMS = dict(
    featurizers=FEATURIZERS,
    controlled=METRICS["controlled"],
    protocol=protocol("controlled_fragments", "coherence_split"),
    mauve_seed=METRICS["mauve"]["seed"],
    batch_size=METRICS["batch_size"],
    device=METRICS["device"],
)


rule controlled_human:
    input:
        unpack(featurizer_inputs),
        texts=split_path("{dataset}", "test"),
        tokenizer=TOKENIZER_DIR,
    output:
        features=results("metrics", "controlled", "{dataset}", "human.npz"),
        scores=results("metrics", "controlled", "{dataset}", "human.json"),
    log:
        log_path("controlled_human", "{dataset}"),
    benchmark:
        benchmark_path("controlled_human", "{dataset}")
    conda:
        "../envs/eval.yaml"
    threads: 2
    resources:
        **cluster_resources("controlled_human"),
    params:
        **CONTROLLED_PARAMS,
        code=code(),
        n_prompts=GPT2["sampling"]["n_prompts"],
        max_length=GPT2["finetune"]["max_length"],  # official: human texts cut before it
    script:
        "scripts/gpt2_controlled.py"


rule controlled:
    input:
        unpack(featurizer_inputs),
        samples=seed_files(
            "controlled", results("samples", VARIANT, "test/unbiased/seed{seed}.jsonl")
        ),
        human=rules.controlled_human.output.features,
        tokenizer=TOKENIZER_DIR,
    output:
        scores=seed_files(
            "controlled", results("metrics", "controlled", VARIANT, "seed{seed}.json")
        ),
    log:
        log_path("controlled", seed_stem("controlled", VARIANT)),
    benchmark:
        benchmark_path("controlled", seed_stem("controlled", VARIANT))
    conda:
        "../envs/eval.yaml"
    resources:
        **cluster_resources("controlled"),
    params:
        **CONTROLLED_PARAMS,
        code=code(),
        n_prompts=None,
    script:
        "scripts/gpt2_controlled.py"


rule collect_controlled:
    input:
        scores=controlled_inputs,
    output:
        results("metrics", "controlled.csv"),
    log:
        log_path("collect_controlled"),
    benchmark:
        benchmark_path("collect_controlled")
    conda:
        "../envs/eval.yaml"
    params:
        code=code(),
    script:
        "scripts/gpt2_collect_controlled.py"
