# GPT-2 track, metrics: human features and scores once per (dataset, split); the sample
# files of every seed of a (model, split, decoding) against them in one job (MAUVE,
# coherence, diversity, length); test perplexity of every finetuned model; all of it
# collected into tidy CSVs.


# The params of score_human and score_samples alike (the released human text is cut at
# max_length - 1 tokens).
SCORE_PARAMS = dict(
    featurizers=FEATURIZERS,
    max_length=GPT2["finetune"]["max_length"],
    mauve_seed=METRICS["mauve"]["seed"],
    self_bleu=METRICS["self_bleu"],
    batch_size=METRICS["batch_size"],
    device=METRICS["device"],
    protocol=protocol("diversity", "text_length", "length_cuts", "newlines", "coherence_split"),
)


rule fetch_featurizer:
    output:
        directory(resource("featurizers", "{role}")),
    log:
        log_path("fetch_featurizer", "{role}", root=resource),
    benchmark:
        benchmark_path("fetch_featurizer", "{role}", root=resource)
    conda:
        "../envs/eval.yaml"
    params:
        code=code(),
        spec=lambda wc: FEATURIZERS[wc.role],
    script:
        "scripts/gpt2_fetch_featurizer.py"


rule score_human:
    input:
        unpack(featurizer_inputs),
        texts=split_path("{dataset}", "{split}"),
        tokenizer=TOKENIZER_DIR,
    output:
        features=results("metrics", "human", "{dataset}", "{split}.npz"),
        scores=results("metrics", "human", "{dataset}", "{split}.json"),
    log:
        log_path("score_human", "{dataset}/{split}"),
    benchmark:
        benchmark_path("score_human", "{dataset}/{split}")
    conda:
        "../envs/eval.yaml"
    threads: 2
    resources:
        **cluster_resources("score_human"),
    params:
        **SCORE_PARAMS,
        **PROMPTS,
        code=code(),
        lengths=MAUVE_LENGTHS,
        seeds=SAMPLE_SEEDS,  # one human-vs-human split per sampling seed
    script:
        "scripts/gpt2_score_human.py"


rule score_samples:
    input:
        unpack(featurizer_inputs),
        samples=seed_files("score_samples", results("samples", SAMPLE, "seed{seed}.jsonl")),
        human=rules.score_human.output.features,
        texts=split_path("{dataset}", "{split}"),
        tokenizer=TOKENIZER_DIR,
    output:
        scores=seed_files("score_samples", results("metrics/samples", SAMPLE, "seed{seed}.json")),
    log:
        log_path("score_samples", seed_stem("score_samples", SAMPLE)),
    benchmark:
        benchmark_path("score_samples", seed_stem("score_samples", SAMPLE))
    wildcard_constraints:
        decoding="unbiased|top_p[0-9.]+",
    group:
        model_group
    conda:
        "../envs/eval.yaml"
    resources:
        **cluster_resources("score_samples"),
    params:
        **SCORE_PARAMS,
        code=code(),
        # every cut for unbiased dev files (Figure 4), else the largest (the main MAUVE)
        lengths=lambda wc: (
            MAUVE_LENGTHS if (wc.decoding, wc.split) == ("unbiased", "dev") else MAUVE_LENGTHS[-1:]
        ),
    script:
        "scripts/gpt2_score_samples.py"


rule perplexity:
    input:
        model=results("finetune", VARIANT, "model"),
        texts=split_path("{dataset}", "test"),
        tokenizer=TOKENIZER_DIR,
    output:
        results("metrics", "perplexity", f"{VARIANT}.json"),
    log:
        log_path("perplexity", VARIANT),
    benchmark:
        benchmark_path("perplexity", VARIANT)
    group:
        model_group
    conda:
        "../envs/torch.yaml"
    resources:
        **cluster_resources("perplexity"),
    params:
        code=code(),
        max_length=GPT2["finetune"]["max_length"],  # texts encoded as in finetuning
        batch_size=METRICS["batch_size"],
        device=METRICS["device"],
        protocol=protocol("perplexity_average", "newlines"),
    script:
        "scripts/gpt2_perplexity.py"


rule collect_metrics:
    input:
        # every finetuned model's unbiased and top-p files are scored
        samples=[
            results("metrics", "samples", f"{job.path}.json")
            for job in sample_jobs(GPT2)
            if job.variant != BASE and job.decoding != "greedy"
        ],
        human=[
            results("metrics", "human", d, f"{s}.json")
            for d in GPT2_DATASETS
            for s in GPT2["sampling"]["splits"]
        ],
        perplexity=[results("metrics", "perplexity", *key) + ".json" for key in FINETUNE_PLAN],
    output:
        **METRICS_TABLES,
    log:
        log_path("collect_metrics"),
    benchmark:
        benchmark_path("collect_metrics")
    conda:
        "../envs/eval.yaml"
    params:
        code=code(),
        lengths=MAUVE_LENGTHS,
    script:
        "scripts/gpt2_collect_metrics.py"
