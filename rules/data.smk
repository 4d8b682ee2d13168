# GPT-2 track, datasets: download (hub / url sources, on the submitting machine) ->
# clean, filter by length, split into dev / test / train (nested train subsets); the
# protocol points data_selection and detokenizer decide how (docs/PROTOCOL.md).


localrules:
    download_dataset,


rule download_dataset:
    input:
        code=code("data/download", "data/sources", "io"),
    output:
        manifest=manifest_path("{dataset}"),
    log:
        str(Path("resources", "logs", "download_dataset", "{dataset}.log")),
    benchmark:
        str(Path("resources", "benchmarks", "download_dataset", "{dataset}.tsv"))
    conda:
        "../envs/torch.yaml"
    params:
        spec=lambda wc: dataset_spec(wc.dataset),
    script:
        "../scripts/gpt2_download.py"


rule prepare_dataset:
    input:
        manifest=dataset_download,
        local=local_dataset_file,
        code=code(
            "data/prepare",
            "data/clean",
            "data/sources",
            "data/embedded",
            "io",
        ),
    output:
        train=split_path("{dataset}", "train"),
        dev=split_path("{dataset}", "dev"),
        test=split_path("{dataset}", "test"),
        report=results("data", "{dataset}", "report.json"),
    log:
        results("logs", "prepare_dataset", "{dataset}.log"),
    benchmark:
        results("benchmarks", "prepare_dataset", "{dataset}.tsv")
    conda:
        "../envs/torch.yaml"
    resources:
        **cluster_resources("prepare_dataset"),
    params:
        dataset=lambda wc: wc.dataset,
        spec=lambda wc: dataset_spec(wc.dataset),
        n_dev=GPT2["data"]["n_dev"],
        n_test=GPT2["data"]["n_test"],
        train_sizes=lambda wc: dataset_train_sizes(wc.dataset),
        keep_all_train=lambda wc: wc.dataset in PRETRAIN_DATASETS
        and bool(scratch_models(GPT2)),
        seed=GPT2["data"]["seed"],
        min_words=GPT2["data"]["min_words"],
        max_words=GPT2["data"]["max_words"],
        protocol=protocol("data_selection", "detokenizer"),
    script:
        "../scripts/gpt2_prepare.py"
