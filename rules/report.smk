# GPT-2 track, the paper's tables (2, 3, 5, 8, 9, 10, 12) and figures (2, 4), and the
# human-evaluation kit of Table 4.


rule gpt2_tables:
    input:
        **metrics_tables(),
        **SELECTION,
        controlled=results("metrics", "controlled.csv"),
    output:
        **{
            name: path
            for table in GPT2_TABLES
            for name, path in table_outputs(
                table, "2. GPT-2 track (section 4.2)"
            ).items()
        },
    log:
        results("logs", "gpt2_tables", "gpt2_tables.log"),
    benchmark:
        results("benchmarks", "gpt2_tables", "gpt2_tables.tsv")
    conda:
        "../envs/report.yaml"
    params:
        code=code(),
        datasets=GPT2_DATASETS,
        models=GPT2_MODELS,
        main_n_train=GPT2["finetune"]["train_size"],
    script:
        "scripts/gpt2_tables.py"


rule nll_figure2:
    input:
        model=lambda wc: base_model_dir(wc.model),
        texts=split_path("{dataset}", "test"),
        unbiased=results(
            "samples", "{dataset}", "{model}", BASE, "test", "unbiased", "seed0.jsonl"
        ),
        greedy=results(
            "samples", "{dataset}", "{model}", BASE, "test", "greedy", "seed0.jsonl"
        ),
        tokenizer=TOKENIZER_DIR,
    output:
        results("metrics", "nll", "{dataset}", "{model}.npz"),
    log:
        results("logs", "nll_figure2", "{dataset}", "{model}.log"),
    benchmark:
        results("benchmarks", "nll_figure2", "{dataset}", "{model}.tsv")
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        **cluster_resources("nll_figure2"),
    params:
        code=code(),
        prompt_tokens=GPT2["sampling"]["prompt_tokens"],
        max_new_tokens=GPT2["sampling"]["max_new_tokens"],
        n_prompts=GPT2["sampling"]["n_prompts"],
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
        pdf=report(
            figure_files("figure2")[0],
            caption="report/figure2.rst",
            category="2. GPT-2 track (section 4.2)",
            subcategory="Figures",
            labels={"figure": "Figure 2", "format": "Print (PDF)"},
        ),
        png=report(
            figure_files("figure2")[1],
            caption="report/figure2.rst",
            category="2. GPT-2 track (section 4.2)",
            subcategory="Figures",
            labels={"figure": "Figure 2", "format": "PNG"},
        ),
    log:
        results("logs", "figure2", "figure2.log"),
    benchmark:
        results("benchmarks", "figure2", "figure2.tsv")
    conda:
        "../envs/report.yaml"
    params:
        code=code(),
        datasets=GPT2_DATASETS,
    script:
        "scripts/gpt2_figure2.py"


rule figure4:
    input:
        samples=metrics_tables()["samples"],
    output:
        pdf=report(
            figure_files("figure4")[0],
            caption="report/figure4.rst",
            category="2. GPT-2 track (section 4.2)",
            subcategory="Figures",
            labels={"figure": "Figure 4", "format": "Print (PDF)"},
        ),
        png=report(
            figure_files("figure4")[1],
            caption="report/figure4.rst",
            category="2. GPT-2 track (section 4.2)",
            subcategory="Figures",
            labels={"figure": "Figure 4", "format": "PNG"},
        ),
    log:
        results("logs", "figure4", "figure4.log"),
    benchmark:
        results("benchmarks", "figure4", "figure4.tsv")
    conda:
        "../envs/report.yaml"
    params:
        code=code(),
        datasets=GPT2_DATASETS,
        models=GPT2_MODELS,
        lengths=MAUVE_LENGTHS,
    script:
        "scripts/gpt2_figure4.py"


rule human_eval_pairs:
    input:
        mle=lambda wc: [
            results(
                "samples",
                d,
                GPT2["human_eval"]["model"],
                f"mle_n{GPT2['finetune']['train_size']}",
                "test",
                "unbiased",
                f"seed{GPT2['sampling']['seeds'][0]}.jsonl",
            )
            for d in GPT2_DATASETS
        ],
        mixce=lambda wc: [
            results(
                "samples",
                d,
                m,
                v,
                "test",
                "unbiased",
                f"seed{GPT2['sampling']['seeds'][0]}.jsonl",
            )
            for d, m, v in selected_variants()
            if m == GPT2["human_eval"]["model"] and not v.startswith("mle")
        ],
    output:
        pairs=results("human_eval", "pairs.csv"),
        key=results("human_eval", "key.csv"),
        counts=results("human_eval", "counts.json"),
    log:
        results("logs", "human_eval_pairs", "human_eval_pairs.log"),
    benchmark:
        results("benchmarks", "human_eval_pairs", "human_eval_pairs.tsv")
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
        key=results("human_eval", "key.csv"),
    output:
        **table_outputs("table4", "2. GPT-2 track (section 4.2)"),
    log:
        results("logs", "human_eval_table", "human_eval_table.log"),
    benchmark:
        results("benchmarks", "human_eval_table", "human_eval_table.tsv")
    conda:
        "../envs/report.yaml"
    params:
        code=code(),
        seed=GPT2["human_eval"]["seed"],
    script:
        "scripts/gpt2_human_eval_table.py"


rule objectives_report:
    input:
        **metrics_tables(),
        settings=SELECTION["settings"],
    output:
        **table_outputs("objectives", "3. Beyond the paper", label="Objectives"),
        pdf=report(
            figure_files("quality_diversity")[0],
            caption="report/quality_diversity.rst",
            category="3. Beyond the paper",
            subcategory="Figures",
            labels={"figure": "Quality-diversity", "format": "Print (PDF)"},
        ),
        png=report(
            figure_files("quality_diversity")[1],
            caption="report/quality_diversity.rst",
            category="3. Beyond the paper",
            subcategory="Figures",
            labels={"figure": "Quality-diversity", "format": "PNG"},
        ),
    log:
        results("logs", "objectives_report", "objectives_report.log"),
    benchmark:
        results("benchmarks", "objectives_report", "objectives_report.tsv")
    conda:
        "../envs/report.yaml"
    params:
        code=code(),
        datasets=GPT2_DATASETS,
        models=GPT2_MODELS,
        objectives=GPT2["finetune"]["objectives"],
    script:
        "scripts/gpt2_objectives.py"
