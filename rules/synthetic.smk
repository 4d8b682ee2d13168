# Synthetic experiments (paper section 4.1): target P -> data -> Q per objective and eta
# -> runs / best eta -> Tables 1, 6, 7, 11 and the eta figure.


rule synthetic_target:
    input:
        texts=real_text_file,
    output:
        npz=results("synthetic", "target", f"{SYN_SEED}.npz"),
        meta=results("synthetic", "target", f"{SYN_SEED}.json"),
    log:
        log_path("synthetic_target", SYN_SEED),
    benchmark:
        benchmark_path("synthetic_target", SYN_SEED)
    conda:
        "../envs/torch.yaml"
    resources:
        **cluster_resources("synthetic_target"),
    params:
        code=code(),
        spec=lambda wc: SYN["inits"][wc.init],
        vocab_size=lambda wc: int(wc.vocab),
        seed=lambda wc: int(wc.seed),
        # for random inits only: the Dirichlet concentration and the protocol point
        # synthetic_zeroing (real text zeroes nothing)
        alpha=lambda wc: SYN["dirichlet_alpha"] if random_init(wc) else None,
        zeroing=lambda wc: ZEROING if random_init(wc) else None,
        texts=real_text_settings,
    script:
        "scripts/synthetic_target.py"


rule synthetic_data:
    input:
        target=rules.synthetic_target.output.npz,
    output:
        npz=results("synthetic", "data", f"{SYN_SEED}.npz"),
        summary=results("synthetic", "data", f"{SYN_SEED}.json"),
    log:
        log_path("synthetic_data", SYN_SEED),
    benchmark:
        benchmark_path("synthetic_data", SYN_SEED)
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
        targets=synthetic_seeds("target"),
        data=synthetic_seeds("data"),
    output:
        json=results("synthetic", "train", f"{SYN_RUN}.json"),
        log_csv=results("synthetic", "train", f"{SYN_RUN}.log.csv"),
    log:
        log_path("synthetic_train", SYN_RUN),
    benchmark:
        benchmark_path("synthetic_train", SYN_RUN)
    conda:
        "../envs/torch.yaml"
    resources:
        **cluster_resources("synthetic_train"),
    params:
        code=code(),
        init=lambda wc: wc.init,
        vocab_size=lambda wc: int(wc.vocab),
        objective=lambda wc: wc.objective,
        eta=lambda wc: float(wc.eta),
        seeds=SEEDS,
        # the TrainConfig fields its objective and estimator use, with the protocol points
        # synthetic_js_clamp (JS) and synthetic_forced_eos
        train=lambda wc: train_settings(config, wc.objective),
    script:
        "scripts/synthetic_train.py"


rule synthetic_summary:
    input:
        runs=[
            results("synthetic", "train", init, f"V{vocab}", obj, f"eta{eta_str(eta)}.json")
            for init in INITS
            for vocab in SYN["vocab_sizes"]
            for obj in OBJECTIVES
            for eta in objective_etas(obj, SYN["etas"])
        ],
    output:
        **SUMMARY,
    log:
        log_path("synthetic_summary"),
    benchmark:
        benchmark_path("synthetic_summary")
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
        **table_outputs(TABLES, SYN_CATEGORY),
    log:
        log_path("synthetic_tables"),
    benchmark:
        benchmark_path("synthetic_tables")
    conda:
        "../envs/report.yaml"
    params:
        code=code(),
        tables=SYN["tables"],
        specs={init: SYN["inits"][init] for init in INITS},
    script:
        "scripts/synthetic_tables.py"


rule synthetic_figure:
    input:
        curve=SUMMARY["eta_curve"],
    output:
        **figure_outputs("synthetic_eta", SYN_CATEGORY, "Eta figure"),
    log:
        log_path("synthetic_figure"),
    benchmark:
        benchmark_path("synthetic_figure")
    conda:
        "../envs/report.yaml"
    params:
        code=code(),
        inits=INITS,
        specs={init: SYN["inits"][init] for init in INITS},
    script:
        "scripts/synthetic_figure.py"
