"""Rules pretrain (a scratch GPT-2, params.architecture, with MLE) and finetune (the base model,
the variant's objective, the first params.n_train texts): mixce.gpt2.train.train with
params.settings under params.protocol (finetune only). LFD's reference model is the named input
``reference`` (else an empty list). A rerun after a kill resumes from params.work_dir.
"""

import logging
import shutil
from pathlib import Path

import pandas as pd

from mixce.device import job_device
from mixce.gpt2.models import count_parameters, load_model, save_model, scratch_model
from mixce.gpt2.tokenizer import encode_texts, load_tokenizer, loader_texts
from mixce.gpt2.train import StopOnSignal, TrainSettings, protocol_settings, train
from mixce.io import job_logging, path_list, read_texts, write_csv, write_json


def texts_of(paths: list[str], n: int | None) -> list[str]:
    texts = [t for path in paths for t in read_texts(path)]
    if n is not None and len(texts) < n:
        raise ValueError(f"{', '.join(paths)} holds {len(texts)} texts, the run needs {n}")
    return texts[:n]


def main(smk) -> None:
    import torch

    with job_logging(smk.log[0]):
        p = smk.params
        torch.set_num_threads(max(1, smk.threads))
        device = job_device(smk, "gpt2.finetune.device")  # fails here if CUDA is unusable
        settings = TrainSettings(**protocol_settings(p.settings, getattr(p, "protocol", {})))
        tokenizer = load_tokenizer(smk.input.tokenizer)
        # protocol point newlines: the released loader keeps each line's break
        newlines = getattr(p, "protocol", {}).get("newlines", "clean")
        train_texts = loader_texts(texts_of(path_list(smk.input.train), p.n_train), newlines)
        dev_texts = loader_texts(texts_of(path_list(smk.input.dev), None), newlines)
        train_ids = encode_texts(tokenizer, train_texts, settings.max_length)
        dev_ids = encode_texts(tokenizer, dev_texts, settings.max_length)
        if p.architecture is not None:
            model = scratch_model(p.architecture, settings.seed)
            source = f"scratch {p.architecture}"
        else:
            model = load_model(smk.input.base)
            source = smk.input.base
        reference_paths = path_list(getattr(smk.input, "reference", []))
        if len(reference_paths) > 1:
            raise ValueError(f"input reference must be one model directory, got {reference_paths}")
        reference_path = reference_paths[0] if reference_paths else None
        reference = load_model(reference_path) if reference_path is not None else None
        logging.info(
            f"{source} ({count_parameters(model)} parameters) on {device}: {len(train_ids)} train"
            f" / {len(dev_ids)} dev texts, {settings}, reference model {reference_path}"
        )
        options = dict(
            work_dir=p.work_dir, checkpoint_every=p.checkpoint_every, reference=reference
        )
        with StopOnSignal() as stop:
            summary = train(
                model, train_ids, dev_ids, settings, device=device, should_stop=stop, **options
            )
        log = summary.pop("log")
        save_model(load_model(Path(p.work_dir, "best")), smk.output.model)
        write_csv(smk.output.log_csv, pd.DataFrame(log))
        sizes = {"n_train": len(train_ids), "n_dev": len(dev_ids)}
        write_json(
            smk.output.summary, {**summary, "source": source, "reference": reference_path, **sizes}
        )
        logging.info(
            "best dev loss %(best_dev_loss).4f at step %(best_step)s of %(steps)d; "
            "%(tokens_per_second).0f tokens/s",
            summary,
        )
        shutil.rmtree(p.work_dir, ignore_errors=True)


main(snakemake)  # noqa: F821
