"""Rule gpt2_sample: continue the first tokens of each human text with a GPT-2 (one decoding)."""

import logging
import time

import torch
from transformers import AutoModelForCausalLM, GPT2TokenizerFast

from mixce.io import job_logging, write_json
from mixce.sample import generate, parse_decoding, read_prompts, summarize, write_samples


def main(smk) -> None:
    with job_logging(smk.log[0]):
        p = smk.params
        torch.set_num_threads(smk.threads)
        decoding = parse_decoding(p.decoding)
        device = p.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(device)
        dtype = None
        if device.type == "cuda":
            dtype = torch.bfloat16  # forward under bf16 autocast; sampling stays float32
            torch.set_float32_matmul_precision("high")  # TF32 matmuls

        tokenizer = GPT2TokenizerFast.from_pretrained(smk.input.tokenizer)
        model = AutoModelForCausalLM.from_pretrained(smk.input.model).to(device).eval()
        eos_id = tokenizer.eos_token_id
        if eos_id is None:
            eos_id = model.config.eos_token_id
        prompts = read_prompts(
            smk.input.texts, tokenizer=tokenizer, prompt_tokens=p.prompt_tokens, n=p.n_prompts
        )
        logging.info(
            "%d prompts, decoding %s, seed %d, up to %d new tokens, batch %d, device %s, dtype %s",
            len(prompts),
            decoding.name,
            p.seed,
            p.max_new_tokens,
            p.batch_size,
            device,
            dtype,
        )
        start = time.perf_counter()
        generations = generate(
            model,
            prompts,
            decoding=decoding,
            max_new_tokens=p.max_new_tokens,
            eos_id=eos_id,
            seed=p.seed,
            batch_size=p.batch_size,
            device=device,
            dtype=dtype,
        )
        seconds = time.perf_counter() - start
        summary = summarize(generations, seconds)
        logging.info("generated %s", summary)
        write_samples(
            smk.output.samples, generations, tokenizer=tokenizer, seed=p.seed, decoding=decoding
        )
        summary.update(
            decoding=decoding.name,
            seed=p.seed,
            max_new_tokens=p.max_new_tokens,
            prompt_tokens=p.prompt_tokens,
            batch_size=p.batch_size,
            device=str(device),
            dtype=str(dtype or torch.float32).removeprefix("torch."),
            model=str(smk.input.model),
            threads=smk.threads,
        )
        write_json(smk.output.summary, summary)


main(snakemake)  # noqa: F821
