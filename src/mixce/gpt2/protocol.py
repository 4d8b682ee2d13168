"""The evaluation and training protocol: the authors' released code or this project's choices.

The paper's numbers came from the authors' released code (GitHub bloomberg/MixCE-acl2023).
Where this project once did a thing differently, the difference is a *protocol point*: a
name with two settings,

- ``official``: as the released code does it (what produced the paper's tables);
- ``clean``: this project's choice, kept where it is better science.

``protocol`` in the config picks one setting for every point (``official`` by default) and
``protocol_points.<point>`` overrides a single point, so a user can switch one point and see
its effect. docs/PROTOCOL.md describes each point: the paper's words, the released code's
behaviour, both settings and the tables each point moves.

Rules receive only the points their code reads (:func:`points`), so switching a point
reruns the jobs it affects and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

__all__ = ["POINTS", "SETTINGS", "Setting", "point", "points", "resolve"]

Setting = Literal["official", "clean"]

#: The two settings of every point.
SETTINGS: tuple[Setting, ...] = ("official", "clean")

#: Every protocol point and what it governs (docs/PROTOCOL.md has the full account).
POINTS: dict[str, str] = {
    # GPT-2 track
    "generation_length": "where a sample stops: the released code's per-batch total length "
    "(official) or a fixed number of new tokens (clean)",
    "diversity": "diversity over the whole text with one pooled n-gram ratio (official) or "
    "over the continuation, mean over n (clean)",
    "text_length": "Table 10's length: whole text (official) or continuation (clean)",
    "length_cuts": "Figure 4's cuts: the whole text's first L tokens (official) or the prompt "
    "plus L continuation tokens (clean)",
    "controlled_fragments": "Tables 8-9's fragments: whitespace words, positions drawn "
    "without replacement, human texts cut at 511 tokens (official) or GPT-2 tokens, texts "
    "drawn with replacement, uncut human texts (clean)",
    "grad_clip": "no gradient clipping (official) or clipping at gpt2.finetune.grad_clip (clean)",
    "grad_accumulation": "mean of micro-batch token means (official) or token-weighted mean "
    "over the optimizer step (clean)",
    "data_selection": "first texts in file order, dev/test topped up from train (official) "
    "or a seeded shuffle (clean)",
    "detokenizer": "Moses detokenizer, sacremoses (official) or the project's regex rules (clean)",
    "perplexity_average": "exp of the mean of per-batch token means (official) or of the "
    "token-weighted mean (clean)",
    "newlines": "newline handling before MAUVE and coherence as in the released code "
    "(official) or the project's (clean)",
    "coherence_split": "coherence's prompt: the longest run of leading words the sample shares "
    "with the human text, empty continuations averaged in, controlled coherence truncated at L "
    "word pieces (official), or the first prompt_tokens GPT-2 tokens, empty continuations left "
    "out, the featurizer's max_len (clean)",
    "precision": "float32 everywhere (official) or bf16 autocast for training on CUDA with "
    "float32 sampling logits and reported NLLs (clean)",
    # synthetic track
    "synthetic_js_clamp": "JS clamps log q - log p to [-30, 30] before log M (official) or "
    "not (clean)",
    "synthetic_zeroing": "random P zeroes each non-EOS entry with probability f (official) "
    "or exactly round(f (V - 1)) entries per row (clean)",
    "synthetic_forced_eos": "the EOS forced at the length limit counts as a transition "
    "(official) or not (clean)",
}


def resolve(config: Mapping[str, Any]) -> dict[str, Setting]:
    """Setting of every point: ``protocol_points.<point>`` where given, else ``protocol``.

    Args:
        config: the merged workflow configuration (``protocol`` defaults to ``official``).

    Raises:
        ValueError: an unknown setting or point name (the config check reports these first).
    """
    default = config.get("protocol", "official")
    if default not in SETTINGS:
        raise ValueError(f"protocol: {default!r} is not one of {', '.join(SETTINGS)}")
    overrides = config.get("protocol_points") or {}
    resolved: dict[str, Setting] = {}
    for name in POINTS:
        value = overrides.get(name) or default
        if value not in SETTINGS:
            raise ValueError(
                f"protocol_points.{name}: {value!r} is not one of {', '.join(SETTINGS)}"
            )
        resolved[name] = value
    unknown = sorted(set(overrides) - set(POINTS))
    if unknown:
        raise ValueError(f"protocol_points: unknown point(s) {', '.join(unknown)}")
    return resolved


def point(config: Mapping[str, Any], name: str) -> Setting:
    """Setting of one point (see :func:`resolve`)."""
    if name not in POINTS:
        raise KeyError(f"unknown protocol point {name!r}")
    return resolve(config)[name]


def points(config: Mapping[str, Any], *names: str) -> dict[str, Setting]:
    """Settings of the named points only: what a rule passes in ``params``."""
    resolved = resolve(config)
    missing = [name for name in names if name not in POINTS]
    if missing:
        raise KeyError(f"unknown protocol point(s) {', '.join(missing)}")
    return {name: resolved[name] for name in names}
