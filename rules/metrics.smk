# GPT-2 track, metrics: human features and scores once per (dataset, split); the sample
# files of every seed of a (model, split, decoding) against them in one job (MAUVE,
# coherence, diversity, length); test perplexity of every finetuned model; all of it
# collected into tidy CSVs.


localrules:
    fetch_featurizer,


rule fetch_featurizer:
    output:
        directory(featurizer_dir("{role}")),
    log:
        str(Path("resources", "logs", "fetch_featurizer", "{role}.log")),
    benchmark:
        str(Path("resources", "benchmarks", "fetch_featurizer", "{role}.tsv"))
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
        results("logs", "score_human", "{dataset}", "{split}.log"),
    benchmark:
        results("benchmarks", "score_human", "{dataset}", "{split}.tsv")
    conda:
        "../envs/eval.yaml"
    threads: 2
    resources:
        **cluster_resources("score_human"),
    params:
        code=code(),
        featurizers=FEATURIZERS,
        lengths=MAUVE_LENGTHS,
        prompt_tokens=GPT2["sampling"]["prompt_tokens"],
        max_new_tokens=GPT2["sampling"]["max_new_tokens"],
        n_prompts=GPT2["sampling"]["n_prompts"],
        max_length=GPT2["finetune"]["max_length"],  # the released human text: max_length - 1
        mauve_seed=METRICS["mauve"]["seed"],
        seeds=SAMPLE_SEEDS,  # one human-vs-human split per sampling seed
        self_bleu=METRICS["self_bleu"],
        batch_size=METRICS["batch_size"],
        device=METRICS["device"],
        protocol=protocol(
            "diversity", "text_length", "length_cuts", "newlines", "coherence_split"
        ),
    script:
        "scripts/gpt2_score_human.py"


rule score_samples:
    input:
        unpack(featurizer_inputs),
        samples=seed_files("score_samples", "samples", *SAMPLE_DIR, "seed{seed}.jsonl"),
        human=human_features,
        texts=split_path("{dataset}", "{split}"),
        tokenizer=TOKENIZER_DIR,
    output:
        scores=seed_files(
            "score_samples", "metrics", "samples", *SAMPLE_DIR, "seed{seed}.json"
        ),
    log:
        seed_job_name("score_samples", "logs", "score_samples", *SAMPLE_DIR) + ".log",
    benchmark:
        seed_job_name("score_samples", "benchmarks", "score_samples", *SAMPLE_DIR)
        + ".tsv"
    wildcard_constraints:
        decoding="unbiased|top_p[0-9.]+",
    group:
        model_group
    conda:
        "../envs/eval.yaml"
    threads: 1
    resources:
        **cluster_resources("score_samples"),
    params:
        code=code(),
        featurizers=FEATURIZERS,
        lengths=score_lengths,
        max_length=GPT2["finetune"]["max_length"],  # the released human text: max_length - 1
        mauve_seed=METRICS["mauve"]["seed"],
        self_bleu=METRICS["self_bleu"],
        batch_size=METRICS["batch_size"],
        device=METRICS["device"],
        protocol=protocol(
            "diversity", "text_length", "length_cuts", "newlines", "coherence_split"
        ),
    script:
        "scripts/gpt2_score_samples.py"


rule perplexity:
    input:
        model=str(Path(finetune_dir("{dataset}", "{model}", "{variant}"), "model")),
        texts=split_path("{dataset}", "test"),
        tokenizer=TOKENIZER_DIR,
    output:
        results("metrics", "perplexity", "{dataset}", "{model}", "{variant}.json"),
    log:
        results("logs", "perplexity", "{dataset}", "{model}", "{variant}.log"),
    benchmark:
        results("benchmarks", "perplexity", "{dataset}", "{model}", "{variant}.tsv")
    group:
        model_group
    conda:
        "../envs/torch.yaml"
    threads: 1
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
        samples=[score_path(job) for job in scored_sample_jobs()],
        human=[
            results("metrics", "human", d, f"{s}.json")
            for d in GPT2_DATASETS
            for s in GPT2["sampling"]["splits"]
        ],
        perplexity=[
            results("metrics", "perplexity", j.dataset, j.model, f"{j.variant}.json")
            for j in finetune_jobs(GPT2)
        ],
    output:
        **metrics_tables(),
    log:
        results("logs", "collect_metrics", "collect_metrics.log"),
    benchmark:
        results("benchmarks", "collect_metrics", "collect_metrics.tsv")
    conda:
        "../envs/eval.yaml"
    params:
        code=code(),
        lengths=MAUVE_LENGTHS,
    script:
        "scripts/gpt2_collect_metrics.py"
