"""GPT-2 training-step benchmarks, reported as ratios measured in one run.

1. Step time of MixCE over MLE on the same model, batch and optimizer (forward, loss,
   backward, AdamW step): the two objectives alternate, each timed ``--repeats`` times after
   a warm-up, and the medians are compared. Target: at most 1.02.
2. Peak memory of the demo's finetuning jobs, read from the Snakemake benchmark files
   (max_rss) of a finished ``make demo``; and the peak resident memory of this benchmark's
   own training steps.

Usage: python bench/train_step.py [--n-layer 2 --n-embd 64 ...] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from mixce.gpt2.models import count_parameters, scratch_model
from mixce.gpt2.train import autocast, pad_batch, peak_memory_mb
from mixce.objectives import check_hyper, get_objective


def step_seconds(model, optimizer, batch, objective: str, device: torch.device) -> float:
    """Seconds of one optimizer step with ``objective`` on ``batch`` (synchronised)."""
    loss_fn = get_objective(objective)
    inputs, attention, targets, mask = batch
    if device.type == "cuda":
        torch.cuda.synchronize()
    tic = time.perf_counter()
    with autocast(device):
        logits = model(input_ids=inputs, attention_mask=attention).logits
    hyper = check_hyper(objective, {"eta": 0.5} if objective == "mixce" else {})
    loss = loss_fn(logits, targets, mask, **hyper)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - tic


def demo_peak_memory(pattern: str) -> list[dict[str, object]]:
    """max_rss (MB) of each finished demo finetune job, from Snakemake's benchmark files."""
    rows = []
    for path in sorted(glob.glob(pattern)):
        with open(path) as handle:
            record = next(csv.DictReader(handle, delimiter="\t"))
        rows.append({"job": path, "max_rss_mb": float(record["max_rss"]), "s": float(record["s"])})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-layer", type=int, default=2)
    parser.add_argument("--n-head", type=int, default=2)
    parser.add_argument("--n-embd", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--demo-benchmarks", default="results/demo/benchmarks/finetune/*/*/*.tsv")
    parser.add_argument("--out", default="bench/results/train_step.json")
    args = parser.parse_args()

    device = torch.device(args.device)
    arch = {
        "n_layer": args.n_layer,
        "n_head": args.n_head,
        "n_embd": args.n_embd,
        "n_positions": max(args.length, 64),
    }
    model = scratch_model(arch, seed=0).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.type == "cuda")
    generator = torch.Generator().manual_seed(0)
    texts = [
        torch.randint(0, 50256, (args.length - 1,), generator=generator).tolist() + [50256]
        for _ in range(args.batch)
    ]
    batch = pad_batch(texts, 50256, device)

    times: dict[str, list[float]] = {"mle": [], "mixce": []}
    for objective in times:  # warm-up
        step_seconds(model, optimizer, batch, objective, device)
    for r in range(args.repeats):
        order = ("mle", "mixce") if r % 2 == 0 else ("mixce", "mle")
        for objective in order:
            times[objective].append(step_seconds(model, optimizer, batch, objective, device))
    median = {k: statistics.median(v) for k, v in times.items()}
    ratio = median["mixce"] / median["mle"]

    demo = demo_peak_memory(args.demo_benchmarks)
    result = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "device": str(device),
        },
        "model": {**arch, "parameters": count_parameters(model)},
        "batch": {"texts": args.batch, "tokens_per_text": args.length},
        "step_seconds_median": median,
        "step_seconds_all": times,
        "mixce_over_mle": ratio,
        "target_mixce_over_mle": 1.02,
        "bench_peak_memory_mb": peak_memory_mb(device),
        "demo_finetune_jobs": demo,
        "demo_finetune_peak_rss_mb": max((r["max_rss_mb"] for r in demo), default=None),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"model {arch} ({result['model']['parameters']:,} parameters), "
        f"batch {args.batch}x{args.length}"
    )
    print(f"step median: MLE {median['mle'] * 1e3:.1f} ms, MixCE {median['mixce'] * 1e3:.1f} ms")
    print(f"MixCE / MLE step time: {ratio:.3f} (target <= 1.02)")
    if demo:
        print(
            f"demo finetune jobs: peak RSS {result['demo_finetune_peak_rss_mb']:.0f} MB "
            f"over {len(demo)} jobs"
        )
    else:
        print(f"no demo benchmark files match {args.demo_benchmarks} (run `make demo` first)")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
