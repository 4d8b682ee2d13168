"""The synthetic objectives' names and the settings of one training run (torch-free, so a NumPy
job never imports torch)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from tqdm import tqdm

#: the six objectives, in the order the paper lists them (Tables 1, 6, 7, 11)
OBJECTIVES = ("forward_kl", "reverse_kl", "mix_kl", "js", "mixce_star", "mixce")
#: The eta a single-eta objective is by definition: forward KL is the mixture at eta = 1,
#: reverse KL at eta = 0. They have no eta grid.
FIXED_ETA: dict[str, float] = {"forward_kl": 1.0, "reverse_kl": 0.0}
#: the two settings of every protocol point (mixce.gpt2.protocol.SETTINGS)
PROTOCOL_SETTINGS = ("official", "clean")
#: the released code's limit on |log Q(x) - log P(x)| inside JS's log M (its
#: ``log_prob_truncation``; protocol point ``synthetic_js_clamp``)
JS_CLAMP = 30.0


def check_objective(name: str) -> None:
    """Raise KeyError unless ``name`` is one of :data:`OBJECTIVES`."""
    if name not in OBJECTIVES:
        raise KeyError(f"unknown synthetic objective {name!r}: known are {', '.join(OBJECTIVES)}")


@dataclass
class TrainConfig:
    """The settings of one training run (config key synthetic.train and friends); protocol
    points ``synthetic_js_clamp`` and ``synthetic_forced_eos`` as ``js_clamp`` and
    ``forced_eos``. The backend: :meth:`uses_numpy`."""

    estimator: str = "exact"
    cpu_backend: str = "numpy"
    device: str = "cpu"
    #: GPUs the workflow job was given (its rule's gpu resource); None outside a workflow job
    gpus: int | None = None
    dtype: str = "float32"
    lr: float = 1e-2
    weight_decay: float = 1e-4
    log_eps: float = 1e-30
    patience: int = 5
    max_steps: int = 3000
    eval_every: int = 20
    batch_size: int = 1000
    max_epochs: int = 50
    tau: float = 1.0
    js_samples: int = 1000
    hidden_size: int = 50
    dropout: float = 0.1
    max_length: int = 500
    js_clamp: str = "clean"
    forced_eos: str = "clean"

    def uses_numpy(self) -> bool:
        """True for the NumPy backend (:mod:`mixce.synthetic.exact`): ``cpu_backend`` numpy and
        the exact estimator on the CPU (``device`` cpu, or auto in a job given no GPU, or auto
        outside a workflow job without usable CUDA); else PyTorch (:mod:`mixce.synthetic.train`)."""
        if self.cpu_backend not in ("numpy", "torch"):
            raise ValueError(
                "synthetic.train.exact.cpu_backend must be one of numpy, torch, "
                f"got {self.cpu_backend!r}"
            )
        if self.estimator != "exact" or self.cpu_backend != "numpy":
            return False
        if self.device == "auto":
            if self.gpus is not None:  # a workflow job: the GPU it was given, if any
                return self.gpus <= 0
            from mixce.device import cuda_problem  # the only case that asks torch

            return cuda_problem() is not None
        return self.device == "cpu"

    def js_clamp_limit(self) -> float | None:
        """JS's log M with log Q(x) - log P(x) clamped to [-JS_CLAMP, JS_CLAMP] (official),
        or exact (clean: None)."""
        return JS_CLAMP if _setting("js_clamp", self.js_clamp) == "official" else None

    def counts_forced_eos(self) -> bool:
        """True when the data's EOS forced at ``max_length`` counts as a transition (official)."""
        return _setting("forced_eos", self.forced_eos) == "official"


def _setting(name: str, value: str) -> str:
    if value not in PROTOCOL_SETTINGS:
        raise ValueError(
            f"TrainConfig.{name} must be one of {', '.join(PROTOCOL_SETTINGS)}, got {value!r}"
        )
    return value


class DevChecks:
    """What both training loops (NumPy and PyTorch) share: the progress bar, the stop at a
    non-finite loss, one log row per dev check, the best check so far, early stopping after
    ``patience`` checks without a better dev loss, and the run's result record (its seconds
    counted from this object's creation, set-up included)."""

    def __init__(
        self,
        objective: str,
        eta: float,
        seed: int,
        estimator: str,
        patience: int,
        progress: bool = False,
        total: int | None = None,
    ) -> None:
        self.head = {"objective": objective, "eta": eta, "seed": seed, "estimator": estimator}
        self.patience = patience
        self.best: dict = {"dev_loss": math.inf}
        self.log: list[dict] = []
        self.bad = 0
        self.t0 = time.perf_counter()
        self.name = f"{objective} eta={eta} seed={seed}"
        self.bar = tqdm(total=total, disable=not progress, desc=self.name, leave=False)

    def stepped(self, step: int, value: float) -> None:
        """Count step ``step`` of loss ``value`` (FloatingPointError if not finite)."""
        if not math.isfinite(value):
            raise FloatingPointError(f"{self.name}: loss is {value} at step {step}")
        self.bar.update(1)

    def check(
        self, step: int, train_loss: float, dev_loss: float, metrics: dict[str, float]
    ) -> bool:
        """Record one dev check; True when training must stop."""
        self.bar.set_postfix(dev=f"{dev_loss:.4g}", js=f"{metrics['avg_js']:.3g}")
        row = {"step": step, "train_loss": train_loss, "dev_loss": dev_loss, **metrics}
        self.log.append({"seed": self.head["seed"], **row})
        if dev_loss < self.best["dev_loss"]:
            self.best = {"dev_loss": dev_loss, "best_step": step, **metrics}
            self.bad = 0
            return False
        self.bad += 1
        return self.bad >= self.patience

    def result(self, device: str, steps: int) -> tuple[dict, list[dict]]:
        """(the result of the best checkpoint, the log rows)."""
        seconds = time.perf_counter() - self.t0
        self.bar.close()
        run = {**self.head, "device": device, "steps": steps, "seconds": seconds}
        return {**run, **self.best}, self.log
