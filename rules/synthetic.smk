# Synthetic experiments (paper section 4.1): target P -> data -> Q per objective and eta
# -> runs / best eta -> Tables 1, 6, 7, 11 and the eta figure.


rule synthetic_target:
    input:
        texts=real_text_file,
    output:
        npz=target_path("{init}", "{vocab}", "{seed}"),
        meta=target_path("{init}", "{vocab}", "{seed}", ext="json"),
    log:
        results("logs", "synthetic_target", "{init}", "V{vocab}", "seed{seed}.log"),
    benchmark:
        results(
            "benchmarks", "synthetic_target", "{init}", "V{vocab}", "seed{seed}.tsv"
        )
    conda:
        "../envs/torch.yaml"
    resources:
        **cluster_resources("synthetic_target"),
    params:
        code=code(),
        spec=lambda wc: init_spec(wc.init),
        vocab_size=lambda wc: int(wc.vocab),
        seed=lambda wc: int(wc.seed),
        alpha=dirichlet_alpha,
        # protocol point synthetic_zeroing, for random inits only (real text zeroes nothing)
        zeroing=lambda wc: (
            protocol("synthetic_zeroing")["synthetic_zeroing"]
            if init_spec(wc.init)["kind"] == "random"
            else None
        ),
        texts=real_text_settings,
    script:
        "scripts/synthetic_target.py"


rule synthetic_data:
    input:
        target=target_path("{init}", "{vocab}", "{seed}"),
    output:
        npz=data_path("{init}", "{vocab}", "{seed}"),
        summary=data_path("{init}", "{vocab}", "{seed}", ext="json"),
    log:
        results("logs", "synthetic_data", "{init}", "V{vocab}", "seed{seed}.log"),
    benchmark:
        results("benchmarks", "synthetic_data", "{init}", "V{vocab}", "seed{seed}.tsv")
    conda:
        "../envs/torch.yaml"
    resources:
        **cluster_resources("synthetic_data"),
    params:
        code=code(),
        n_train=SYN["data"]["n_train"],
        n_dev=SYN["data"]["n_dev"],
        max_length=SYN["data"]["max_length"],
        seed=lambda wc: int(wc.seed),
    script:
        "scripts/synthetic_data.py"


rule synthetic_train:
    input:
        targets=train_inputs("target"),
        data=train_inputs("data"),
    output:
        json=results(
            "synthetic", "train", "{init}", "V{vocab}", "{objective}", "eta{eta}.json"
        ),
        log_csv=results(
            "synthetic",
            "train",
            "{init}",
            "V{vocab}",
            "{objective}",
            "eta{eta}.log.csv",
        ),
    log:
        results(
            "logs",
            "synthetic_train",
            "{init}",
            "V{vocab}",
            "{objective}",
            "eta{eta}.log",
        ),
    benchmark:
        results(
            "benchmarks",
            "synthetic_train",
            "{init}",
            "V{vocab}",
            "{objective}",
            "eta{eta}.tsv",
        )
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        **cluster_resources("synthetic_train"),
    params:
        code=code(),
        init=lambda wc: wc.init,
        vocab_size=lambda wc: int(wc.vocab),
        objective=lambda wc: wc.objective,
        eta=lambda wc: float(wc.eta),
        seeds=SEEDS,
        # with the protocol points synthetic_js_clamp (JS) and synthetic_forced_eos
        train=train_params,
    script:
        "scripts/synthetic_train.py"


rule synthetic_summary:
    input:
        runs=train_outputs(),
    output:
        **SUMMARY,
    log:
        results("logs", "synthetic_summary", "summary.log"),
    benchmark:
        results("benchmarks", "synthetic_summary", "summary.tsv")
    conda:
        "../envs/report.yaml"
    params:
        code=code(),
    script:
        "scripts/synthetic_summary.py"


rule synthetic_tables:
    input:
        selected=SUMMARY["selected"],
    output:
        **{
            name: path
            for table in TABLES
            for name, path in table_outputs(
                table, "1. Synthetic track (section 4.1)"
            ).items()
        },
    log:
        results("logs", "synthetic_tables", "tables.log"),
    benchmark:
        results("benchmarks", "synthetic_tables", "tables.tsv")
    conda:
        "../envs/report.yaml"
    params:
        code=code(),
        tables=SYN["tables"],
        specs={init: init_spec(init) for init in INITS},
    script:
        "scripts/synthetic_tables.py"


rule synthetic_figure:
    input:
        curve=SUMMARY["eta_curve"],
    output:
        pdf=report(
            f"{FIGURE_STEM}.pdf",
            caption="report/synthetic_eta.rst",
            category="1. Synthetic track (section 4.1)",
            subcategory="Figures",
            labels={"figure": "Eta figure", "format": "Print (PDF)"},
        ),
        png=report(
            f"{FIGURE_STEM}.png",
            caption="report/synthetic_eta.rst",
            category="1. Synthetic track (section 4.1)",
            subcategory="Figures",
            labels={"figure": "Eta figure", "format": "PNG"},
        ),
    log:
        results("logs", "synthetic_figure", "figure.log"),
    benchmark:
        results("benchmarks", "synthetic_figure", "figure.tsv")
    conda:
        "../envs/report.yaml"
    params:
        code=code(),
        inits=INITS,
        specs={init: init_spec(init) for init in INITS},
    script:
        "scripts/synthetic_figure.py"
