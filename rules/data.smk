# GPT-2 track, datasets: download (hub / url sources, on the submitting machine) ->
# clean, filter by length, split into dev / test / train (nested train subsets); the
# protocol points data_selection and detokenizer decide how (docs/PROTOCOL.md).

from mixce.gpt2.data.download import ChangedFileError
from mixce.gpt2.data.sources import check_pins, content_spec, needs_download

# Hugging Face caches (hub files, datasets) of the download and fetch rules: under
# resources/, not $HOME (small on clusters).
HF_HOME = resource("huggingface")

# Pins (sha256 / size / revision, mixce.gpt2.data.sources.PIN_KEYS) are checks, not params: the
# download script reads them from the config, so adding a pin that agrees with what was
# downloaded reruns nothing, and one that disagrees with the record stops here, at start-up.
for _dataset in prepared_datasets():
    _spec = GPT2["datasets"][_dataset]
    if _dataset in config["refresh_downloads"] or not needs_download(_spec):
        continue
    try:
        check_pins(_spec, Path(manifest_path(_dataset)).parent)
    except ChangedFileError as error:
        raise WorkflowError(f"gpt2.datasets.{_dataset}: {error}") from None


rule download_dataset:
    output:
        manifest=manifest_path("{dataset}"),
    log:
        log_path("download_dataset", "{dataset}", root=resource),
    benchmark:
        benchmark_path("download_dataset", "{dataset}", root=resource)
    conda:
        "../envs/torch.yaml"
    params:
        code=code(),
        spec=lambda wc: content_spec(GPT2["datasets"][wc.dataset]),
        hf_home=HF_HOME,
    script:
        "scripts/gpt2_download.py"


rule prepare_dataset:
    input:
        manifest=lambda wc: (
            [manifest_path(wc.dataset)] if needs_download(GPT2["datasets"][wc.dataset]) else []
        ),
        # a local dataset's file: an edited file reruns the preparation
        local=lambda wc: [
            spec["path"] for spec in [GPT2["datasets"][wc.dataset]] if spec["source"] == "local"
        ],
    output:
        **{split: split_path("{dataset}", split) for split in ("train", "dev", "test")},
        report=results("data", "{dataset}", "report.json"),
    log:
        log_path("prepare_dataset", "{dataset}"),
    benchmark:
        benchmark_path("prepare_dataset", "{dataset}")
    conda:
        "../envs/torch.yaml"
    resources:
        **cluster_resources("prepare_dataset"),
    params:
        code=code(),
        dataset=lambda wc: wc.dataset,
        spec=lambda wc: content_spec(GPT2["datasets"][wc.dataset]),
        n_dev=GPT2["data"]["n_dev"],
        n_test=GPT2["data"]["n_test"],
        train_sizes=lambda wc: dataset_train_sizes(wc.dataset),
        keep_all_train=lambda wc: (wc.dataset in PRETRAIN_DATASETS and bool(scratch_models(GPT2))),
        seed=GPT2["data"]["seed"],
        min_words=GPT2["data"]["min_words"],
        max_words=GPT2["data"]["max_words"],
        protocol=protocol("data_selection", "detokenizer"),
    script:
        "scripts/gpt2_prepare.py"
