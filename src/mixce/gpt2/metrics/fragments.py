"""Random fixed-length fragments for controlled MAUVE and coherence (paper appendix F.4).

Paper: 10K random L-token fragments per text set, "we first randomly sample a text t_i from
the set, and then randomly select a start token s [...], then the fragment is t_i[s:s+L]"
(L = 100, 200, 300; an L is skipped where 10K cannot be had); controlled coherence's prompt
is a fragment's first 50 tokens. The ``controlled_fragments`` point (docs/PROTOCOL.md):

- ``clean``, :func:`sample_fragments`: L GPT-2 tokens; a text uniformly among those with at
  least L tokens, then a start among its ``len - L + 1``, with replacement; whole human texts.
- ``official``, the released code: :func:`sample_word_fragments` of ``int(L / 1.35)``
  whitespace words (:func:`words_for_tokens`), (text, start) positions drawn without
  replacement, so a text is picked in proportion to its positions; human texts cut to their
  first 511 tokens (:func:`cut_human_text`); texts decoded with transformers 4's space
  clean-up (:func:`clean_up_spaces`; transformers 5 no longer does it for GPT-2).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: The released code's tokens-per-word ratio: an L-token fragment is int(L / 1.35) words.
TOKENS_PER_WORD = 1.35


def fragment_capacity(token_lists: Sequence[Sequence[int]], length: int) -> int:
    """Number of distinct (text, start) positions of ``length``-token fragments."""
    return sum(len(t) - length + 1 for t in token_lists if len(t) >= length)


def sample_fragments(
    token_lists: Sequence[Sequence[int]], length: int, n: int, seed: int
) -> list[list[int]] | None:
    """``n`` random ``length``-token fragments (the clean draw); None when fewer positions."""
    if fragment_capacity(token_lists, length) < n:
        return None
    eligible = [i for i, t in enumerate(token_lists) if len(t) >= length]
    rng = np.random.default_rng(seed)
    texts = rng.integers(0, len(eligible), size=n) if eligible else np.zeros(0, dtype=int)
    fragments: list[list[int]] = []
    for k in texts:
        tokens = token_lists[eligible[int(k)]]
        start = int(rng.integers(0, len(tokens) - length + 1))
        fragments.append([int(x) for x in tokens[start : start + length]])
    return fragments


def split_prompt(fragment: Sequence[int], prompt_tokens: int = 50) -> tuple[list[int], list[int]]:
    """``(first prompt_tokens tokens, the rest)`` of a fragment; ValueError for no rest."""
    if len(fragment) <= prompt_tokens:
        raise ValueError(
            f"a {len(fragment)}-token fragment leaves no continuation after a "
            f"{prompt_tokens}-token prompt"
        )
    tokens = list(fragment)
    return tokens[:prompt_tokens], tokens[prompt_tokens:]


def words_for_tokens(tokens: int, ratio: float = TOKENS_PER_WORD) -> int:
    """Whitespace words standing for ``tokens`` GPT-2 tokens (74, 148, 222 for 100-300)."""
    if tokens < 1:
        raise ValueError(f"tokens must be >= 1, got {tokens}")
    return int(tokens / ratio)


def word_capacity(word_lists: Sequence[Sequence[str]], n_words: int) -> int:
    """Positions of ``n_words``-word fragments: ``len(words) - n_words`` per text (at least 0,
    the released ``range(len(words) - n_words)``: one start fewer than fits)."""
    return sum(max(0, len(words) - n_words) for words in word_lists)


def sample_word_fragments(
    word_lists: Sequence[Sequence[str]], n_words: int, n: int, seed: int
) -> list[list[str]] | None:
    """``n`` fragments at the :func:`word_capacity` positions, drawn uniformly without
    replacement by ``numpy.random.default_rng(seed).choice``, in the order drawn; None when
    fewer positions."""
    capacity = word_capacity(word_lists, n_words)
    if capacity < n:
        return None
    counts = np.array([max(0, len(words) - n_words) for words in word_lists], dtype=np.int64)
    ends = np.cumsum(counts)  # positions of text i: ends[i] - counts[i] .. ends[i] - 1
    rng = np.random.default_rng(seed)
    picks = rng.choice(capacity, size=n, replace=False) if n else np.zeros(0, dtype=np.int64)
    texts = np.searchsorted(ends, picks, side="right")
    fragments: list[list[str]] = []
    for pick, text in zip(picks.tolist(), texts.tolist(), strict=True):
        start = pick - int(ends[text] - counts[text])
        fragments.append(list(word_lists[text][start : start + n_words]))
    return fragments


def split_word_prompt(fragment: Sequence[str], prompt_words: int) -> tuple[str, str]:
    """``(first prompt_words words, the rest)``, each joined by spaces (int(50 / 1.35) = 37
    words for 50 tokens); ValueError when the fragment leaves no continuation."""
    if prompt_words < 1:
        raise ValueError(f"prompt_words must be >= 1, got {prompt_words}")
    if len(fragment) <= prompt_words:
        raise ValueError(
            f"a {len(fragment)}-word fragment leaves no continuation after a "
            f"{prompt_words}-word prompt"
        )
    return " ".join(fragment[:prompt_words]), " ".join(fragment[prompt_words:])


def cut_human_text(token_ids: Sequence[int], max_length: int) -> list[int]:
    """A human text's first ``max_length - 1`` tokens: the released code read the human texts
    back from the ids it evaluated (``max_length`` counts the EOS appended in finetuning)."""
    return list(token_ids[: max_length - 1])


# The space removals of transformers' ``clean_up_tokenization`` (on by default in the
# transformers versions of the released code's time, for GPT-2 too), in their order.
_CLEANUPS = [(f" {x}", x) for x in (".", "?", "!", ",")] + [(" ' ", "'")]
_CLEANUPS += [(f" {x}", x) for x in ("n't", "'m", "'s", "'ve", "'re")]


def clean_up_spaces(text: str) -> str:
    """``text`` with the space before ``. ? ! ,`` and ``n't 'm 's 've 're`` removed and
    `` ' `` made ``'``: the released code's decoded texts."""
    for old, new in _CLEANUPS:
        text = text.replace(old, new)
    return text
