"""Rule nll_figure2: NLL under the pretrained model of the continuations of human test texts,
of its unbiased samples and of its greedy outputs (Figure 2): per text the mean token NLL
(sequence level) and every token's NLL (token level)."""

import logging

import numpy as np

from mixce.device import job_device
from mixce.gpt2.metrics.perplexity import continuation_nll
from mixce.gpt2.metrics.scoring import human_records, sample_records
from mixce.gpt2.models import load_model
from mixce.gpt2.tokenizer import load_tokenizer
from mixce.io import job_logging, read_texts, write_npz


def main(smk) -> None:
    import torch

    with job_logging(smk.log[0]):
        p = smk.params
        torch.set_num_threads(max(1, smk.threads))
        device = job_device(smk, "gpt2.metrics.device")  # fails here if CUDA is unusable
        tokenizer = load_tokenizer(smk.input.tokenizer)
        model = load_model(smk.input.model, device).eval()
        texts = read_texts(smk.input.texts)[: p.n_prompts]
        sources = {
            "human": human_records(texts, tokenizer, p.prompt_tokens, p.max_new_tokens),
            "unbiased": sample_records(smk.input.unbiased),
            "greedy": sample_records(smk.input.greedy),
        }
        arrays = {}
        for source, records in sources.items():
            records = [r for r in records if r["cont_ids"]]
            nlls = continuation_nll(
                model,
                [r["prompt_ids"] for r in records],
                [r["cont_ids"] for r in records],
                batch_size=p.batch_size,
                device=device,
            )
            arrays[f"{source}_seq"] = seq = np.array([float(x.mean()) for x in nlls])
            arrays[f"{source}_tok"] = np.concatenate(nlls) if nlls else np.zeros(0)
            mean = seq.mean() if nlls else float("nan")
            logging.info("%s: %d texts, mean sequence NLL %.3f", source, len(nlls), mean)
        write_npz(smk.output[0], arrays)


main(snakemake)  # noqa: F821
