"""Clean, filter and split the raw documents of one GPT-2 dataset (:func:`prepare`).

Protocol points (docs/PROTOCOL.md): ``detokenizer`` picks the cleaners
(:func:`.clean.cleaner_for`), ``data_selection`` how dev, test and train are drawn
(:func:`select_splits`). In order: (1) every raw document through the format's cleaner;
(2) filters, per input split, each document counted under one reason: ``empty``,
``too_short`` (``words <= min_words``), ``too_long`` (``words >= max_words``), and under
``data_selection = clean`` only (the released code has neither) ``duplicate`` (the same
cleaned text earlier in the split) and ``overlap`` (in a split of higher priority: dev > test >
train); under ``official`` the report counts the repeats that stay (``repeats``), under
``clean`` train never holds a dev or test text (checked again at the end); (3) dev and test
drawn, topped up from train where short (a source with one split ``all`` is train with empty
dev and test); (4) nested train sizes: train is the pool left, cut to ``max(train_sizes)`` (or
whole with ``keep_all_train``), so the train set of size N is its first N texts; sizes the pool
cannot meet are listed in the report and :func:`check_sizes` makes them an error.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from mixce.gpt2.data.clean import MAX_WORDS, MIN_WORDS, cleaner_for, word_count
from mixce.gpt2.protocol import SETTINGS, Setting
from mixce.io import atomic_output

logger = logging.getLogger(__name__)

DROP_REASONS = ("empty", "too_short", "too_long", "duplicate", "overlap")
OUTPUT_SPLITS = ("train", "dev", "test")


def _filter(
    docs: Iterable[str],
    cleaner: Any,
    min_words: int,
    max_words: int,
    exclude: set[str],
    dedup: bool = True,
) -> tuple[list[str], dict[str, int]]:
    """The kept texts of one split (in order) and its counts; with ``dedup`` a repeated text
    and a text in ``exclude`` are dropped."""
    dropped = dict.fromkeys(DROP_REASONS, 0)
    kept: list[str] = []
    seen: set[str] = set()
    for doc in docs:
        text = cleaner(doc)
        if not text:
            dropped["empty"] += 1
            continue
        words = word_count(text)
        if words <= min_words:
            dropped["too_short"] += 1
        elif words >= max_words:
            dropped["too_long"] += 1
        elif dedup and text in seen:
            dropped["duplicate"] += 1
        elif dedup and text in exclude:
            dropped["overlap"] += 1
        else:
            seen.add(text)
            kept.append(text)
    read = len(kept) + sum(dropped.values())
    stats = {"read": read, **{f"dropped_{k}": v for k, v in dropped.items()}, "kept": len(kept)}
    return kept, stats


class Selection(NamedTuple):
    """Dev, test and the train pool left after the top-ups (:func:`select_splits`)."""

    dev: list[str]
    test: list[str]
    train_pool: list[str]
    top_dev: int  # texts of dev / test taken from the train pool
    top_test: int


def select_splits(
    pools: Mapping[str, Sequence[str]],
    n_dev: int,
    n_test: int,
    *,
    data_selection: Setting,
    seed: int,
) -> Selection:
    """Dev and test from the kept texts of ``pools`` (``dev``, ``test``, ``train`` in file
    order; a missing one is empty), topped up from train (those texts leave it; never more than
    it holds). ``"clean"``: ``numpy.random.default_rng(seed)`` permutes dev, test and train (in
    that order); dev is the first ``n_dev`` of its pool topped up from the head of train, then
    test from the next train texts. ``"official"`` (the released data scripts; ``seed`` unused):
    file order; test first (topped up from the head of train), then dev from the next ones."""
    if data_selection not in SETTINGS:
        raise ValueError(f"data_selection {data_selection!r} is not one of {SETTINGS}")
    dev_pool, test_pool, train = (list(pools.get(s, [])) for s in ("dev", "test", "train"))
    if data_selection == "clean":
        rng = np.random.default_rng(seed)
        dev_pool, test_pool, train = (  # one rng permutes dev, test, train in this order
            [p[i] for i in rng.permutation(len(p))] for p in (dev_pool, test_pool, train)
        )
        dev = dev_pool[:n_dev]
        top_dev = min(n_dev - len(dev), len(train))
        dev += train[:top_dev]
        test = test_pool[:n_test]
        top_test = min(n_test - len(test), len(train) - top_dev)
        test += train[top_dev : top_dev + top_test]
    else:
        test = test_pool[:n_test]
        top_test = min(n_test - len(test), len(train))
        test += train[:top_test]
        dev = dev_pool[:n_dev]
        top_dev = min(n_dev - len(dev), len(train) - top_test)
        dev += train[top_test : top_test + top_dev]
    return Selection(dev, test, train[top_dev + top_test :], top_dev, top_test)


def _repeats(splits: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Repeated texts: within each split (copies beyond the first) and across splits."""
    held_out = set(splits["dev"]) | set(splits["test"])
    counts = {f"within_{s}": len(splits[s]) - len(set(splits[s])) for s in OUTPUT_SPLITS}
    counts["train_in_dev_or_test"] = sum(t in held_out for t in splits["train"])
    counts["dev_in_test"] = len(set(splits["dev"]) & set(splits["test"]))
    return counts


def prepare(
    raw: Mapping[str, Sequence[str]],
    fmt: str,
    *,
    n_dev: int,
    n_test: int,
    train_sizes: Sequence[int],
    seed: int,
    min_words: int = MIN_WORDS,
    max_words: int = MAX_WORDS,
    dataset: str | None = None,
    keep_all_train: bool = False,
    data_selection: Setting = "official",
    detokenizer: Setting = "official",
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """``({"train": [...], "dev": [...], "test": [...]}, report)`` of raw documents per official
    split (``train``, optionally ``dev`` / ``test``) or in one split ``all`` (module docstring).
    ``fmt``: a :data:`.clean.CLEANERS` key; ``keep_all_train``: keep the whole train pool."""
    cleaner = cleaner_for(fmt, detokenizer)
    dedup = data_selection == "clean"
    sizes = sorted({int(s) for s in train_sizes})
    if (not sizes and not keep_all_train) or (sizes and sizes[0] < 1):
        raise ValueError(f"train_sizes must be positive integers, got {list(train_sizes)}")
    if min_words >= max_words:
        raise ValueError(f"min_words ({min_words}) must be < max_words ({max_words})")
    single = set(raw) == {"all"}
    if not single and not ("train" in raw and set(raw) <= set(OUTPUT_SPLITS)):
        raise ValueError(
            f"raw splits must be 'train' (+ 'dev', 'test') or just 'all', got {sorted(raw)}"
        )
    official = {"train": raw["all"]} if single else raw

    pools: dict[str, list[str]] = {}
    stats: dict[str, dict[str, int]] = {}
    exclude: set[str] = set()
    for split in ("dev", "test", "train"):  # priority order for the overlap rule
        docs = official.get(split, [])
        pools[split], stats[split] = _filter(docs, cleaner, min_words, max_words, exclude, dedup)
        exclude.update(pools[split])
    dev, test, rest, top_dev, top_test = select_splits(
        pools, n_dev, n_test, data_selection=data_selection, seed=seed
    )
    train = rest if keep_all_train else rest[: sizes[-1]]

    repeats = _repeats({"train": train, "dev": dev, "test": test})
    if dedup and any(repeats.values()):
        raise RuntimeError(f"internal error: repeated texts after deduplication: {repeats}")

    if single:
        split_stats = {"all": stats["train"]}
        origin = {"dev": {"all": len(dev)}, "test": {"all": len(test)}}
    else:
        split_stats = {s: stats[s] for s in OUTPUT_SPLITS if s in raw}
        origin = {
            "dev": {"dev": len(dev) - top_dev, "train": top_dev},
            "test": {"test": len(test) - top_test, "train": top_test},
        }
    report: dict[str, Any] = {
        "dataset": dataset,
        "format": fmt,
        "protocol": {"data_selection": data_selection, "detokenizer": detokenizer},
        "selection": "seeded shuffle" if dedup else "file order",
        "seed": seed,
        "min_words": min_words,
        "max_words": max_words,
        "length_rule": f"{min_words} < whitespace words < {max_words}",
        "requested": {"dev": n_dev, "test": n_test, "train_sizes": sizes},
        "splits": split_stats,
        "final": {"train": len(train), "dev": len(dev), "test": len(test)},
        "origin": origin,
        "train_pool": len(rest),
        "unused": {
            "dev": 0 if single else len(pools["dev"]) - (len(dev) - top_dev),
            "test": 0 if single else len(pools["test"]) - (len(test) - top_test),
            "train": len(rest) - len(train),
        },
        "available_train_sizes": [s for s in sizes if s <= len(rest)],
        "unmet_train_sizes": [s for s in sizes if s > len(rest)],
        "short": {"dev": n_dev - len(dev), "test": n_test - len(test)},
        "repeats": repeats,
    }
    logger.info("%s: %s; final %s; repeats %s", dataset, split_stats, report["final"], repeats)
    return {"train": train, "dev": dev, "test": test}, report


def check_sizes(
    report: Mapping[str, Any], train_sizes: Sequence[int], dataset: str | None = None
) -> None:
    """Raise ValueError naming the dev, test and ``train_sizes`` sizes the report cannot meet."""
    name = dataset or report.get("dataset") or "dataset"
    problems = []
    for split in ("dev", "test"):
        short = report["short"][split]
        if short > 0:
            wanted = report["requested"][split]
            problems.append(f"{split} size {wanted} (only {wanted - short} usable texts)")
    available = report["train_pool"]
    for size in sorted({int(s) for s in train_sizes}):
        if size > available:
            problems.append(f"train size {size} (only {available} usable train texts available)")
    if problems:
        raise ValueError(
            f"dataset {name!r}: cannot provide {'; '.join(problems)} after cleaning and the "
            f"{report['length_rule']} filter; lower the sizes or use more data"
        )


def write_jsonl(path: str | os.PathLike[str], texts: Iterable[str]) -> None:
    """Write texts atomically as JSON lines, one ``{"text": ...}`` per line."""
    with atomic_output(path) as handle:
        for text in texts:
            handle.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")


def read_split(path: str | os.PathLike[str]) -> list[str]:
    """The texts of a file written by :func:`write_jsonl`, in order."""
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle if line.strip()]
