# GPT-2 track, finetuning: one job per (dataset, model, variant), every objective through
# the same loop (mixce.gpt2.train); resumes from its checkpoint when rerun after a kill. An
# objective that trains through a frozen reference model (LFD) gets it as input.reference.


rule finetune:
    input:
        base=lambda wc: base_model_dir(wc.model),
        reference=reference_model,
        tokenizer=TOKENIZER_DIR,
        train=split_path("{dataset}", "train"),
        dev=split_path("{dataset}", "dev"),
    output:
        model=directory(results("finetune", VARIANT, "model")),
        log_csv=results("finetune", VARIANT, "log.csv"),
        summary=results("finetune", VARIANT, "summary.json"),
    log:
        log_path("finetune", VARIANT),
    benchmark:
        benchmark_path("finetune", VARIANT)
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        **cluster_resources("finetune"),
    params:
        code=code(),
        settings=lambda wc: model_train_settings(GPT2, wc.model, planned_finetune(wc)),
        protocol=protocol(
            "grad_clip", "grad_accumulation", "precision", "perplexity_average", "newlines"
        ),
        reference=lambda wc: planned_finetune(wc).reference,
        architecture=None,
        work_dir=lambda wc: results("work", "finetune", wc.dataset, wc.model, wc.variant),
        checkpoint_every=GPT2["finetune"]["checkpoint_every"],
        device=GPT2["finetune"]["device"],
        n_train=lambda wc: parse_variant(wc.variant).n_train,
    script:
        "scripts/gpt2_train.py"
