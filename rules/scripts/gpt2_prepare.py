"""Rule gpt2_prepare: clean, filter and split one dataset into train / dev / test JSON lines.

input: ``manifest`` (resources/<dataset>/manifest.json; absent or an empty list for local and
embedded sources).
params: ``spec`` (dataset spec dict), ``dataset`` (name, for messages), ``n_dev``, ``n_test``,
``train_sizes`` (list), ``seed``, ``keep_all_train`` (the whole train pool, for
pretraining datasets), ``protocol`` (the settings of the protocol points ``data_selection``
and ``detokenizer``, docs/PROTOCOL.md), and optionally ``min_words`` / ``max_words``
(50 / 1000).
output: ``train``, ``dev``, ``test`` (JSON lines, one ``{"text": ...}`` per line) and ``report``
(JSON). Every size is checked before anything is written. log: one file.
"""

import json
import logging
from pathlib import Path

from mixce.gpt2.data.clean import MAX_WORDS, MIN_WORDS
from mixce.gpt2.data.prepare import check_sizes, prepare, write_jsonl
from mixce.gpt2.data.sources import format_of, needs_download, read_raw
from mixce.io import job_logging, write_json


def _manifest_dir(smk) -> Path | None:
    manifest = getattr(smk.input, "manifest", None)
    if manifest is None or isinstance(manifest, str | Path):
        paths = [] if manifest is None else [manifest]
    else:
        paths = list(manifest)
    if len(paths) > 1:
        raise ValueError(f"expected at most one manifest input, got {paths}")
    return Path(paths[0]).parent if paths else None


def main(smk) -> None:
    with job_logging(smk.log[0]):
        p = smk.params
        spec = dict(p.spec)
        manifest_dir = _manifest_dir(smk)
        if needs_download(spec) and manifest_dir is None:
            raise ValueError(f"dataset {p.dataset!r}: {spec['source']} source needs a manifest")
        raw = read_raw(spec, manifest_dir)
        points = dict(p.protocol)
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
            data_selection=points["data_selection"],
            detokenizer=points["detokenizer"],
        )
        logging.info("report: %s", json.dumps(report))
        check_sizes(report, train_sizes, p.dataset)
        for split in ("train", "dev", "test"):
            write_jsonl(getattr(smk.output, split), splits[split])
        write_json(smk.output.report, {**report, "spec": spec})


main(snakemake)  # noqa: F821
