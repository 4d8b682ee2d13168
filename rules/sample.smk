# GPT-2 track, sampling: one job per (dataset, model, variant, split, decoding, seed);
# prompts are the first tokens of the split's texts. Protocol points: generation_length
# (where samples stop) and precision (the forward pass's dtype).


rule sample:
    input:
        model=lambda wc: model_dir(wc.dataset, wc.model, wc.variant),
        tokenizer=TOKENIZER_DIR,
        texts=split_path("{dataset}", "{split}"),
    output:
        samples=results(
            "samples",
            "{dataset}",
            "{model}",
            "{variant}",
            "{split}",
            "{decoding}",
            "seed{seed}.jsonl",
        ),
        summary=results(
            "samples",
            "{dataset}",
            "{model}",
            "{variant}",
            "{split}",
            "{decoding}",
            "seed{seed}.json",
        ),
    log:
        results(
            "logs",
            "sample",
            "{dataset}",
            "{model}",
            "{variant}",
            "{split}",
            "{decoding}",
            "seed{seed}.log",
        ),
    benchmark:
        results(
            "benchmarks",
            "sample",
            "{dataset}",
            "{model}",
            "{variant}",
            "{split}",
            "{decoding}",
            "seed{seed}.tsv",
        )
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
        seed=lambda wc: int(wc.seed),
        max_new_tokens=GPT2["sampling"]["max_new_tokens"],
        prompt_tokens=GPT2["sampling"]["prompt_tokens"],
        n_prompts=GPT2["sampling"]["n_prompts"],
        batch_size=GPT2["sampling"]["batch_size"],
        max_length=GPT2["finetune"]["max_length"],  # generation_length official: the cap
        device=GPT2["sampling"]["device"],
        protocol=sample_protocol(),
    script:
        "../scripts/gpt2_sample.py"
