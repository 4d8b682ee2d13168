"""Lexical metrics of one text or a set of texts: n-gram diversity, distinct-n, word length.

Definitions (paper section 4.2 and appendix F; /work/shared/REFERENCE.md, "Metrics"):

- **Diversity** (Meister et al. 2022, as used by MixCE): "the average fraction of unique vs.
  total n-grams for n in {1, 2, 3, 4} in each piece of text", computed on GPT-2 BPE tokens
  and averaged over texts (:func:`ngram_diversity`, :func:`mean_diversity`).
  Two variants:

  ``mode="mean"`` (default, the paper's text)
      ``mean over n of |unique n-grams| / |n-grams|``; an n for which the text has no n-gram
      (fewer than n tokens) is left out of the mean.
  ``mode="pooled"`` (the public reference code, ``metrics.diversity``)
      one ratio over the four orders pooled together,
      ``sum_n |unique n-grams| / sum_n |n-grams|``, where n-grams with n > 2 made of a
      single repeated token (``a a a``) are skipped entirely (counted neither as unique nor
      in the total). The reference code returns 0 for an empty text; here it is nan.

  Both give nan for an empty text, so that :func:`mean_diversity` can skip it.
- **distinct-n**: corpus-level |unique n-grams| / |n-grams| over all texts together
  (:func:`distinct_n`; the diversity metric of the LFD comparison).
- **Text length**: whitespace-separated words (paper Table 10; :func:`word_length`).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Iterator, Sequence

import numpy as np

__all__ = ["distinct_n", "mean_diversity", "ngram_diversity", "ngrams", "word_length"]

DIVERSITY_MODES = ("mean", "pooled")


def ngrams(tokens: Sequence[Hashable], n: int) -> Iterator[tuple[Hashable, ...]]:
    """The ``len(tokens) - n + 1`` contiguous n-grams of ``tokens`` as tuples (none if shorter)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return zip(*(tokens[i:] for i in range(n)), strict=False)


def ngram_diversity(
    tokens: Sequence[int | str], ns: Iterable[int] = (1, 2, 3, 4), mode: str = "mean"
) -> float:
    """N-gram diversity of one tokenized text (higher = less repetitive, 1.0 = no repeats).

    ``mode="mean"``: the paper's definition, mean over ``ns`` of unique/total n-grams,
    skipping an n with no n-grams. ``mode="pooled"``: the reference code's single ratio over
    all orders, skipping n>2 n-grams made of one repeated token (see the module docstring).
    Returns nan when the text has no n-gram at all (empty text).
    """
    if mode not in DIVERSITY_MODES:
        raise ValueError(f"unknown diversity mode {mode!r}: use one of {DIVERSITY_MODES}")
    tokens = list(tokens)
    ratios: list[float] = []
    pooled_unique = pooled_total = 0
    for n in ns:
        grams = list(ngrams(tokens, n))
        if mode == "pooled" and n > 2:
            grams = [g for g in grams if len(set(g)) > 1]
        if not grams:
            continue
        unique = len(set(grams))
        ratios.append(unique / len(grams))
        pooled_unique += unique
        pooled_total += len(grams)
    if mode == "pooled":
        return pooled_unique / pooled_total if pooled_total else math.nan
    return float(np.mean(ratios)) if ratios else math.nan


def mean_diversity(
    texts_tokens: Iterable[Sequence[int | str]],
    ns: Iterable[int] = (1, 2, 3, 4),
    mode: str = "mean",
) -> float:
    """Mean of :func:`ngram_diversity` over texts, ignoring nan (empty texts); nan if none."""
    ns = tuple(ns)
    values = [ngram_diversity(t, ns, mode) for t in texts_tokens]
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def distinct_n(texts_tokens: Iterable[Sequence[int | str]], n: int) -> float:
    """Corpus-level distinct-n: unique n-grams over all texts / total n-grams; nan if none."""
    seen: set[tuple[Hashable, ...]] = set()
    total = 0
    for tokens in texts_tokens:
        grams = list(ngrams(list(tokens), n))
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else math.nan


def word_length(text: str) -> int:
    """Number of whitespace-separated words of ``text`` (paper Table 10's text length)."""
    return len(text.split())
