"""The evaluation and training protocol: the authors' released code or this project's choices.

The paper's numbers came from the authors' released code (GitHub bloomberg/MixCE-acl2023).
Where this project once did a thing differently, the difference is a *protocol point* with two
settings: ``official`` (as the released code does it, what produced the paper's tables) and
``clean`` (this project's choice, kept where it is better science). ``protocol`` in the config
picks one setting for every point (``official`` by default) and ``protocol_points.<point>``
overrides a single point. docs/PROTOCOL.md describes each point: the paper's words, the
released code's behaviour, both settings and the tables each point moves. Rules receive only
the points their code reads (:func:`points`), so switching a point reruns only the jobs it
affects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

Setting = Literal["official", "clean"]

SETTINGS: tuple[Setting, ...] = ("official", "clean")

#: Every protocol point, the GPT-2 track's then the synthetic track's; what each governs:
#: schemas/config.schema.yaml (protocol_points) and docs/PROTOCOL.md.
POINTS: tuple[str, ...] = tuple(
    """generation_length diversity text_length length_cuts controlled_fragments grad_clip
    grad_accumulation data_selection detokenizer perplexity_average newlines coherence_split
    precision synthetic_js_clamp synthetic_zeroing synthetic_forced_eos""".split()
)


def resolve(config: Mapping[str, Any]) -> dict[str, Setting]:
    """Setting of every point: ``protocol_points.<point>`` where given, else ``protocol``.
    ValueError for an unknown setting or point name (the config check reports these first)."""
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


def points(config: Mapping[str, Any], *names: str) -> dict[str, Setting]:
    """Settings of the named points only: what a rule passes in ``params``."""
    resolved = resolve(config)
    missing = [name for name in names if name not in POINTS]
    if missing:
        raise KeyError(f"unknown protocol point(s) {', '.join(missing)}")
    return {name: resolved[name] for name in names}


def point(config: Mapping[str, Any], name: str) -> Setting:
    """Setting of one point (see :func:`resolve`)."""
    return points(config, name)[name]
