"""Rules sample / sample_greedy: continue the first tokens of each human text with a GPT-2, one
decoding, every sampling seed (one file each) with the model loaded once.

Protocol points (docs/PROTOCOL.md): generation_length (where a sample stops,
mixce.gpt2.sample.token_budgets) and precision (the forward pass's dtype,
mixce.gpt2.sample.forward_dtype).
"""

import logging
import time

import torch
from transformers import GPT2TokenizerFast

from mixce.device import job_device
from mixce.gpt2.models import load_model
from mixce.gpt2.sample import (
    cut_prompts,
    forward_dtype,
    generate,
    parse_decoding,
    read_token_ids,
    summarize,
    token_budgets,
    write_samples,
)
from mixce.io import job_logging, path_list, seed_of_path, write_json


def main(smk) -> None:
    with job_logging(smk.log[0]):
        p = smk.params
        torch.set_num_threads(smk.threads)
        device = job_device(smk, "gpt2.sampling.device")  # fails here if CUDA is unusable
        decoding = parse_decoding(p.decoding)
        setting = p.protocol
        # official: float32 forward (true float32 matmuls); clean: bf16 autocast with TF32 on
        # CUDA. The logits are cast to float32 before sampling either way.
        dtype = forward_dtype(setting["precision"], device.type)
        if dtype is not None:
            torch.set_float32_matmul_precision("high")  # TF32 matmuls
        elif device.type == "cuda":
            torch.set_float32_matmul_precision("highest")

        tokenizer = GPT2TokenizerFast.from_pretrained(smk.input.tokenizer)
        model = load_model(smk.input.model, device).eval()  # float32 weights
        eos_id = tokenizer.eos_token_id
        if eos_id is None:
            eos_id = model.config.eos_token_id
        texts = read_token_ids(
            smk.input.texts,
            tokenizer=tokenizer,
            n=p.n_prompts,
            newlines=setting.get("newlines", "clean"),
        )
        prompts = cut_prompts(texts, p.prompt_tokens, str(smk.input.texts))
        budgets = token_budgets(
            setting["generation_length"],
            [len(prompt) for prompt in prompts],
            [len(ids) for ids in texts],
            max_new_tokens=p.max_new_tokens,
            group=p.batch_size,
            cap=p.max_length,
            prompt_tokens=p.prompt_tokens,
        )
        outputs = path_list(smk.output.samples), path_list(smk.output.summaries)
        seeds = [seed_of_path(path) for path in outputs[0]]
        logging.info(
            "%d prompts, decoding %s, seeds %s, generation_length %s: %d to %d new tokens, "
            "batch %d, device %s, precision %s (autocast dtype %s)",
            len(prompts),
            decoding.name,
            seeds,
            setting["generation_length"],
            min(budgets, default=0),
            max(budgets, default=0),
            p.batch_size,
            device,
            setting["precision"],
            dtype,
        )
        for seed, samples_path, summary_path in zip(seeds, *outputs, strict=True):
            start = time.perf_counter()
            generations = generate(
                model,
                prompts,
                decoding=decoding,
                max_new_tokens=budgets,
                eos_id=eos_id,
                seed=seed,
                batch_size=p.batch_size,
                device=device,
                dtype=dtype,
            )
            seconds = time.perf_counter() - start
            summary = summarize(generations, seconds)
            logging.info("seed %d: generated %s", seed, summary)
            write_samples(
                samples_path, generations, tokenizer=tokenizer, seed=seed, decoding=decoding
            )
            summary.update(
                decoding=decoding.name,
                seed=seed,
                max_new_tokens=p.max_new_tokens,
                generation_length=setting["generation_length"],
                precision=setting["precision"],
                mean_budget=sum(budgets) / len(budgets) if budgets else None,
                prompt_tokens=p.prompt_tokens,
                batch_size=p.batch_size,
                device=str(device),
                dtype=str(dtype or torch.float32).removeprefix("torch."),
                model=str(smk.input.model),
                threads=smk.threads,
            )
            write_json(summary_path, summary)


main(snakemake)  # noqa: F821
