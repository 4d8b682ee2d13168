"""Rule prepare_dataset: clean, filter and split one dataset into train / dev / test JSON lines.

input: ``manifest`` (resources/datasets/<dataset>/manifest.json; an empty list for local and
embedded sources). params: ``spec``, ``dataset`` (name, for messages), ``n_dev``, ``n_test``,
``train_sizes``, ``seed``, ``keep_all_train`` (the whole train pool, for pretraining
datasets), ``protocol`` (the points ``data_selection`` and ``detokenizer``,
docs/PROTOCOL.md), optionally ``min_words`` / ``max_words`` (50 / 1000). output: ``train``,
``dev``, ``test`` (one ``{"text": ...}`` per line) and ``report``; every size is checked
before anything is written. log: one file.
"""

import json
import logging
from pathlib import Path

from mixce.gpt2.data.clean import MAX_WORDS, MIN_WORDS
from mixce.gpt2.data.prepare import check_sizes, prepare, write_jsonl
from mixce.gpt2.data.sources import format_of, read_raw
from mixce.io import job_logging, write_json


def main(smk) -> None:
    with job_logging(smk.log[0]):
        p = smk.params
        spec = dict(p.spec)
        manifest = smk.input.manifest  # [path]; [] for local and embedded sources
        manifests = [manifest] if isinstance(manifest, str) else list(manifest)
        raw = read_raw(spec, Path(manifests[0]).parent if manifests else None)
        train_sizes = [int(s) for s in p.train_sizes]
        splits, report = prepare(
            raw,
            format_of(spec),
            n_dev=int(p.n_dev),
            n_test=int(p.n_test),
            train_sizes=train_sizes,
            seed=int(p.seed),
            min_words=int(getattr(p, "min_words", MIN_WORDS)),
            max_words=int(getattr(p, "max_words", MAX_WORDS)),
            dataset=p.dataset,
            keep_all_train=bool(getattr(p, "keep_all_train", False)),
            data_selection=p.protocol["data_selection"],
            detokenizer=p.protocol["detokenizer"],
        )
        logging.info("report: %s", json.dumps(report))
        check_sizes(report, train_sizes, p.dataset)
        for split in ("train", "dev", "test"):
            write_jsonl(getattr(smk.output, split), splits[split])
        write_json(smk.output.report, {**report, "spec": spec})


main(snakemake)  # noqa: F821
