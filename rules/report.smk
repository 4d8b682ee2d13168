# GPT-2 track, the paper's tables (2, 3, 5, 8, 9, 10, 12) and figures (2, 4), and the
# human-evaluation kit of Table 4.


rule gpt2_tables:
    input:
        **METRICS_TABLES,
        **SELECTION,
        controlled=rules.collect_controlled.output[0],
    output:
        **table_outputs(GPT2_TABLES, GPT2_CATEGORY),
    log:
        log_path("gpt2_tables"),
    benchmark:
        benchmark_path("gpt2_tables")
    conda:
        "../envs/report.yaml"
    params:
        code=code(),
        datasets=GPT2_DATASETS,
        models=GPT2_MODELS,
        main_n_train=N_MAIN,
    script:
        "scripts/gpt2_tables.py"


rule nll_figure2:
    input:
        model=lambda wc: base_model_dir(wc.model),
        texts=split_path("{dataset}", "test"),
        unbiased=results("samples", "{dataset}/{model}", BASE, "test/unbiased/seed0.jsonl"),
        greedy=results("samples", "{dataset}/{model}", BASE, "test/greedy/seed0.jsonl"),
        tokenizer=TOKENIZER_DIR,
    output:
        results("metrics", "nll", "{dataset}", "{model}.npz"),
    log:
        log_path("nll_figure2", "{dataset}/{model}"),
    benchmark:
        benchmark_path("nll_figure2", "{dataset}/{model}")
    conda:
        "../envs/torch.yaml"
    resources:
        **cluster_resources("nll_figure2"),
    params:
        **PROMPTS,
        code=code(),
        batch_size=METRICS["batch_size"],
        device=METRICS["device"],
    script:
        "scripts/gpt2_nll.py"


rule figure2:
    input:
        nll=[
            results("metrics", "nll", d, f"{GPT2['figures']['figure2_model']}.npz")
            for d in GPT2_DATASETS
        ],
    output:
        **figure_outputs("figure2", GPT2_CATEGORY, "Figure 2"),
    log:
        log_path("figure2"),
    benchmark:
        benchmark_path("figure2")
    conda:
        "../envs/report.yaml"
    params:
        code=code(),
        datasets=GPT2_DATASETS,
    script:
        "scripts/gpt2_figure2.py"


rule figure4:
    input:
        samples=METRICS_TABLES["samples"],
    output:
        **figure_outputs("figure4", GPT2_CATEGORY, "Figure 4"),
    log:
        log_path("figure4"),
    benchmark:
        benchmark_path("figure4")
    conda:
        "../envs/report.yaml"
    params:
        code=code(),
        datasets=GPT2_DATASETS,
        models=GPT2_MODELS,
        lengths=MAUVE_LENGTHS,
    script:
        "scripts/gpt2_figure4.py"


HUMAN_EVAL_MODEL = GPT2["human_eval"]["model"]


rule human_eval_pairs:
    input:
        mle=test_samples((d, HUMAN_EVAL_MODEL, f"mle_n{N_MAIN}") for d in GPT2_DATASETS),
        mixce=lambda wc: test_samples(
            (d, m, v)
            for d, m, v in selected_variants()
            if m == HUMAN_EVAL_MODEL and not v.startswith("mle")
        ),
    output:
        pairs=results("human_eval", "pairs.csv"),
        key=results("human_eval", "key.csv"),
        counts=results("human_eval", "counts.json"),
    log:
        log_path("human_eval_pairs"),
    benchmark:
        benchmark_path("human_eval_pairs")
    conda:
        "../envs/report.yaml"
    params:
        code=code(),
        datasets=GPT2_DATASETS,
        seed=GPT2["human_eval"]["seed"],
    script:
        "scripts/gpt2_human_eval_pairs.py"


rule human_eval_table:
    input:
        judgments=GPT2["human_eval"]["judgments"] or [],
        key=rules.human_eval_pairs.output.key,
    output:
        **table_outputs(["table4"], GPT2_CATEGORY),
    log:
        log_path("human_eval_table"),
    benchmark:
        benchmark_path("human_eval_table")
    conda:
        "../envs/report.yaml"
    params:
        code=code(),
        seed=GPT2["human_eval"]["seed"],
    script:
        "scripts/gpt2_human_eval_table.py"


rule objectives_report:
    input:
        **METRICS_TABLES,
        settings=SELECTION["settings"],
    output:
        **table_outputs(["objectives"], EXTRA_CATEGORY, label="Objectives"),
        **figure_outputs("quality_diversity", EXTRA_CATEGORY, "Quality-diversity"),
    log:
        log_path("objectives_report"),
    benchmark:
        benchmark_path("objectives_report")
    conda:
        "../envs/report.yaml"
    params:
        code=code(),
        datasets=GPT2_DATASETS,
        models=GPT2_MODELS,
        objectives=GPT2["finetune"]["objectives"],
    script:
        "scripts/gpt2_objectives.py"
