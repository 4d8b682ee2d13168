"""The settings of one synthetic training run (torch-free, so a NumPy job never imports torch)."""

from __future__ import annotations

from dataclasses import dataclass

BACKENDS = ("numpy", "torch")


@dataclass
class TrainConfig:
    """The settings of one training run (config key synthetic.train and friends).

    ``cpu_backend`` (exact estimator on the CPU): ``numpy`` runs :mod:`mixce.synthetic.exact`;
    ``torch`` runs the PyTorch loop of :mod:`mixce.synthetic.train` (the reference
    implementation). On a GPU (``device`` cuda, or auto with one visible) the exact estimator
    runs in PyTorch whatever ``cpu_backend`` says, and so does the Gumbel estimator always.
    """

    estimator: str = "exact"
    cpu_backend: str = "numpy"
    device: str = "cpu"
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

    def uses_numpy(self) -> bool:
        """True when this run trains with the NumPy backend (exact estimator on the CPU)."""
        if self.cpu_backend not in BACKENDS:
            raise ValueError(
                f"synthetic.train.exact.cpu_backend must be one of {', '.join(BACKENDS)}, "
                f"got {self.cpu_backend!r}"
            )
        if self.estimator != "exact" or self.cpu_backend != "numpy":
            return False
        if self.device == "auto":  # the only case that asks torch whether a GPU is there
            import torch

            return not torch.cuda.is_available()
        return self.device == "cpu"
