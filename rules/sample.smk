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
        samples=seed_files("sample", "samples", *SAMPLE_DIR, "seed{seed}.jsonl"),
        summaries=seed_files("sample", "samples", *SAMPLE_DIR, "seed{seed}.json"),
    log:
        seed_job_name("sample", "logs", "sample", *SAMPLE_DIR) + ".log",
    benchmark:
        seed_job_name("sample", "benchmarks", "sample", *SAMPLE_DIR) + ".tsv"
    wildcard_constraints:
        decoding="unbiased|top_p[0-9.]+",
    group:
        model_group
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        **cluster_resources("sample"),
    params:
        code=code(),
        decoding=lambda wc: wc.decoding,
        max_new_tokens=GPT2["sampling"]["max_new_tokens"],
        prompt_tokens=GPT2["sampling"]["prompt_tokens"],
        n_prompts=GPT2["sampling"]["n_prompts"],
        batch_size=GPT2["sampling"]["batch_size"],
        max_length=GPT2["finetune"]["max_length"],  # generation_length official: the cap
        device=GPT2["sampling"]["device"],
        protocol=sample_protocol(),
    script:
        "scripts/gpt2_sample.py"


use rule sample as sample_greedy with:
    output:
        samples=results("samples", *SAMPLE_DIR, f"seed{SAMPLE_SEEDS[0]}.jsonl"),
        summaries=results("samples", *SAMPLE_DIR, f"seed{SAMPLE_SEEDS[0]}.json"),
    log:
        results("logs", "sample", *SAMPLE_DIR) + ".log",
    benchmark:
        results("benchmarks", "sample", *SAMPLE_DIR) + ".tsv"
    wildcard_constraints:
        decoding="greedy",
