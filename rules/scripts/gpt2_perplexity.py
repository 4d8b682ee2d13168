"""Rule perplexity: perplexity of a finetuned model on the test texts (plain NLL in float32;
texts encoded as in finetuning: no BOS, EOS appended, cut to max_length), averaged as the
protocol point perplexity_average says (docs/PROTOCOL.md)."""

import logging

from mixce.device import job_device
from mixce.gpt2.metrics.perplexity import perplexity, token_nll
from mixce.gpt2.models import load_model
from mixce.gpt2.tokenizer import encode_texts, load_tokenizer, loader_texts
from mixce.io import job_logging, read_texts, write_json


def main(smk) -> None:
    import torch

    with job_logging(smk.log[0]):
        p = smk.params
        torch.set_num_threads(max(1, smk.threads))
        device = job_device(smk, "gpt2.metrics.device")  # fails here if CUDA is unusable
        tokenizer = load_tokenizer(smk.input.tokenizer)
        texts = loader_texts(read_texts(smk.input.texts), p.protocol["newlines"])
        ids = encode_texts(tokenizer, texts, p.max_length)
        model = load_model(smk.input.model, device).eval()
        nlls = token_nll(model, ids, batch_size=p.batch_size, device=device)
        result = perplexity(nlls, average=p.protocol["perplexity_average"])  # batches of 32
        result["n_texts"] = len(ids)
        logging.info("%s", result)
        write_json(smk.output[0], result)


main(snakemake)  # noqa: F821
