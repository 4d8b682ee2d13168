"""Model sources of the GPT-2 track (saved whole or not at all, safetensors): ``hub`` (paper:
gpt2, gpt2-medium, gpt2-large; fetched once at a recorded commit for offline GPU nodes,
:func:`fetch_hub_model`), ``local`` (a directory used in place) and ``scratch`` (a seeded
random GPT-2, pretrained with MLE before finetuning, :func:`scratch_model`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

MANIFEST = "manifest.json"  # written into a fetched hub model's directory

logger = logging.getLogger(__name__)


def scratch_config(
    n_layer: int, n_head: int, n_embd: int, n_positions: int, vocab_size: int = 50257
) -> Any:
    """A GPT-2 configuration of the given size (GPT-2's defaults otherwise; EOS = last id)."""
    from transformers import GPT2Config

    if n_embd % n_head:
        raise ValueError(f"n_embd ({n_embd}) must be a multiple of n_head ({n_head})")
    size = dict(n_layer=n_layer, n_head=n_head, n_embd=n_embd, n_positions=n_positions)
    eos = vocab_size - 1
    return GPT2Config(**size, vocab_size=vocab_size, bos_token_id=eos, eos_token_id=eos)


def scratch_model(spec: dict[str, int], seed: int) -> Any:
    """A randomly initialised GPT-2 of ``spec``'s size; the same seed gives the same weights."""
    from transformers import GPT2LMHeadModel

    config = scratch_config(spec["n_layer"], spec["n_head"], spec["n_embd"], spec["n_positions"])
    with torch.random.fork_rng(devices=[]):  # the caller's CPU random state is kept
        torch.manual_seed(seed)
        return GPT2LMHeadModel(config)


def hub_model(
    name: str, revision: str | None = None, cache_dir: str | os.PathLike[str] | None = None
) -> Any:
    """``name`` (hub or directory); a commit in ``cache_dir`` (None: HF_HOME's) loads offline."""
    from transformers import AutoModelForCausalLM

    cache = None if cache_dir is None else str(cache_dir)
    return AutoModelForCausalLM.from_pretrained(
        name, revision=revision, cache_dir=cache, dtype=torch.float32
    )


def fetch_hub_model(
    name: str,
    out_dir: str | os.PathLike[str],
    record_path: str | os.PathLike[str],
    *,
    revision: str | None = None,
    refresh: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    endpoint: str | None = None,
) -> dict[str, Any]:
    """Fetch hub model ``name`` into ``out_dir`` (weights + manifest.json); returns the manifest.
    The first fetch records ``revision``'s commit in ``record_path`` (beside ``out_dir``, which
    Snakemake deletes before a rerun); later ones load it and stop on another pinned revision
    (:func:`mixce.gpt2.data.download.check_model_pin`) unless ``refresh``."""
    import transformers

    from mixce.gpt2.data.download import check_model_pin, hub_commit, is_commit
    from mixce.io import write_json

    record_file = Path(record_path)
    record = None
    if not refresh and record_file.is_file():
        check_model_pin({"name": name, "revision": revision}, record_file)
        record = json.loads(record_file.read_text(encoding="utf-8"))
    wanted = (record or {}).get("commit") or revision
    commit = None
    if not Path(name).is_dir():
        commit = wanted if is_commit(wanted) else hub_commit("model", name, wanted, endpoint)
    model = hub_model(name, revision=commit or wanted, cache_dir=cache_dir)
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    if record is None:
        record = {"name": name, "revision": revision, "commit": commit, "recorded_at": now}
        write_json(record_file, record)
        logger.info("recorded %s at commit %s in %s", name, commit, record_file)
    else:
        logger.info("%s: the recorded commit %s (%s)", name, commit, record_file)
    manifest = {
        **record,
        "parameters": count_parameters(model),
        "transformers_version": transformers.__version__,
        "fetched_at": now,
    }
    save_model(model, out_dir, manifest=manifest)
    return manifest


def save_dir(out_dir: str | os.PathLike[str], write: Callable[[Path], None]) -> None:
    """``write(tmp)`` into a fresh directory that then replaces ``out_dir`` (whole or nothing)."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        write(tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_model(
    model: Any, out_dir: str | os.PathLike[str], manifest: Mapping[str, Any] | None = None
) -> None:
    """Save ``model`` (safetensors) with ``manifest`` as manifest.json into ``out_dir``."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one bar per save clutters the job logs

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        if manifest is not None:
            (tmp / MANIFEST).write_text(json.dumps(dict(manifest), indent=2) + "\n", "utf-8")

    save_dir(out_dir, write)


def load_model(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> Any:
    """The causal LM saved in ``path``, in float32, on ``device``."""
    from transformers import AutoModelForCausalLM

    if not Path(path, "config.json").is_file():
        raise FileNotFoundError(f"{path} holds no model (config.json missing)")
    return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).to(device)


def count_parameters(model: torch.nn.Module) -> int:
    """Number of distinct parameters (tied weights counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
