"""Lexical metrics (paper section 4.2 and appendix F; docs/PROTOCOL.md, points ``diversity``
and ``text_length``):

- **Diversity** (Meister et al. 2022, as used by MixCE): "the average fraction of unique vs.
  total n-grams for n in {1, 2, 3, 4} in each piece of text", on GPT-2 tokens, averaged over
  texts (:func:`ngram_diversity`). ``mode="mean"`` (protocol ``clean``, the paper's words):
  the mean over n of |unique n-grams| / |n-grams|, an n with no n-gram left out.
  ``mode="pooled"`` (``official``, the released ``metrics.diversity``): one ratio over the
  four orders pooled, n-grams with n > 2 of a single repeated token (``a a a``) skipped.
- **distinct-n** (the LFD comparison's): |unique n-grams| / |n-grams| over all texts together.
- **self-BLEU** (Zhu et al. 2018, Texygen; used by LFD): mean BLEU-4 of each text against the
  others (lower = more diverse). **seq-rep-n** (Welleck et al. 2020): 1 - the unique fraction
  of one text's n-grams, averaged over texts.
- **Text length**: whitespace-separated words (paper Table 10).
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Hashable, Iterable, Iterator, Sequence

import numpy as np

from mixce.gpt2.protocol import Setting

DIVERSITY_MODES = ("mean", "pooled")


def ngrams(tokens: Sequence[Hashable], n: int) -> Iterator[tuple[Hashable, ...]]:
    """The ``len(tokens) - n + 1`` contiguous n-grams of ``tokens`` as tuples (none if shorter)."""
    return zip(*(tokens[i:] for i in range(n)), strict=False)


def ngram_diversity(
    tokens: Sequence[int | str], ns: Iterable[int] = (1, 2, 3, 4), mode: str = "mean"
) -> float:
    """N-gram diversity of one tokenized text, ``mode`` mean or pooled; nan for no n-gram."""
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


def diversity_score(texts_tokens: Iterable[Sequence[int | str]], setting: Setting) -> float:
    """Diversity under point ``diversity``: official (the released
    ``compute_diversity_repetition``), the pooled ratio averaged over every text, an empty
    text counting 0 (released: 0 / 1e-15); clean, :func:`mean_diversity` of the mean ratios."""
    if setting == "clean":
        return mean_diversity(texts_tokens, mode="mean")
    if setting != "official":
        raise ValueError(f"diversity setting must be official or clean, got {setting!r}")
    values = [ngram_diversity(t, mode="pooled") for t in texts_tokens]
    values = [0.0 if math.isnan(v) else v for v in values]
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


def seq_rep_n(tokens: Sequence[Hashable], n: int = 4) -> float:
    """seq-rep-n of one text: ``1 - |unique n-grams| / |n-grams|``; 0 with no n-gram."""
    grams = list(ngrams(list(tokens), n))
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def mean_seq_rep_n(texts_tokens: Iterable[Sequence[Hashable]], n: int = 4) -> float:
    """Mean of :func:`seq_rep_n` over texts (texts with no n-gram count as 0); nan if none."""
    values = [seq_rep_n(t, n) for t in texts_tokens]
    return float(np.mean(values)) if values else math.nan


def _closest_other_length(sorted_lengths: list[int], length: int) -> int:
    """NLTK's closest reference length, ``length`` (the hypothesis) left out; shorter on a tie."""
    i = bisect.bisect_left(sorted_lengths, length)
    others = sorted_lengths[max(0, i - 1) : i] + sorted_lengths[i + 1 : i + 2]
    return min(others, key=lambda other: (abs(other - length), other))


def self_bleu(
    texts_tokens: Sequence[Sequence[Hashable]],
    n_max: int = 4,
    max_texts: int | None = None,
    seed: int = 0,
) -> float:
    """Mean BLEU-``n_max`` of each text against all the other texts as references; each
    text's BLEU is NLTK's ``sentence_bleu(others, text, weights=(1/n_max,) * n_max,
    smoothing_function=SmoothingFunction().method1)``:

    modified precision p_n = sum over the text's n-grams g of min(count(g), max over the other
    texts of count(g)) / max(1, the text's number of n-grams), a zero numerator smoothed to 0.1
    (method1); a text with no unigram in any other text (or empty) scores 0; brevity penalty
    ``exp(1 - r / c)`` when its length c is below r, the length of the other text closest to c
    (the shorter on a tie), else 1; BLEU = BP * exp(mean over n of log p_n).

    ``max_texts``: a random subset of that many texts (``default_rng(seed)``, without
    replacement) serves as hypotheses and references (all texts when None or no more). Cost
    O(total n-grams). nan for fewer than two texts.
    """
    texts = [list(t) for t in texts_tokens]
    if max_texts is not None and len(texts) > max_texts:
        chosen = np.random.default_rng(seed).choice(len(texts), size=max_texts, replace=False)
        texts = [texts[i] for i in sorted(chosen.tolist())]
    if len(texts) < 2:
        return math.nan
    counts = [[Counter(ngrams(t, n)) for n in range(1, n_max + 1)] for t in texts]
    # per order, n-gram -> (largest count, the text holding it, second largest count)
    top: list[dict[tuple[Hashable, ...], tuple[int, int, int]]] = [{} for _ in range(n_max)]
    for i, per_order in enumerate(counts):
        for order, counter in enumerate(per_order):
            for gram, count in counter.items():
                first, owner, second = top[order].get(gram, (0, -1, 0))
                big = count > first
                top[order][gram] = (count, i, first) if big else (first, owner, max(second, count))

    def max_other(order: int, gram: tuple[Hashable, ...], i: int) -> int:
        first, owner, second = top[order][gram]
        return second if owner == i else first

    sorted_lengths = sorted(len(t) for t in texts)
    scores = []
    for i, (text, per_order) in enumerate(zip(texts, counts, strict=True)):
        numerators = [
            sum(min(count, max_other(order, gram, i)) for gram, count in counter.items())
            for order, counter in enumerate(per_order)
        ]
        if numerators[0] == 0:
            scores.append(0.0)
            continue
        log_p = 0.0
        for order, numerator in enumerate(numerators):
            denominator = max(1, len(text) - order)
            log_p += math.log((numerator or 0.1) / denominator) / n_max
        c, r = len(text), _closest_other_length(sorted_lengths, len(text))
        brevity = 1.0 if c > r else math.exp(1.0 - r / c)
        scores.append(brevity * math.exp(log_p))
    return float(np.mean(scores))


def word_length(text: str) -> int:
    """Number of whitespace-separated words of ``text`` (paper Table 10's text length)."""
    return len(text.split())
