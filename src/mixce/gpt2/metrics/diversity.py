"""Lexical metrics (paper section 4.2 and appendix F; docs/PROTOCOL.md, points ``diversity``
and ``text_length``):

- **Diversity** (Meister et al. 2022, as used by MixCE): "the average fraction of unique vs.
  total n-grams for n in {1, 2, 3, 4} in each piece of text", computed on GPT-2 BPE tokens
  and averaged over texts (:func:`ngram_diversity`, :func:`mean_diversity`,
  :func:`diversity_score`). Two variants:

  ``mode="mean"`` (protocol ``clean``, the paper's words)
      ``mean over n of |unique n-grams| / |n-grams|``; an n for which the text has no n-gram
      (fewer than n tokens) is left out of the mean.
  ``mode="pooled"`` (protocol ``official``, the released code's ``metrics.diversity``)
      one ratio over the four orders pooled together,
      ``sum_n |unique n-grams| / sum_n |n-grams|``, where n-grams with n > 2 made of a
      single repeated token (``a a a``) are skipped entirely (counted neither as unique nor
      in the total). The released code returns 0 for an empty text; here it is nan, and
      :func:`diversity_score` turns it back into 0 under ``official``.
- **distinct-n**: corpus-level |unique n-grams| / |n-grams| over all texts together
  (:func:`distinct_n`; the diversity metric of the LFD comparison).
- **self-BLEU** (Zhu et al. 2018, Texygen; used by LFD): the mean over texts of the BLEU-4 of
  each text against all the other texts as references (:func:`self_bleu`; lower = more
  diverse). BLEU as NLTK's ``sentence_bleu`` with ``SmoothingFunction().method1``.
- **seq-rep-n** (Welleck et al. 2020): ``1 - |unique n-grams| / |n-grams|`` of one text, 0 for
  a text with no n-gram (:func:`seq_rep_n`), averaged over texts (:func:`mean_seq_rep_n`).
- **Text length**: whitespace-separated words (paper Table 10; :func:`word_length`).
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
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return zip(*(tokens[i:] for i in range(n)), strict=False)


def ngram_diversity(
    tokens: Sequence[int | str], ns: Iterable[int] = (1, 2, 3, 4), mode: str = "mean"
) -> float:
    """N-gram diversity of one tokenized text, ``mode`` mean or pooled (module docstring);
    nan when the text has no n-gram at all (empty text)."""
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
    """Diversity of tokenized texts under the protocol point ``diversity``: ``official`` (the
    released ``compute_diversity_repetition``), the pooled ratio averaged over every text, an
    empty text counting 0; ``clean``, :func:`mean_diversity` of the mean-over-n ratios. nan
    when there is nothing to average."""
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


class _TopTwo:
    """An n-gram's largest count over texts, the text holding it, and the second largest:
    the largest count over the texts other than a given one is then one lookup."""

    __slots__ = ("first", "owner", "second")

    def __init__(self) -> None:
        self.first, self.owner, self.second = 0, -1, 0

    def add(self, count: int, text: int) -> None:
        if count > self.first:
            self.first, self.owner, self.second = count, text, self.first
        elif count > self.second:
            self.second = count

    def max_other(self, text: int) -> int:
        return self.second if self.owner == text else self.first


def _closest_other_length(sorted_lengths: list[int], length: int) -> int:
    """NLTK's closest reference length among ``sorted_lengths`` without one ``length`` (the
    hypothesis itself): the nearest, the shorter on a tie."""
    i = bisect.bisect_left(sorted_lengths, length)
    if i + 1 < len(sorted_lengths) and sorted_lengths[i + 1] == length:
        return length  # another text has the same length
    below = sorted_lengths[i - 1] if i > 0 else None
    above = sorted_lengths[i + 1] if i + 1 < len(sorted_lengths) else None
    if above is None or (below is not None and length - below <= above - length):
        return below  # type: ignore[return-value]
    return above


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
    O(total n-grams) (:class:`_TopTwo`). nan for fewer than two texts.
    """
    texts = [list(t) for t in texts_tokens]
    if max_texts is not None and len(texts) > max_texts:
        chosen = np.random.default_rng(seed).choice(len(texts), size=max_texts, replace=False)
        texts = [texts[i] for i in sorted(chosen.tolist())]
    if len(texts) < 2:
        return math.nan
    counts = [[Counter(ngrams(t, n)) for n in range(1, n_max + 1)] for t in texts]
    top: list[dict[tuple[Hashable, ...], _TopTwo]] = [{} for _ in range(n_max)]
    for i, per_order in enumerate(counts):
        for order, counter in enumerate(per_order):
            for gram, count in counter.items():
                top[order].setdefault(gram, _TopTwo()).add(count, i)
    sorted_lengths = sorted(len(t) for t in texts)
    scores = []
    for i, (text, per_order) in enumerate(zip(texts, counts, strict=True)):
        numerators = [
            sum(min(count, top[order][gram].max_other(i)) for gram, count in counter.items())
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
