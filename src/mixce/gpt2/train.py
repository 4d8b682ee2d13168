"""One training loop for the GPT-2 track (finetuning, MLE pretraining), :func:`train`: a step
takes ``batch_size`` texts (epoch order: a permutation of seed and epoch) in micro-batches whose
gradients accumulate; a text is GPT-2 ids + EOS, right-padded with EOS under mask 0, the model sees
``ids[:-1]`` and predicts ``ids[1:]`` (no BOS, the first token is not scored). AdamW (fused on
CUDA), linear schedule with optional warm-up. The dev loss is the training objective's (MixCE
keeps its mixed loss, as the reference code); the model with the lowest one is saved. A resume
checkpoint (every ``checkpoint_every`` steps and on SIGTERM) is used when its fingerprint
(settings + data) matches, and the run ends with the weights of an uninterrupted one. An
objective's :class:`~mixce.objectives.ObjectiveSpec` says whether it takes a frozen ``reference``
model's logits and keeps a ``state`` dict (checkpointed; None in dev evaluation).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import pickle
import resource
import signal
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from tqdm import tqdm

from mixce.gpt2.models import save_model
from mixce.objectives import ObjectiveSpec, check_hyper, get_spec, masked_mean, token_logprobs

logger = logging.getLogger(__name__)

Accumulation = Literal["tokens", "micro_batches"]
Precision = Literal["bf16_autocast", "float32"]
DevAverage = Literal["tokens", "batch_means"]
#: Texts per dev batch in the released training script (run.py passes 32 for every model).
RELEASED_EVAL_BATCH_SIZE = 32


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Everything that shapes the trained weights (the fingerprint of a resume checkpoint)."""

    objective: str = "mle"
    # The objective's hyper-parameters (mixce.objectives.check_hyper: defaults are filled in
    # at construction, so equal runs have equal settings and fingerprints).
    hyper: dict[str, float] = dataclasses.field(default_factory=dict, hash=False)
    lr: float = 5e-5
    weight_decay: float = 0.0
    warmup_steps: int = 0
    grad_clip: float | None = 1.0
    epochs: int = 5
    max_steps: int | None = None  # cap on optimizer steps (pretraining); None: whole epochs
    batch_size: int = 64  # texts per optimizer step (effective batch)
    micro_batch_size: int = 8
    max_length: int = 512  # tokens per text, EOS included
    seed: int = 0
    eval_every: int = 0  # optimizer steps between dev evaluations; 0: at each epoch's end
    dev_batch_size: int = 16
    accumulation: Accumulation = "tokens"  # see micro_batch_weights
    precision: Precision = "bf16_autocast"  # see autocast_dtype
    dev_average: DevAverage = "tokens"  # see evaluate

    def __post_init__(self) -> None:
        object.__setattr__(self, "hyper", check_hyper(self.objective, self.hyper))
        for name, kind in (
            ("accumulation", Accumulation),
            ("precision", Precision),
            ("dev_average", DevAverage),
        ):
            if getattr(self, name) not in get_args(kind):
                raise ValueError(
                    f"TrainSettings.{name}: {getattr(self, name)!r} is not one of "
                    f"{', '.join(get_args(kind))}"
                )

    def objective_kwargs(self) -> dict[str, float]:
        """The objective's hyper-parameters, defaults filled in, as keyword arguments."""
        return check_hyper(self.objective, self.hyper)


#: (field, value under official, value under clean; ...: the configured value)
PROTOCOL_FIELDS = {
    "grad_clip": [("grad_clip", None, ...)],
    "grad_accumulation": [("accumulation", "micro_batches", "tokens")],
    "precision": [("precision", "float32", "bf16_autocast")],
    "newlines": [],  # read by the rule's script (mixce.gpt2.tokenizer.loader_texts)
    "perplexity_average": [
        ("dev_average", "batch_means", "tokens"),
        ("dev_batch_size", RELEASED_EVAL_BATCH_SIZE, ...),
    ],
}


def protocol_settings(
    settings: Mapping[str, Any], points: Mapping[str, Literal["official", "clean"]]
) -> dict[str, Any]:
    """:class:`TrainSettings` fields ``settings`` under the protocol ``points`` given
    (:data:`PROTOCOL_FIELDS`); a point not given leaves its fields (pretraining gives none)."""
    out = dict(settings)
    for name, setting in points.items():
        if name not in PROTOCOL_FIELDS:
            raise KeyError(f"protocol point {name!r} does not concern the training loop")
        for field, official, clean in PROTOCOL_FIELDS[name]:
            value = official if setting == "official" else clean
            if value is not ...:
                out[field] = value
    return out


class NonFiniteLoss(FloatingPointError):
    """The training loss became NaN or infinite."""


class Preempted(RuntimeError):
    """Training stopped on request (SIGTERM) after saving a resume checkpoint."""


class CheckpointError(RuntimeError):
    """A resume checkpoint that is refused: it holds pickled objects, or is not one at all."""


class StopOnSignal:
    """Context manager: SIGTERM (and SIGINT) set a flag that the loop checks between steps."""

    signals = (signal.SIGTERM, signal.SIGINT)
    received: int | None = None

    def __enter__(self) -> StopOnSignal:
        self._previous = {sig: signal.signal(sig, self._handle) for sig in self.signals}
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        logger.warning("received %s: stopping after the current step", signal.Signals(signum).name)
        self.received = signum

    def __call__(self) -> bool:
        return self.received is not None

    def __exit__(self, *_: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def pad_batch(
    sequences: Sequence[Sequence[int]], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(inputs = ids[:-1], attention mask, targets = ids[1:], target mask), right-padded."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    real = torch.zeros((len(sequences), width), dtype=torch.bool)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        real[row, : len(seq)] = True
    ids, real = ids.to(device), real.to(device)
    return ids[:, :-1], real[:, :-1].long(), ids[:, 1:], real[:, 1:]


def step_batches(
    lengths: Sequence[int],
    order: Sequence[int],
    batch_size: int,
    micro_batch_size: int,
    by_length: bool = True,
) -> list[list[list[int]]]:
    """Each optimizer step's micro-batches of text indices; ``by_length``: a step's texts sorted
    longest first (ties by index) before the cut, else cut in ``order``."""
    steps = []
    for start in range(0, len(order), batch_size):
        chunk = list(order[start : start + batch_size])
        if by_length:
            chunk.sort(key=lambda i: (-lengths[i], i))
        steps.append(
            [chunk[m : m + micro_batch_size] for m in range(0, len(chunk), micro_batch_size)]
        )
    return steps


def micro_batch_weights(
    token_counts: Sequence[int], accumulation: Accumulation, steps_per_update: int
) -> list[float]:
    """Weight of each micro-batch's mean loss (``token_counts``: its real target tokens): its
    share of the step's tokens ("tokens", clean) or ``1 / steps_per_update`` ("micro_batches",
    official: the released divisor; an epoch's short last step weighs less)."""
    if accumulation == "tokens":
        total = sum(token_counts)
        return [n / total for n in token_counts]
    if accumulation == "micro_batches":
        return [1.0 / steps_per_update] * len(token_counts)
    raise ValueError(f"accumulation {accumulation!r} is not one of {get_args(Accumulation)}")


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The permutation of ``n`` texts for ``epoch`` (a function of seed and epoch only)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator).tolist()


def autocast_dtype(device_type: str, precision: Precision) -> torch.dtype | None:
    """bf16 on CUDA under ``"bf16_autocast"``; None (float32, no autocast) otherwise."""
    if precision not in get_args(Precision):
        raise ValueError(f"precision {precision!r} is not one of {get_args(Precision)}")
    return torch.bfloat16 if device_type == "cuda" and precision == "bf16_autocast" else None


def autocast(device: torch.device, precision: Precision = "bf16_autocast") -> Any:
    """Autocast to :func:`autocast_dtype`; a null context where that is None."""
    dtype = autocast_dtype(device.type, precision)
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def tf32_allowed(device_type: str, precision: Precision) -> bool:
    """CUDA matmuls may use TF32 only under ``"bf16_autocast"`` (official: the V100 float32)."""
    return device_type == "cuda" and precision == "bf16_autocast"


@contextmanager
def float32_matmuls() -> Iterator[None]:
    """TF32 off for CUDA matmuls and convolutions inside; the previous flags restored after."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def clip_gradients(parameters: Iterable[torch.nn.Parameter], max_norm: float | None) -> float:
    """The gradients' total 2-norm before clipping; clips to ``max_norm`` unless it is None."""
    parameters = [p for p in parameters if p.grad is not None]
    if max_norm is not None:
        return float(torch.nn.utils.clip_grad_norm_(parameters, max_norm))
    return float(torch.nn.utils.get_total_norm([p.grad for p in parameters]))


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated (CUDA) or peak resident memory of the process (CPU), MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# What torch.load(..., weights_only=True) reads (exact types: numpy.float64 is refused).
PLAIN_TYPES = (str, int, float, bool, type(None))
RESUME_KEYS = ("fingerprint", "model", "optimizer", "scheduler", "rng", "state")


def fingerprint(settings: TrainSettings, *arrays: Sequence[Sequence[int]]) -> str:
    """Hash of the settings and token ids: a resume checkpoint is used only if it matches."""
    digest = hashlib.sha256(json.dumps(dataclasses.asdict(settings), sort_keys=True).encode())
    for array in arrays:
        for seq in array:
            digest.update(len(seq).to_bytes(4, "little"))
            digest.update(torch.as_tensor(seq, dtype=torch.int32).numpy().tobytes())
    return digest.hexdigest()


def check_plain(obj: Any, where: str = "checkpoint") -> None:
    """A TypeError naming the first value in ``obj`` a ``weights_only=True`` load would refuse."""
    if type(obj) in (dict, OrderedDict):
        for key, value in obj.items():
            if type(key) not in (str, int):
                raise TypeError(f"{where} has a key of type {type(key).__name__}: {key!r}")
            check_plain(value, f"{where}[{key!r}]")
    elif type(obj) in (list, tuple):
        for i, value in enumerate(obj):
            check_plain(value, f"{where}[{i}]")
    elif type(obj) not in PLAIN_TYPES and type(obj) not in (torch.Tensor, torch.nn.Parameter):
        raise TypeError(
            f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}: a resume "
            "checkpoint holds only tensors, str/int/float/bool/None and lists/dicts of them"
        )


def atomic_tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save ``obj`` (checked by :func:`check_plain`) to a temporary name, then rename."""
    check_plain(obj)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic_tmp(path)
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_resume(path: Path) -> dict[str, Any]:
    """The resume checkpoint at ``path``, read with ``weights_only=True``: a file with other
    objects (a plain load would run its writer's code) or no checkpoint: CheckpointError."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        try:
            names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except (ValueError, RuntimeError, pickle.UnpicklingError):  # not a torch.save file
            names = []
        # torch's message advises weights_only=False: keep only what its reader found
        found = str(error).partition("WeightsUnpickler error:")[2]
        found = " ".join(found.partition("Check the documentation")[0].split())[:200]
        what = (
            f"holds pickled objects ({', '.join(names)}) that loading would unpickle, which "
            "can run any code"
            if names
            else f"is no checkpoint that torch.save wrote ({found or 'unreadable'})"
        )
        raise CheckpointError(
            f"refusing resume checkpoint {path}: it {what}. This workflow writes only "
            "tensors and plain types there; if you did not put the file there, find out who "
            "did, then delete it to start this training run over"
        ) from None
    except (RuntimeError, EOFError, OSError) as error:
        raise CheckpointError(
            f"cannot read resume checkpoint {path} ({error}); delete it to start this "
            "training run over"
        ) from error
    missing = [k for k in RESUME_KEYS if not isinstance(saved, dict) or k not in saved]
    if missing:
        raise CheckpointError(
            f"{path} is not a resume checkpoint: no {', '.join(missing)}; delete it to start "
            "this training run over"
        )
    return saved


def forward(
    model: torch.nn.Module, reference: torch.nn.Module | None, ids: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Logits of ``model`` and the objective's ``{"reference_logits": ...}`` (no grad) or {}."""
    batch = {"input_ids": ids, "attention_mask": mask}
    logits = model(**batch).logits
    if reference is None:
        return logits, {}
    with torch.no_grad():
        return logits, {"reference_logits": reference(**batch).logits}


def prepare_reference(
    spec: ObjectiveSpec, reference: torch.nn.Module | None, device: torch.device
) -> torch.nn.Module | None:
    """The reference model on ``device``, frozen; a ValueError unless the objective takes one."""
    if spec.needs_reference and reference is None:
        raise ValueError(
            f"objective {spec.name!r} needs a reference model (train(..., reference=model))"
        )
    if reference is not None and not spec.needs_reference:
        raise ValueError(f"objective {spec.name!r} takes no reference model, but one was given")
    if reference is not None:
        reference.to(device).eval().requires_grad_(False)
    return reference


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    texts: Sequence[Sequence[int]],
    settings: TrainSettings,
    device: torch.device,
    reference: torch.nn.Module | None = None,
) -> dict[str, float]:
    """Dev loss of the training objective and plain NLL, always float32 (no autocast, no TF32).
    ``dev_average`` "tokens" (clean): texts sorted by length, the token-weighted mean;
    "batch_means" (official, the released loop): file order, each batch's token mean weighted by
    its texts. A stateful objective gets ``state=None`` (e.g. loss truncation's plain NLL)."""
    spec = get_spec(settings.objective)
    reference = prepare_reference(spec, reference, device)
    hyper = settings.objective_kwargs()
    was_training = model.training
    model.eval()
    order = list(range(len(texts)))
    if settings.dev_average == "tokens":
        order.sort(key=lambda i: (-len(texts[i]), i))
    loss_sum = nll_sum = weight_sum = 0.0
    total_tokens = 0
    for start in range(0, len(order), settings.dev_batch_size):
        batch = [texts[i] for i in order[start : start + settings.dev_batch_size]]
        inputs, attention, targets, mask = pad_batch(batch, batch[0][-1], device)
        with float32_matmuls():
            logits, extra = forward(model, reference, inputs, attention)
        if spec.stateful:
            extra["state"] = None
        n = int(mask.sum())
        weight = n if settings.dev_average == "tokens" else len(batch)
        loss = spec.fn(logits, targets, mask, **hyper, **extra)
        loss_sum += float(loss) * weight
        nll_sum += float(masked_mean(-token_logprobs(logits, targets), mask)) * weight
        weight_sum += weight
        total_tokens += n
    model.train(was_training)
    weight_sum = max(weight_sum, 1)
    return {"loss": loss_sum / weight_sum, "nll": nll_sum / weight_sum, "tokens": total_tokens}


def train(
    model: torch.nn.Module,
    train_texts: Sequence[Sequence[int]],
    dev_texts: Sequence[Sequence[int]],
    settings: TrainSettings,
    *,
    work_dir: str | os.PathLike[str],
    device: torch.device,
    checkpoint_every: int = 100,
    should_stop: Callable[[], bool] = lambda: False,
    progress: bool = True,
    reference: torch.nn.Module | None = None,
) -> dict[str, Any]:
    """Train ``model`` on ``train_texts`` (ids ending in EOS); the run's summary, log rows under
    ``"log"``. ``work_dir`` (outside the job's outputs, which Snakemake removes on failure) gets
    ``resume.pt`` (~12 bytes a parameter) and ``best/``; :class:`Preempted` on ``should_stop()``."""
    if not train_texts or not dev_texts:
        raise ValueError(f"need train and dev texts, got {len(train_texts)} and {len(dev_texts)}")
    spec = get_spec(settings.objective)
    hyper = settings.objective_kwargs()
    reference = prepare_reference(spec, reference, device)
    resume_path = Path(work_dir, "resume.pt")
    lengths = [len(t) for t in train_texts]
    steps_per_epoch = math.ceil(len(train_texts) / settings.batch_size)
    total_steps = steps_per_epoch * settings.epochs
    if settings.max_steps is not None:
        total_steps = min(total_steps, settings.max_steps)
    eval_every = settings.eval_every or steps_per_epoch
    warmup = settings.warmup_steps

    if device.type == "cuda":
        tf32 = tf32_allowed(device.type, settings.precision)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    sizes = settings.batch_size, settings.micro_batch_size
    steps_per_update = math.ceil(settings.batch_size / settings.micro_batch_size)
    by_length = settings.accumulation == "tokens"
    model.to(device).train()
    adamw = dict(lr=settings.lr, weight_decay=settings.weight_decay, fused=device.type == "cuda")
    optimizer = torch.optim.AdamW(model.parameters(), **adamw)
    scheduler = torch.optim.lr_scheduler.LambdaLR(  # linear warm-up to 1, linear decay to 0
        optimizer,
        lambda step: (
            (step + 1) / warmup
            if step < warmup
            else max(0.0, (total_steps - step) / max(1, total_steps - warmup))
        ),
    )

    key = fingerprint(settings, train_texts, dev_texts)
    # "objective": the stateful objective's own state (e.g. loss truncation's loss buffer)
    state = dict(step=0, best=math.inf, best_step=None, evals=[], log=[], objective={})
    torch.manual_seed(settings.seed)
    # a save cut short by a kill leaves its temporary file (a checkpoint's size): drop it
    atomic_tmp(resume_path).unlink(missing_ok=True)
    if resume_path.is_file():
        saved = load_resume(resume_path)
        if saved.get("fingerprint") == key:
            for name, part in zip(RESUME_KEYS[1:4], (model, optimizer, scheduler), strict=True):
                part.load_state_dict(saved[name])
            torch.random.set_rng_state(saved["rng"]["torch"])
            if "cuda" in saved["rng"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(saved["rng"]["cuda"])
            state = saved["state"]
            logger.info("resumed from %s at step %d", resume_path, state["step"])
        else:
            logger.warning("ignoring %s: written for other settings or data", resume_path)

    def checkpoint() -> None:
        rng = {"torch": torch.random.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        parts = model, optimizer, scheduler
        saved = dict(zip(RESUME_KEYS[1:4], (p.state_dict() for p in parts), strict=True))
        save_atomic({"fingerprint": key, **saved, "rng": rng, "state": state}, resume_path)
        logger.info("checkpoint at step %d -> %s", state["step"], resume_path)

    started = time.perf_counter()
    bar = tqdm(total=total_steps, initial=state["step"], disable=not progress, desc="train")
    while state["step"] < total_steps:
        epoch, in_epoch = divmod(state["step"], steps_per_epoch)
        order = epoch_order(len(train_texts), settings.seed, epoch)
        step_plan = step_batches(lengths, order, *sizes, by_length=by_length)[in_epoch]
        micro_tokens = [sum(lengths[i] - 1 for i in micro) for micro in step_plan]
        weights = micro_batch_weights(micro_tokens, settings.accumulation, steps_per_update)
        step_loss = 0.0
        tic = time.perf_counter()
        for m, micro in enumerate(step_plan):
            inputs, attention, targets, mask = pad_batch(
                [train_texts[i] for i in micro], train_texts[micro[0]][-1], device
            )
            with autocast(device, settings.precision):
                logits, extra = forward(model, reference, inputs, attention)
            if spec.stateful:
                extra["state"] = state["objective"]
            loss = spec.fn(logits, targets, mask, **hyper, **extra)
            if not torch.isfinite(loss):
                raise NonFiniteLoss(
                    f"{settings.objective} loss is {float(loss.detach())} at optimizer step "
                    f"{state['step'] + 1} (epoch {epoch}, step {in_epoch} of the epoch), "
                    f"micro-batch {m} holding train texts {micro} "
                    f"(lr {scheduler.get_last_lr()[0]:.3g})"
                )
            (loss * weights[m]).backward()
            step_loss += float(loss.detach()) * weights[m]
        grad_norm = clip_gradients(model.parameters(), settings.grad_clip)
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        state["step"] += 1
        seconds = time.perf_counter() - tic
        row = dict(step=state["step"], epoch=epoch, lr=lr, loss=step_loss, grad_norm=grad_norm)
        state["log"].append({**row, "tokens": sum(micro_tokens), "seconds": seconds})
        bar.update(1)
        bar.set_postfix(loss=f"{step_loss:.3f}")
        if state["step"] % eval_every == 0 or state["step"] == total_steps:
            result = evaluate(model, dev_texts, settings, device, reference)
            row = {"step": state["step"], "epoch": state["step"] / steps_per_epoch, **result}
            state["evals"].append(row)
            logger.info(
                "step %(step)d (epoch %(epoch).2f): dev loss %(loss).4f, nll %(nll).4f", row
            )
            if result["loss"] < state["best"]:
                state["best"], state["best_step"] = result["loss"], state["step"]
                save_model(model, Path(work_dir, "best"))
        if should_stop():
            checkpoint()
            bar.close()
            raise Preempted(
                f"stopped at step {state['step']} of {total_steps}; resume checkpoint saved "
                f"to {resume_path}: rerun the job to continue"
            )
        if checkpoint_every and state["step"] % checkpoint_every == 0:
            checkpoint()
    bar.close()

    log = state["log"]
    tokens = sum(row["tokens"] for row in log)
    return {
        "settings": dataclasses.asdict(settings),
        "steps": state["step"],
        "steps_per_epoch": steps_per_epoch,
        "best_dev_loss": state["best"],
        "best_step": state["best_step"],
        "evals": state["evals"],
        "seconds_this_session": time.perf_counter() - started,
        "tokens_per_second": tokens / max(sum(row["seconds"] for row in log), 1e-9),
        "trained_tokens": tokens,
        "peak_memory_mb": peak_memory_mb(device),
        "device": str(device),
        "log": log,
    }
