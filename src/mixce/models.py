"""Model sources of the GPT-2 track: a hub name, a local directory, or ``scratch``.

- ``hub``: ``AutoModelForCausalLM.from_pretrained(name)`` (paper: gpt2, gpt2-medium,
  gpt2-large), fetched once by a local rule and saved under resources/ so that GPU nodes
  without internet read it from disk;
- ``local``: a directory that ``from_pretrained`` reads (used in place);
- ``scratch``: a GPT-2 of the configured size with random weights drawn from a seed; the
  workflow pretrains it with MLE before finetuning (:func:`scratch_model`).

Every model directory is written whole or not at all (:func:`save_model`), in safetensors.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

SOURCES = ("hub", "local", "scratch")


def scratch_config(
    n_layer: int, n_head: int, n_embd: int, n_positions: int, vocab_size: int = 50257
) -> Any:
    """A GPT-2 configuration of the given size (GPT-2's defaults otherwise; EOS = last id)."""
    from transformers import GPT2Config

    if n_embd % n_head:
        raise ValueError(f"n_embd ({n_embd}) must be a multiple of n_head ({n_head})")
    return GPT2Config(
        n_layer=n_layer,
        n_head=n_head,
        n_embd=n_embd,
        n_positions=n_positions,
        vocab_size=vocab_size,
        bos_token_id=vocab_size - 1,
        eos_token_id=vocab_size - 1,
    )


def scratch_model(spec: dict[str, int], seed: int) -> Any:
    """A randomly initialised GPT-2 of ``spec``'s size; the same seed gives the same weights."""
    from transformers import GPT2LMHeadModel

    config = scratch_config(spec["n_layer"], spec["n_head"], spec["n_embd"], spec["n_positions"])
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return GPT2LMHeadModel(config)
    finally:
        torch.random.set_rng_state(generator_state)


def hub_model(name: str, revision: str | None = None) -> Any:
    """The model ``name`` from the hub (or from a directory, which from_pretrained accepts)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(name, revision=revision, dtype=torch.float32)


def save_model(model: Any, out_dir: str | os.PathLike[str]) -> None:
    """Save ``model`` (safetensors) into ``out_dir``, replacing it only once complete."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one bar per save clutters the job logs
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_model(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> Any:
    """The causal LM saved in ``path``, in float32, on ``device``."""
    from transformers import AutoModelForCausalLM

    if not Path(path, "config.json").is_file():
        raise FileNotFoundError(f"{path} holds no model (config.json missing)")
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    return model.to(device)


def count_parameters(model: torch.nn.Module) -> int:
    """Number of distinct parameters (tied weights counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda when available else cpu; anything else as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
