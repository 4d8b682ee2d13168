# GPT-2 track, model selection (paper section 4.2): the best MixCE eta per dataset and model
# by dev MAUVE of unbiased samples (Table 12), the best top-p per model (Table 3). A
# checkpoint: the controlled metrics run on the models it selects.


checkpoint select_models:
    input:
        samples=metrics_tables()["samples"],
    output:
        **SELECTION,
    log:
        results("logs", "select_models", "select_models.log"),
    benchmark:
        results("benchmarks", "select_models", "select_models.tsv")
    conda:
        "../envs/report.yaml"
    params:
        code=code(),
        n_train=GPT2["finetune"]["train_size"],
        selected_eta=GPT2["selected_eta"],
        datasets=GPT2_DATASETS,
        models=GPT2_MODELS,
        objectives=GPT2["finetune"]["objectives"],
    script:
        "scripts/gpt2_select.py"


rule controlled_human:
    input:
        unpack(featurizer_inputs),
        texts=split_path("{dataset}", "test"),
        tokenizer=TOKENIZER_DIR,
    output:
        features=results("metrics", "controlled", "{dataset}", "human.npz"),
        scores=results("metrics", "controlled", "{dataset}", "human.json"),
    log:
        results("logs", "controlled_human", "{dataset}.log"),
    benchmark:
        results("benchmarks", "controlled_human", "{dataset}.tsv")
    conda:
        "../envs/eval.yaml"
    threads: 2
    resources:
        **cluster_resources("controlled_human"),
    params:
        code=code(),
        featurizers=FEATURIZERS,
        controlled=METRICS["controlled"],
        n_prompts=GPT2["sampling"]["n_prompts"],
        max_length=GPT2["finetune"]["max_length"],  # official: human texts cut before it
        protocol=protocol("controlled_fragments", "coherence_split"),
        mauve_seed=METRICS["mauve"]["seed"],
        batch_size=METRICS["batch_size"],
        device=METRICS["device"],
    script:
        "scripts/gpt2_controlled.py"


rule controlled:
    input:
        unpack(featurizer_inputs),
        samples=seed_files(
            "controlled",
            "samples",
            "{dataset}",
            "{model}",
            "{variant}",
            "test",
            "unbiased",
            "seed{seed}.jsonl",
        ),
        human=results("metrics", "controlled", "{dataset}", "human.npz"),
        tokenizer=TOKENIZER_DIR,
    output:
        scores=seed_files(
            "controlled",
            "metrics",
            "controlled",
            "{dataset}",
            "{model}",
            "{variant}",
            "seed{seed}.json",
        ),
    log:
        seed_job_name(
            "controlled", "logs", "controlled", "{dataset}", "{model}", "{variant}"
        )
        + ".log",
    benchmark:
        seed_job_name(
            "controlled",
            "benchmarks",
            "controlled",
            "{dataset}",
            "{model}",
            "{variant}",
        )
        + ".tsv"
    conda:
        "../envs/eval.yaml"
    threads: 1
    resources:
        **cluster_resources("controlled"),
    params:
        code=code(),
        featurizers=FEATURIZERS,
        controlled=METRICS["controlled"],
        n_prompts=None,
        protocol=protocol("controlled_fragments", "coherence_split"),
        mauve_seed=METRICS["mauve"]["seed"],
        batch_size=METRICS["batch_size"],
        device=METRICS["device"],
    script:
        "scripts/gpt2_controlled.py"


rule collect_controlled:
    input:
        scores=controlled_inputs,
    output:
        results("metrics", "controlled.csv"),
    log:
        results("logs", "collect_controlled", "collect_controlled.log"),
    benchmark:
        results("benchmarks", "collect_controlled", "collect_controlled.tsv")
    conda:
        "../envs/eval.yaml"
    params:
        code=code(),
    script:
        "scripts/gpt2_collect_controlled.py"
