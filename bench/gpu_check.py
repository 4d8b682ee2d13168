"""GPU check: this project's own training, sampling, featurizing and synthetic code, timed on
one GPU on random-weight models of the paper's shapes (no download); writes
bench/results/gpu.json, which docs/cluster_plan.py reads for the README's GPU-hour estimate.

    make gpu-check                              # in .venv, on a machine with a CUDA GPU
    PYTHONPATH=src python3 bench/gpu_check.py   # a bare python3 with torch and transformers
    python bench/gpu_check.py --tiny            # tiny shapes on the CPU (tests/test_gpu_check.py)

Sections, in order. Each has a time budget: its share of what is left of ``--budget-s``
(400 s by default, so the whole check stays under 8 minutes; time a section leaves unused goes
to the later ones). A section starts no run that would not fit, is stopped by an alarm 15 s
after its budget, and is recorded with its error if it fails; the others still run (the exit
status is then 1), and the JSON is written after every section.

1. ``matmul``: a bf16 and a float32 (TF32 off) matrix product on random data: the ceilings
   the other figures can be read against.
2. ``finetune``: :func:`mixce.gpt2.train.train` itself (the workflow's loop: micro-batches, loss,
   backward, clipping, fused AdamW) for GPT-2 small and large shapes, batch 64 x 512 tokens
   with config.yaml's micro-batch sizes, MLE and MixCE, under both settings of the precision
   protocol point (clean: bf16 autocast with TF32; official: float32, TF32 off). Per run:
   median step seconds after warm-up steps, tokens/s, model FLOP/s (6 x parameters x
   tokens/s), MFU (over the GPU's datasheet peak of that dtype; null for an unknown GPU),
   peak GPU memory; per model and precision the MixCE / MLE step-time ratio.
3. ``sample``: :func:`mixce.gpt2.sample.generate` (unbiased sampling, float32 logits from the
   float32 LM head) against transformers' ``model.generate`` on the same model, prompts and
   batch (32 prompts of 50 tokens, 512 new tokens, batch 32), GPT-2 large and small shapes,
   both precision settings; generated tokens/s of each, alternated after a short warm-up.
4. ``featurize``: :class:`mixce.gpt2.metrics.features.GPT2Featurizer` (MAUVE's gpt2-large
   features, float32) on 128 texts of 512 tokens, batch 16: texts/s and tokens/s.
5. ``synthetic``: exact synthetic training (:func:`mixce.synthetic.train.train_q`) at V = 1000
   with the paper's data sizes on the GPU, per objective, and the NumPy CPU backend on the same
   data for comparison: seconds per step (dev checks included) and the ratio.

Timings synchronise the device before the clock is read (the training loop's own per-step
times, which ``finetune`` reports, end at its ``float(loss)`` reads; the steady-state median
then holds one whole step). Every random choice is seeded from ``--seed``.

Imports: the standard library, torch, transformers, numpy, pandas, scipy and tqdm, directly and
through the mixce modules it loads (lazily, per section): what the lent GPU machine's python3
has (no snakemake, yaml, jsonschema, mauve-text, gensim); tests/test_gpu_check.py checks it.
The JSON records the device: docs/cluster_plan.py ignores results not measured on CUDA, and
tiny ones.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import json
import math
import os
import platform
import re
import signal
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "src") not in sys.path:  # a bare `python3 bench/gpu_check.py` finds mixce too
    sys.path.insert(0, str(REPO / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

SCHEMA = 1
DEFAULT_OUT = REPO / "bench/results/gpu.json"
SECTIONS = ("matmul", "finetune", "sample", "featurize", "synthetic")
#: each section's share of --budget-s
SHARES = {"matmul": 0.04, "finetune": 0.42, "sample": 0.27, "featurize": 0.10, "synthetic": 0.17}
#: seconds a section may run past its budget before the alarm stops it
GRACE_S = 15.0

#: Dense (no sparsity) datasheet peaks in FLOP/s, by device-name pattern (first match wins):
#: (half-precision tensor-core peak, its dtype, plain float32 peak without TF32). MFU of a
#: bf16-autocast run is taken over the first, of a float32 run over the second; the V100 has
#: no bf16 units, so its fp16 peak stands in.
PEAKS: list[tuple[str, float, str, float | None]] = [
    (r"H100.*PCIe", 756e12, "bf16", 51.2e12),
    (r"H[12]00.*NVL", 835e12, "bf16", 60e12),  # H100 NVL, H200 NVL
    (r"\bG?H[12]00\b", 989e12, "bf16", 66.9e12),  # H100 SXM, H200 (SXM), GH200
    (r"\bA100\b", 312e12, "bf16", 19.5e12),
    (r"\bL40S\b", 362e12, "bf16", 91.6e12),
    (r"\bL40\b", 181e12, "bf16", 90.5e12),
    (r"\bL4\b", 121e12, "bf16", 30.3e12),
    (r"\bA10\b", 125e12, "bf16", 31.2e12),
    (r"V100.*PCIE", 112e12, "fp16", 14e12),
    (r"\bV100\b", 125e12, "fp16", 15.7e12),
]

#: GPT-2 shapes (n_layer, n_head, n_embd), config.yaml's micro-batch sizes; tiny: CI shapes
GPT2_SHAPES = {"small": (12, 12, 768), "large": (36, 20, 1280)}
MICRO_BATCH = {"small": 8, "large": 2}
TINY_SHAPES = {"small": (2, 2, 32), "large": (3, 2, 48)}
TINY_MICRO_BATCH = {"small": 1, "large": 1}
VOCAB, TINY_VOCAB, N_POSITIONS = 50257, 1000, 1024


class SectionTimeout(Exception):
    """A section ran past its budget and grace."""


def _timeout(signum: int, frame: Any) -> None:
    raise SectionTimeout("stopped by the alarm")


class Clock:
    """The budget of one section: whether a run of a given length still fits."""

    def __init__(self, budget_s: float) -> None:
        self.start = time.perf_counter()
        self.deadline = self.start + budget_s

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def fits(self, seconds: float) -> bool:
        return seconds <= self.left()


class Context:
    """What every section reads: device, shapes, seed, datasheet peaks."""

    def __init__(self, device: torch.device, tiny: bool, seed: int) -> None:
        self.device = device
        self.tiny = tiny
        self.seed = seed
        self.peaks = device_peaks(device)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def peak(self, precision: str) -> float | None:
        """Datasheet peak for a run under ``precision`` (clean: half, official: float32)."""
        return self.peaks["half"] if precision == "clean" else self.peaks["float32"]


# --------------------------------------------------------------------------- helpers


def device_peaks(device: torch.device) -> dict[str, Any]:
    """Name, memory and datasheet peaks of ``device`` (peaks None when not in PEAKS)."""
    info: dict[str, Any] = {"type": device.type, "name": platform.processor() or "cpu"}
    if device.type != "cuda":
        return {**info, **datasheet_peaks("")}
    props = torch.cuda.get_device_properties(device)
    info.update(
        name=props.name,
        capability=list(torch.cuda.get_device_capability(device)),
        memory_gib=round(props.total_memory / 2**30, 1),
        multiprocessors=props.multi_processor_count,
    )
    info.update(datasheet_peaks(props.name))
    return info


def datasheet_peaks(name: str) -> dict[str, Any]:
    """The PEAKS entry of a device name: half-precision peak, its dtype, float32 peak and the
    pattern that matched; all None for a device not in the table."""
    for pattern, half, half_dtype, fp32 in PEAKS:
        if re.search(pattern, name, flags=re.I):
            return dict(half=half, half_dtype=half_dtype, float32=fp32, peak_pattern=pattern)
    return dict(half=None, half_dtype=None, float32=None, peak_pattern=None)


def reset_matmul_flags() -> None:
    """PyTorch's defaults: float32 matmuls without TF32 (each job of the workflow is a fresh
    process; mixce.gpt2.train.train sets the flags for its own precision)."""
    torch.set_float32_matmul_precision("highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = True


def median_seconds(fn: Callable[[], Any], ctx: Context, warmup: int, repeats: int) -> float:
    """Median wall seconds of ``fn`` (device synchronised around each call) after warm-ups."""
    for _ in range(warmup):
        fn()
    ctx.sync()
    times = []
    for _ in range(repeats):
        ctx.sync()
        tic = time.perf_counter()
        fn()
        ctx.sync()
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


def gpt2_lm(shape: tuple[int, int, int], vocab: int, ctx: Context, seed: int) -> Any:
    """A random-weight GPT-2 LM of ``shape`` (mixce.gpt2.models.scratch_config), built on the
    device (no copy of a large model through the host)."""
    from transformers import GPT2LMHeadModel

    from mixce.gpt2.models import scratch_config

    torch.manual_seed(seed)
    config = scratch_config(*shape, N_POSITIONS, vocab_size=vocab)
    with torch.device(ctx.device):
        return GPT2LMHeadModel(config)


def random_texts(n: int, length: int, vocab: int, seed: int) -> list[list[int]]:
    """``n`` texts of ``length`` random ids, each ending in EOS (the last id)."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab - 1, (n, length - 1), generator=generator)
    return [row + [vocab - 1] for row in ids.tolist()]


def free(ctx: Context) -> None:
    gc.collect()
    if ctx.device.type == "cuda":
        torch.cuda.empty_cache()


def peak_mb(ctx: Context) -> float:
    from mixce.gpt2.train import peak_memory_mb

    return round(peak_memory_mb(ctx.device), 1)


def reset_peak(ctx: Context) -> None:
    if ctx.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(ctx.device)


def scratch_dir() -> Any:
    """A temporary directory, in memory (/dev/shm) where there is one."""
    shm = Path("/dev/shm")
    base = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    return tempfile.TemporaryDirectory(prefix="mixce-gpu-check-", dir=base)


def skip(record: dict[str, Any], what: str, left: float) -> None:
    record.setdefault("skipped", []).append(f"{what}: {max(left, 0):.0f} s of budget left")


# --------------------------------------------------------------------------- sections


def section_matmul(ctx: Context, clock: Clock, record: dict[str, Any]) -> None:
    n = 256 if ctx.tiny else 8192
    record["runs"] = runs = []
    generator = torch.Generator(device=ctx.device).manual_seed(ctx.seed)
    dtypes = [("float32", torch.float32)]
    if ctx.device.type == "cuda":
        dtypes.insert(0, ("bf16", torch.bfloat16))
    for name, dtype in dtypes:
        a = torch.randn(n, n, device=ctx.device, dtype=dtype, generator=generator)
        b = torch.randn(n, n, device=ctx.device, dtype=dtype, generator=generator)
        seconds = median_seconds(lambda a=a, b=b: a @ b, ctx, warmup=3, repeats=10)
        peak = ctx.peaks["half"] if name == "bf16" else ctx.peaks["float32"]
        flops = 2 * n**3 / seconds
        runs.append(
            {
                "dtype": name,
                "n": n,
                "seconds": seconds,
                "flops_per_s": flops,
                "share_of_peak": flops / peak if peak else None,
            }
        )
        del a, b


def finetune_run(
    ctx: Context,
    model: Any,
    name: str,
    precision: str,
    objective: str,
    shape: dict[str, int],
) -> dict[str, Any]:
    """One call of mixce.gpt2.train.train: warm-up steps, then timed steps of batch x length."""
    from mixce.gpt2.models import count_parameters
    from mixce.gpt2.train import TrainSettings, protocol_settings, train

    warmup, timed = (1, 2) if ctx.tiny or precision == "official" else (2, 3)
    steps = warmup + timed
    vocab = model.config.vocab_size
    texts = random_texts(shape["batch"] * steps, shape["length"], vocab, ctx.seed)
    dev = random_texts(1, shape["length"], vocab, ctx.seed + 1)
    base = {
        "objective": objective,
        "hyper": {"eta": 0.5} if objective == "mixce" else {},
        "epochs": 1,
        "max_steps": steps,
        "batch_size": shape["batch"],
        "micro_batch_size": shape["micro_batch"],
        "max_length": shape["length"],
        "seed": ctx.seed,
        "dev_batch_size": 16,
    }
    settings = TrainSettings(**protocol_settings(base, {"precision": precision}))
    reset_peak(ctx)
    ctx.sync()
    tic = time.perf_counter()
    with scratch_dir() as work:
        summary = train(
            model,
            texts,
            dev,
            settings,
            work_dir=work,
            device=ctx.device,
            checkpoint_every=0,
            progress=False,
        )
    ctx.sync()
    wall = time.perf_counter() - tic
    log = summary["log"][warmup:]
    seconds = [row["seconds"] for row in log]
    tokens = sum(row["tokens"] for row in log)
    tokens_per_s = tokens / sum(seconds)
    params = count_parameters(model)
    flops = 6 * params * tokens_per_s
    peak = ctx.peak(precision)
    return {
        "model": name,
        "precision": precision,
        "train_precision": settings.precision,
        "objective": objective,
        "parameters": params,
        **shape,
        "warmup_steps": warmup,
        "timed_steps": timed,
        "step_seconds_median": statistics.median(seconds),
        "step_seconds": seconds,
        "tokens_per_step": tokens / len(log),
        "tokens_per_s": tokens_per_s,
        "model_flops_per_s": flops,
        "mfu": flops / peak if peak else None,
        "peak_memory_mb": round(summary["peak_memory_mb"], 1),
        "wall_seconds": wall,
    }


def section_finetune(ctx: Context, clock: Clock, record: dict[str, Any]) -> None:
    shapes = TINY_SHAPES if ctx.tiny else GPT2_SHAPES
    micro = TINY_MICRO_BATCH if ctx.tiny else MICRO_BATCH
    batch, length = (2, 16) if ctx.tiny else (64, 512)
    record["runs"] = runs = []
    record["mixce_over_mle"] = ratios = {}
    for name, dims in shapes.items():
        model = None
        shape = {"batch": batch, "micro_batch": micro[name], "length": length}
        walls: dict[str, float] = {}
        for precision in ("clean", "official"):
            for objective in ("mle", "mixce"):
                # a run like the last one of this precision, or 4x the clean one for float32
                guess = walls.get(precision, 4 * walls.get("clean", 0.0))
                if not clock.fits(guess):
                    skip(record, f"{name} {precision} {objective}", clock.left())
                    continue
                if model is None:
                    model = gpt2_lm(dims, TINY_VOCAB if ctx.tiny else VOCAB, ctx, ctx.seed)
                run = finetune_run(ctx, model, name, precision, objective, shape)
                walls[precision] = run["wall_seconds"]
                runs.append(run)
            pair = {
                r["objective"]: r["step_seconds_median"]
                for r in runs
                if r["model"] == name and r["precision"] == precision
            }
            if len(pair) == 2:
                ratios[f"{name} {precision}"] = pair["mixce"] / pair["mle"]
        del model
        free(ctx)


def sample_run(
    ctx: Context, model: Any, prompts: torch.Tensor, precision: str, settings: dict[str, Any]
) -> tuple[dict[str, Any], list[float]]:
    """mixce.gpt2.sample.generate against transformers' generate on one model under one precision
    setting: a short warm-up of each, then ``repeats`` timed runs of each, alternated (so that
    load hits both alike). Returns the row and the wall seconds of the timed runs."""
    from mixce.gpt2.sample import forward_dtype, generate, parse_decoding

    n, prompt_len = prompts.shape
    eos, new, batch = settings["eos_id"], settings["max_new_tokens"], settings["batch_size"]
    decoding = parse_decoding(settings["decoding"])
    dtype = forward_dtype(precision, ctx.device.type)
    # as scripts/gpt2_sample.py: TF32 matmuls under bf16 autocast, none in float32
    torch.set_float32_matmul_precision("high" if dtype is not None else "highest")

    def ours(steps: int) -> int:
        gens = generate(
            model,
            prompts.tolist(),
            decoding=decoding,
            max_new_tokens=steps,
            eos_id=eos,
            seed=ctx.seed,
            batch_size=batch,
            device=ctx.device,
            dtype=dtype,
            progress=False,
        )
        return sum(len(g.token_ids) + (g.finish_reason == "eos") for g in gens)

    def theirs(steps: int) -> int:
        torch.manual_seed(ctx.seed)
        count = 0
        autocast = (
            torch.autocast(ctx.device.type, dtype=dtype)
            if dtype is not None
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
            for start in range(0, n, batch):
                rows = prompts[start : start + batch].to(ctx.device)
                out = model.generate(
                    rows,
                    attention_mask=torch.ones_like(rows),
                    max_new_tokens=steps,
                    eos_token_id=eos,
                    pad_token_id=eos,
                    do_sample=True,
                    top_k=0,
                    top_p=1.0,
                    temperature=1.0,
                )
                for row in out[:, prompt_len:].tolist():
                    count += row.index(eos) + 1 if eos in row else len(row)
        return count

    fns = {"ours": ours, "transformers": theirs}
    for fn in fns.values():  # warm-up: kernels, allocator, caches
        fn(min(8, new))
    times: dict[str, list[float]] = {k: [] for k in fns}
    tokens: dict[str, int] = {}
    walls = []
    for _ in range(settings["repeats"]):
        for key, fn in fns.items():
            ctx.sync()
            tic = time.perf_counter()
            tokens[key] = fn(new)
            ctx.sync()
            times[key].append(time.perf_counter() - tic)
            walls.append(times[key][-1])
    row: dict[str, Any] = {
        "precision": precision,
        "autocast_dtype": str(dtype).removeprefix("torch.") if dtype else None,
    }
    for key in fns:
        seconds = statistics.median(times[key])
        row[key] = {
            "seconds": seconds,
            "generated_tokens": tokens[key],
            "tokens_per_s": tokens[key] / seconds,
            # prompt and generated tokens: the token count of docs/cluster_plan.py
            "text_tokens_per_s": (tokens[key] + n * prompt_len) / seconds,
        }
    ours_rate, their_rate = row["ours"]["tokens_per_s"], row["transformers"]["tokens_per_s"]
    row["ours_over_transformers"] = ours_rate / their_rate
    return row, walls


def section_sample(ctx: Context, clock: Clock, record: dict[str, Any]) -> None:
    from mixce.gpt2.models import count_parameters
    from mixce.gpt2.sample import float32_head

    shapes = TINY_SHAPES if ctx.tiny else GPT2_SHAPES
    vocab = TINY_VOCAB if ctx.tiny else VOCAB
    n, prompt_len, new, batch = (2, 4, 6, 2) if ctx.tiny else (32, 50, 512, 32)
    repeats = 1 if ctx.tiny else 2
    record["settings"] = settings = {
        "prompts": n,
        "prompt_tokens": prompt_len,
        "max_new_tokens": new,
        "batch_size": batch,
        "decoding": "unbiased",
        "repeats": repeats,
        "eos_id": vocab - 1,
    }
    generator = torch.Generator().manual_seed(ctx.seed)
    prompts = torch.randint(0, vocab - 1, (n, prompt_len), generator=generator)
    record["runs"] = runs = []
    walls: list[float] = []  # the large model's runs come first: an upper bound for the small's
    for name in ("large", "small"):
        model = gpt2_lm(shapes[name], vocab, ctx, ctx.seed).eval()
        # the sampler's logits: float32 from the float32 head, also under bf16 autocast
        with torch.no_grad(), torch.autocast(ctx.device.type, dtype=torch.bfloat16):
            with float32_head(model):
                head_dtype = model(input_ids=prompts[:1].to(ctx.device)).logits.dtype
        for precision in ("clean", "official"):
            if not clock.fits(sum(walls[-2:]) * repeats * 1.2):
                skip(record, f"{name} {precision}", clock.left())
                continue
            row, more = sample_run(ctx, model, prompts, precision, settings)
            walls += more
            runs.append(
                {
                    "model": name,
                    "parameters": count_parameters(model),
                    "head_logits_dtype_under_bf16_autocast": str(head_dtype).removeprefix("torch."),
                    **row,
                }
            )
        torch.set_float32_matmul_precision("highest")
        model = None
        free(ctx)


def section_featurize(ctx: Context, clock: Clock, record: dict[str, Any]) -> None:
    from transformers import GPT2Model

    from mixce.gpt2.metrics.features import GPT2Featurizer
    from mixce.gpt2.models import count_parameters, scratch_config

    shape = TINY_SHAPES["large"] if ctx.tiny else GPT2_SHAPES["large"]
    vocab = TINY_VOCAB if ctx.tiny else VOCAB
    n, length, batch = (8, 32, 4) if ctx.tiny else (128, 512, 16)
    torch.manual_seed(ctx.seed)
    with torch.device(ctx.device):
        model = GPT2Model(scratch_config(*shape, N_POSITIONS, vocab_size=vocab))
    featurizer = GPT2Featurizer(model, max_len=length, batch_size=batch, device=ctx.device)
    texts = random_texts(n, length, vocab, ctx.seed)
    featurizer.featurize_ids(texts[:batch])  # warm-up
    seconds = median_seconds(lambda: featurizer.featurize_ids(texts), ctx, warmup=0, repeats=2)
    params = count_parameters(model)
    # the matrix products skip the embedding tables (no LM head in the bare model)
    matmul_params = params - model.wte.weight.numel() - model.wpe.weight.numel()
    tokens_per_s = n * length / seconds
    peak = ctx.peaks["float32"]
    record["runs"] = [
        {
            "model": "large",
            "precision": "any",  # float32 under both settings
            "parameters": params,
            "texts": n,
            "tokens_per_text": length,
            "batch_size": batch,
            "seconds": seconds,
            "texts_per_s": n / seconds,
            "tokens_per_s": tokens_per_s,
            "model_flops_per_s": 2 * matmul_params * tokens_per_s,
            "mfu": 2 * matmul_params * tokens_per_s / peak if peak else None,
        }
    ]


def section_synthetic(ctx: Context, clock: Clock, record: dict[str, Any]) -> None:
    from mixce.synthetic.data import chain_matrix, sample_sequences
    from mixce.synthetic.settings import TrainConfig
    from mixce.synthetic.target import random_target, uniform_start
    from mixce.synthetic.train import train_q

    v, n_train, n_dev, max_length = (30, 200, 40, 30) if ctx.tiny else (1000, 50000, 5000, 500)
    steps = 20 if ctx.tiny else 200
    rng = np.random.default_rng([ctx.seed, v])
    chain = chain_matrix(random_target(v, 0.5, 0.5, rng), uniform_start(v))
    train = sample_sequences(chain, n_train, max_length, rng)
    dev = sample_sequences(chain, n_dev, max_length, rng)
    record["settings"] = {
        "vocab_size": v,
        "n_train": n_train,
        "n_dev": n_dev,
        "max_length": max_length,
        "steps": steps,
        "eval_every": 20,
        "target": "random, zero fraction 0.5",
    }
    common = {
        "estimator": "exact",
        "dtype": "float32",
        "lr": 0.01,
        "max_steps": steps,
        "eval_every": 20,
        "patience": 10**6,
        "max_length": max_length,
    }
    backends = [(ctx.device.type, "torch"), ("cpu", "numpy")]
    # warm-up: CUDA context, kernels (a short run of the first backend)
    warm = TrainConfig(**{**common, "max_steps": 20}, device=ctx.device.type, cpu_backend="torch")
    train_q(chain, train, dev, "forward_kl", 0.5, ctx.seed, warm, progress=False)
    record["runs"] = runs = []
    walls: list[float] = []
    objectives = ("forward_kl", "mixce", "reverse_kl", "mix_kl", "mixce_star", "js")
    for objective in objectives:
        for device, backend in backends:
            if backend == "numpy" and objective not in ("forward_kl", "mixce"):
                continue
            if walls and not clock.fits(1.5 * max(walls)):
                skip(record, f"{objective} {device} {backend}", clock.left())
                continue
            cfg = TrainConfig(**common, device=device, cpu_backend=backend)
            ctx.sync()
            tic = time.perf_counter()
            result, _ = train_q(chain, train, dev, objective, 0.5, ctx.seed, cfg, progress=False)
            ctx.sync()
            wall = time.perf_counter() - tic
            walls.append(wall)
            runs.append(
                {
                    "objective": objective,
                    "eta": 0.5,
                    "device": result["device"],
                    "backend": backend,
                    "steps": result["steps"],
                    "seconds": wall,
                    "seconds_per_step": wall / result["steps"],
                }
            )
    per_step = {(r["objective"], r["backend"]): r["seconds_per_step"] for r in runs}
    record["device_over_numpy_cpu"] = {
        objective: per_step[(objective, "torch")] / per_step[(objective, "numpy")]
        for objective in objectives
        if (objective, "torch") in per_step and (objective, "numpy") in per_step
    }


SECTION_FNS: dict[str, Callable[[Context, Clock, dict[str, Any]], None]] = {
    "matmul": section_matmul,
    "finetune": section_finetune,
    "sample": section_sample,
    "featurize": section_featurize,
    "synthetic": section_synthetic,
}


# --------------------------------------------------------------------------- driver


@contextlib.contextmanager
def alarm(seconds: float) -> Iterator[None]:
    """Raise SectionTimeout in the main thread after ``seconds`` (no-op where unsupported)."""
    if not hasattr(signal, "setitimer"):
        yield
        return
    previous = signal.signal(signal.SIGALRM, _timeout)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_section(
    name: str,
    fn: Callable[[Context, Clock, dict[str, Any]], None],
    ctx: Context,
    budget_s: float,
    stop_s: float | None = None,
) -> dict[str, Any]:
    """Run one section: it plans its runs within ``budget_s`` and is stopped by an alarm
    after ``stop_s`` (default: budget + GRACE_S). Its record holds status ok / partial (runs
    skipped for time) / timeout / error / skipped (no budget), the error and traceback,
    seconds and peak memory; what the section recorded before a failure is kept."""
    record: dict[str, Any] = {"status": "running", "budget_s": round(budget_s, 1)}
    stop_s = budget_s + GRACE_S if stop_s is None else stop_s
    if budget_s < 1 or stop_s < 1:
        record.update(status="skipped", error="no time left in --budget-s", seconds=0.0)
        return record
    clock = Clock(budget_s)
    reset_matmul_flags()
    reset_peak(ctx)
    try:
        with alarm(stop_s):
            fn(ctx, clock, record)
        record["status"] = "partial" if record.get("skipped") else "ok"
    except SectionTimeout:
        record["status"] = "timeout"
        record["error"] = f"stopped after {stop_s:.0f} s (its budget: {budget_s:.0f} s)"
    except Exception as error:  # noqa: BLE001 -- recorded, and the next section runs
        record["status"] = "error"
        record["error"] = f"{type(error).__name__}: {error}"[:2000]
        record["traceback"] = traceback.format_exc()[-4000:]
    with contextlib.suppress(Exception):
        ctx.sync()
    record["seconds"] = round(time.perf_counter() - clock.start, 2)
    with contextlib.suppress(Exception):
        record["peak_memory_mb"] = peak_mb(ctx)
    reset_matmul_flags()
    with contextlib.suppress(Exception):
        free(ctx)
    return record


def section_runs(sections: dict[str, dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The complete runs a section recorded (also one that failed later)."""
    runs = sections.get(name, {}).get("runs", [])
    return [r for r in runs if isinstance(r, dict)] if isinstance(runs, list) else []


def rates(sections: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Tokens/s per kind of work (train, decode, forward), model size and precision setting:
    what docs/cluster_plan.py reads. Train: all objectives' timed steps together; decode: our
    sampler, prompt and generated tokens; forward: the featurizer. A malformed run is left
    out."""
    rows: list[dict[str, Any]] = []

    def add(kind: str, run: dict[str, Any], tokens_per_s: Callable[[], float]) -> None:
        with contextlib.suppress(KeyError, TypeError, ValueError, ZeroDivisionError):
            row = {
                "kind": kind,
                "model": run["model"],
                "precision": run["precision"],
                "parameters": int(run["parameters"]),
                "tokens_per_s": float(tokens_per_s()),
            }
            rows.append(row)

    finetune = section_runs(sections, "finetune")
    keys = {(r.get("model"), r.get("precision"), r.get("parameters")) for r in finetune}
    for key in sorted(keys, key=str):
        group = [
            r for r in finetune if (r.get("model"), r.get("precision"), r.get("parameters")) == key
        ]
        add(
            "train",
            group[0],
            lambda group=group: (
                sum(r["tokens_per_step"] * r["timed_steps"] for r in group)
                / sum(sum(r["step_seconds"]) for r in group)
            ),
        )
    for r in section_runs(sections, "sample"):
        add("decode", r, lambda r=r: r["ours"]["text_tokens_per_s"])
    for r in section_runs(sections, "featurize"):
        add("forward", r, lambda r=r: r["tokens_per_s"])
    return rows


def versions() -> dict[str, Any]:
    import transformers

    out = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        out["cudnn"] = torch.backends.cudnn.version()
    return out


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def write(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(finite(result), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)


def summary_lines(result: dict[str, Any]) -> list[str]:
    """A short table of the headline figures (the device tool's reply shows the end)."""
    lines = [f"device: {result['device']['name']} ({result['device']['type']})"]
    for name, record in result["sections"].items():
        line = f"{name}: {record['status']} in {record.get('seconds', 0):.0f} s"
        if record.get("error"):
            line += f" -- {record['error'][:200]}"
        lines.append(line)
    sections = result["sections"]
    for r in section_runs(sections, "matmul"):
        lines.append(f"  matmul {r['dtype']} n={r['n']}: {r['flops_per_s'] / 1e12:.1f} TFLOP/s")
    for r in section_runs(sections, "finetune"):
        mfu = f"{100 * r['mfu']:.0f}%" if r["mfu"] is not None else "n/a"
        lines.append(
            f"  finetune {r['model']} {r['precision']} {r['objective']}: "
            f"{r['step_seconds_median']:.3f} s/step, {r['tokens_per_s']:,.0f} tok/s, MFU {mfu}, "
            f"peak {r['peak_memory_mb']:,.0f} MB"
        )
    for key, ratio in sections.get("finetune", {}).get("mixce_over_mle", {}).items():
        lines.append(f"  MixCE / MLE step time, {key}: {ratio:.3f}")
    for r in section_runs(sections, "sample"):
        lines.append(
            f"  sample {r['model']} {r['precision']}: ours {r['ours']['tokens_per_s']:,.0f} "
            f"tok/s, transformers {r['transformers']['tokens_per_s']:,.0f} tok/s "
            f"(x{r['ours_over_transformers']:.2f}), logits "
            f"{r['head_logits_dtype_under_bf16_autocast']}"
        )
    for r in section_runs(sections, "featurize"):
        lines.append(
            f"  featurize gpt2-large shape: {r['texts_per_s']:,.1f} texts/s, "
            f"{r['tokens_per_s']:,.0f} tok/s"
        )
    for r in section_runs(sections, "synthetic"):
        lines.append(
            f"  synthetic {r['objective']} {r['device']} {r['backend']}: "
            f"{1e3 * r['seconds_per_step']:.2f} ms/step"
        )
    lines.append(f"total {result['seconds']:.0f} s")
    return lines


def cuda_unusable(device: torch.device) -> str | None:
    """Why torch cannot use CUDA ``device`` (mixce.device.cuda_problem: which build, driver
    or kernel is missing), or None."""
    try:
        from mixce.device import cuda_problem
    except ImportError:  # mixce.device not importable: torch's own answer
        return None if torch.cuda.is_available() else "torch sees no CUDA GPU"
    return cuda_problem(device.index or 0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny shapes (CPU CI)")
    parser.add_argument(
        "--device", default=None, help="cuda (default), cuda:N or cpu (default with --tiny)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"JSON output (default {DEFAULT_OUT.relative_to(REPO)}; with --tiny a temporary file)",
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=400.0,
        help="seconds for all sections (default 400): each gets its share (SHARES) of what is "
        "left, and the last is stopped 15 s after the total at the latest (under 8 minutes)",
    )
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run (default all: {','.join(SECTIONS)})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default 1 with --tiny)"
    )
    args = parser.parse_args(argv)
    unknown = [s for s in args.sections.split(",") if s not in SECTIONS]
    if unknown:
        parser.error(f"--sections: unknown {', '.join(unknown)} (known: {', '.join(SECTIONS)})")
    if args.budget_s <= 0:
        parser.error(f"--budget-s must be > 0, got {args.budget_s}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device or ("cpu" if args.tiny else "cuda"))
    problem = cuda_unusable(device) if device.type == "cuda" else None
    if problem:
        print(
            f"gpu_check: --device {device}, but {problem}\nRun it where torch can use a GPU, "
            "or with --tiny (tiny shapes on the CPU)",
            file=sys.stderr,
        )
        return 2
    out = args.out
    if out is None:
        out = Path(tempfile.gettempdir(), "mixce_gpu_check_tiny.json") if args.tiny else DEFAULT_OUT
    threads = args.threads or (1 if args.tiny else None)
    if threads:
        torch.set_num_threads(threads)
    import transformers

    transformers.logging.set_verbosity_error()
    started = time.perf_counter()
    ctx = Context(device, args.tiny, args.seed)
    chosen = args.sections.split(",")
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "tiny": args.tiny,
        "device": {**ctx.peaks},
        "versions": versions(),
        "command": " ".join(["bench/gpu_check.py", *(argv if argv is not None else sys.argv[1:])]),
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "budget_s": args.budget_s,
        "sections": {},
    }
    end = started + args.budget_s  # sections share what is left, by SHARES
    for i, name in enumerate(chosen):
        now = time.perf_counter()
        budget = (end - now) * SHARES[name] / sum(SHARES[s] for s in chosen[i:])
        print(f"gpu_check: {name} (budget {budget:.0f} s) ...", flush=True)
        stop = min(budget + GRACE_S, end + GRACE_S - now)
        result["sections"][name] = record = run_section(name, SECTION_FNS[name], ctx, budget, stop)
        print(f"gpu_check: {name}: {record['status']} in {record['seconds']:.0f} s", flush=True)
        if record.get("traceback"):
            print(record["traceback"], file=sys.stderr, flush=True)
        result["rates"] = rates(result["sections"])
        result["seconds"] = time.perf_counter() - started
        write(out, result)  # after every section: a killed run keeps what it measured
    # the mixce modules the check loaded: the project's own code it measured
    result["mixce_modules"] = sorted(m for m in sys.modules if m.split(".")[0] == "mixce")
    result["seconds"] = time.perf_counter() - started
    write(out, result)
    try:
        print("\n".join(summary_lines(result)))
    except Exception as error:  # noqa: BLE001 -- the JSON is written; the table is a courtesy
        print(f"gpu_check: no summary table ({type(error).__name__}: {error})")
    print(f"wrote {out}")
    failed = [n for n, r in result["sections"].items() if r["status"] not in ("ok", "partial")]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
