"""Decoding speed: mixce.gpt2.sample.generate against transformers' model.generate, in one run.

A random-weight GPT-2 (no download), ``--n-prompts`` prompts of ``--prompt-len`` random tokens,
the same batch size and threads for both. Cases:

1. greedy (the two outputs are compared token for token, cut at the first EOS);
2. unbiased sampling (transformers: ``do_sample=True, top_k=0, top_p=1.0``);
3. top-p 0.95 sampling;
4. unbiased sampling with the EOS logit raised by ``--eos-bias``, so rows end at different
   steps: ``generate`` drops ended rows while transformers keeps them to the batch's end.

Each method is run once to warm up, then ``--repeats`` times, the two methods alternating (so
that load from other processes hits both alike); the median time is reported.
Speed is generated tokens per second, EOS included (each method counts its own tokens: sampled
outputs differ between the two, their lengths only agree in distribution).

Usage: python bench/sample.py [--n-layer 4] [--max-new-tokens 128] [--out bench/results/sample.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import transformers

from mixce.gpt2.sample import generate, parse_decoding


def make_model(args: argparse.Namespace, eos_bias: float = 0.0) -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        n_layer=args.n_layer,
        n_embd=args.n_embd,
        n_head=args.n_head,
        vocab_size=args.vocab,
        n_positions=args.n_positions,
        bos_token_id=args.eos_id,
        eos_token_id=args.eos_id,
    )
    model = transformers.GPT2LMHeadModel(config).eval()
    if eos_bias:
        head = torch.nn.Linear(args.n_embd, args.vocab, bias=True)
        with torch.no_grad():
            head.weight.copy_(model.lm_head.weight)
            head.bias.zero_()
            head.bias[args.eos_id] = eos_bias
        model.lm_head = head
    return model.eval()


def cut(row: list[int], eos: int) -> list[int]:
    """Tokens up to and including the first EOS."""
    return row[: row.index(eos) + 1] if eos in row else row


def timed(fns: list[Callable[[], Any]], repeats: int) -> list[tuple[float, Any]]:
    """Median seconds and last result of each function; runs interleaved so load hits all."""
    for fn in fns:
        fn()  # warm-up
    times: list[list[float]] = [[] for _ in fns]
    results: list[Any] = [None] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            results[i] = fn()
            times[i].append(time.perf_counter() - start)
    return [(statistics.median(t), r) for t, r in zip(times, results, strict=True)]


def run_case(
    name: str, model: torch.nn.Module, prompts: torch.Tensor, args: argparse.Namespace
) -> dict[str, Any]:
    decoding = parse_decoding(name)
    eos, steps = args.eos_id, args.max_new_tokens

    def ours() -> list[list[int]]:
        gens = generate(
            model,
            prompts.tolist(),
            decoding=decoding,
            max_new_tokens=steps,
            eos_id=eos,
            seed=0,
            batch_size=args.batch_size,
            progress=False,
        )
        return [g.token_ids + ([eos] if g.finish_reason == "eos" else []) for g in gens]

    sampling = {"do_sample": False}
    if decoding.kind != "greedy":
        sampling = {"do_sample": True, "top_k": 0, "top_p": decoding.top_p, "temperature": 1.0}

    def theirs() -> list[list[int]]:
        torch.manual_seed(0)
        rows = []
        with torch.inference_mode():
            for start in range(0, len(prompts), args.batch_size):
                batch = prompts[start : start + args.batch_size]
                out = model.generate(
                    batch,
                    attention_mask=torch.ones_like(batch),
                    max_new_tokens=steps,
                    eos_token_id=eos,
                    pad_token_id=eos,
                    **sampling,
                )
                rows += [cut(row, eos) for row in out[:, batch.shape[1] :].tolist()]
        return rows

    (ours_s, ours_rows), (theirs_s, theirs_rows) = timed([ours, theirs], args.repeats)
    ours_tokens = sum(map(len, ours_rows))
    theirs_tokens = sum(map(len, theirs_rows))
    row: dict[str, Any] = {
        "case": name,
        "ours_s": ours_s,
        "theirs_s": theirs_s,
        "ours_tokens": ours_tokens,
        "theirs_tokens": theirs_tokens,
        "ours_tok_per_s": ours_tokens / ours_s,
        "theirs_tok_per_s": theirs_tokens / theirs_s,
        "ratio_ours_over_theirs": (ours_tokens / ours_s) / (theirs_tokens / theirs_s),
        "ours_eos_share": sum(r[-1:] == [eos] for r in ours_rows) / len(ours_rows),
        "theirs_eos_share": sum(r[-1:] == [eos] for r in theirs_rows) / len(theirs_rows),
    }
    if decoding.kind == "greedy":
        row["identical_rows"] = sum(a == b for a, b in zip(ours_rows, theirs_rows, strict=True))
        row["rows"] = len(ours_rows)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-embd", type=int, default=256)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=50257)
    parser.add_argument("--n-positions", type=int, default=1024)
    parser.add_argument("--eos-id", type=int, default=50256)
    parser.add_argument("--n-prompts", type=int, default=32)
    parser.add_argument("--prompt-len", type=int, default=50)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--eos-bias", type=float, default=7.0, help="EOS logit boost of the last case"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/sample.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()

    load_before = os.getloadavg()
    generator = torch.Generator().manual_seed(1)
    prompts = torch.randint(
        0, args.vocab - 1, (args.n_prompts, args.prompt_len), generator=generator
    )
    model = make_model(args)
    rows = [run_case(name, model, prompts, args) for name in ("greedy", "unbiased", "top_p0.95")]
    eos_row = run_case("unbiased", make_model(args, args.eos_bias), prompts, args)
    eos_row["case"] = f"unbiased, EOS logit +{args.eos_bias:g}"
    rows.append(eos_row)

    result = {
        "meta": {
            "machine": platform.machine(),
            "threads": args.threads,
            "load_average_before_after": [load_before, os.getloadavg()],
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "command": " ".join(["python bench/sample.py", *sys.argv[1:]]),
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        },
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    header = (
        f"{'case':<28} {'ours s':>7} {'hf s':>7} {'ours tok/s':>10} {'hf tok/s':>9} {'ratio':>6}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['case']:<28} {r['ours_s']:7.2f} {r['theirs_s']:7.2f} {r['ours_tok_per_s']:10.0f}"
            f" {r['theirs_tok_per_s']:9.0f} {r['ratio_ours_over_theirs']:6.2f}"
        )
    greedy = rows[0]
    print(f"greedy: {greedy['identical_rows']}/{greedy['rows']} rows identical to model.generate")
    print(
        f"EOS case: EOS share ours {eos_row['ours_eos_share']:.2f}, "
        f"transformers {eos_row['theirs_eos_share']:.2f}; "
        f"tokens ours {eos_row['ours_tokens']}, transformers {eos_row['theirs_tokens']}"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
