"""Rule synthetic_train: Q for one (init, V, objective, eta), trained once per seed."""

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from mixce.device import job_gpus
from mixce.io import job_logging, write_csv, write_json
from mixce.synthetic.data import load_sequences
from mixce.synthetic.pipeline import train_config, train_seeds


def seed_runs(seeds, targets, data):
    """(seed, chain, train, dev) per seed, loaded one seed at a time."""
    for seed, target_file, data_file in zip(seeds, targets, data, strict=True):
        with np.load(target_file) as target, np.load(data_file) as sequences:
            yield seed, target["chain"], *(load_sequences(sequences, s) for s in ("train", "dev"))


def main(smk) -> None:
    with job_logging(smk.log[0]), threadpool_limits(smk.threads):  # BLAS threads = job threads
        p = smk.params
        # device auto: the GPU this job was given (its rule's gpu resource), else the CPU
        cfg = train_config({**p.train, "gpus": job_gpus(smk)})
        if not cfg.uses_numpy():  # the PyTorch backends; the NumPy one never imports torch
            import torch

            from mixce.synthetic.train import train_device

            torch.set_num_threads(smk.threads)
            train_device(cfg.device, cfg.gpus)  # fails here if CUDA is needed and unusable
        runs = seed_runs(p.seeds, smk.input.targets, smk.input.data)
        results, log_rows = train_seeds(
            runs, p.objective, p.eta, cfg, init=p.init, vocab_size=p.vocab_size
        )
        write_csv(smk.output.log_csv, pd.DataFrame(log_rows))
        write_json(smk.output.json, results)


main(snakemake)  # noqa: F821
