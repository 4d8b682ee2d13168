# GPT-2 track, sampling: one job per (dataset, model, variant, split, decoding) that loads the
# model once and samples every seed, one file per seed (rules/cluster.smk, seed_files: one
# job per seed where that would not fit cluster.max_runtime; greedy: one file, rule
# sample_greedy); prompts are the first tokens of the split's texts. Protocol points:
# generation_length (where samples stop) and precision (the forward pass's dtype).


rule sample:
    input:
        model=lambda wc: model_dir(wc.dataset, wc.model, wc.variant),
        tokenizer=TOKENIZER_DIR,
        texts=split_path("{dataset}", "{split}"),
    output:
        samples=seed_files("sample", results("samples", SAMPLE, "seed{seed}.jsonl")),
        summaries=seed_files("sample", results("samples", SAMPLE, "seed{seed}.json")),
    log:
        log_path("sample", seed_stem("sample", SAMPLE)),
    benchmark:
        benchmark_path("sample", seed_stem("sample", SAMPLE))
    wildcard_constraints:
        decoding="unbiased|top_p[0-9.]+",
    group:
        model_group
    conda:
        "../envs/torch.yaml"
    resources:
        **cluster_resources("sample"),
    params:
        **PROMPTS,
        code=code(),
        decoding=lambda wc: wc.decoding,
        batch_size=GPT2["sampling"]["batch_size"],
        max_length=GPT2["finetune"]["max_length"],  # generation_length official: the cap
        device=GPT2["sampling"]["device"],
        protocol=sample_protocol(),
    script:
        "scripts/gpt2_sample.py"


use rule sample as sample_greedy with:
    output:
        samples=results("samples", SAMPLE, f"seed{SAMPLE_SEEDS[0]}.jsonl"),
        summaries=results("samples", SAMPLE, f"seed{SAMPLE_SEEDS[0]}.json"),
    log:
        log_path("sample", SAMPLE),
    benchmark:
        benchmark_path("sample", SAMPLE)
    wildcard_constraints:
        decoding="greedy",
