"""Rules sample / sample_greedy: continue the first tokens of each human text with a GPT-2, one
decoding, every sampling seed (one file each) with the model loaded once. Protocol points
(docs/PROTOCOL.md): generation_length (mixce.gpt2.sample.token_budgets) and precision
(mixce.gpt2.sample.forward_dtype).
"""

import logging
import time

import torch
from transformers import GPT2TokenizerFast

from mixce.device import job_device
from mixce.gpt2 import sample
from mixce.gpt2.models import load_model
from mixce.io import job_logging, path_list, seed_of_path, write_json


def main(smk) -> None:
    with job_logging(smk.log[0]):
        p = smk.params
        torch.set_num_threads(smk.threads)
        device = job_device(smk, "gpt2.sampling.device")  # fails here if CUDA is unusable
        decoding = sample.parse_decoding(p.decoding)
        length, precision = p.protocol["generation_length"], p.protocol["precision"]
        # official: float32 forward (true float32 matmuls); clean: bf16 autocast with TF32 on
        # CUDA. The logits are cast to float32 before sampling either way.
        dtype = sample.forward_dtype(precision, device.type)
        if dtype is not None:
            torch.set_float32_matmul_precision("high")  # TF32 matmuls
        elif device.type == "cuda":
            torch.set_float32_matmul_precision("highest")

        tokenizer = GPT2TokenizerFast.from_pretrained(smk.input.tokenizer)
        model = load_model(smk.input.model, device).eval()  # float32 weights
        eos_id = tokenizer.eos_token_id
        eos_id = model.config.eos_token_id if eos_id is None else eos_id
        newlines = p.protocol.get("newlines", "clean")
        texts = sample.read_token_ids(
            smk.input.texts, tokenizer=tokenizer, n=p.n_prompts, newlines=newlines
        )
        prompts = sample.cut_prompts(texts, p.prompt_tokens, str(smk.input.texts))
        sizes = [len(prompt) for prompt in prompts], [len(ids) for ids in texts]
        rule = dict(group=p.batch_size, cap=p.max_length, prompt_tokens=p.prompt_tokens)
        budgets = sample.token_budgets(length, *sizes, max_new_tokens=p.max_new_tokens, **rule)
        outputs = path_list(smk.output.samples), path_list(smk.output.summaries)
        seeds = [seed_of_path(path) for path in outputs[0]]
        logging.info(
            f"{len(prompts)} prompts, decoding {decoding.name}, seeds {seeds}, generation_length "
            f"{length}: {min(budgets, default=0)} to {max(budgets, default=0)} new tokens, batch "
            f"{p.batch_size}, device {device}, precision {precision} (autocast dtype {dtype})"
        )
        options = dict(eos_id=eos_id, batch_size=p.batch_size, device=device, dtype=dtype)
        for seed, samples_path, summary_path in zip(seeds, *outputs, strict=True):
            start = time.perf_counter()
            generations = sample.generate(
                model, prompts, decoding=decoding, max_new_tokens=budgets, seed=seed, **options
            )
            summary = sample.summarize(generations, time.perf_counter() - start)
            logging.info("seed %d: generated %s", seed, summary)
            sample.write_samples(
                samples_path, generations, tokenizer=tokenizer, seed=seed, decoding=decoding
            )
            summary.update(
                decoding=decoding.name,
                seed=seed,
                max_new_tokens=p.max_new_tokens,
                generation_length=length,
                precision=precision,
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
