"""Random fixed-length fragments for controlled MAUVE and coherence (paper appendix F.4).

c-mauve_L = mauve(F_h,L, F_m,L), where F_h,L and F_m,L are 10K random L-token fragments of
the human and of the model texts: "we first randomly sample a text t_i from the set, and
then randomly select a start token s [...], then the fragment is t_i[s:s+L]" (L = 100, 200,
300; an L is skipped where 10K fragments cannot be had). Controlled coherence takes the first
50 tokens of each fragment as the prompt and the rest as the continuation.

The ``controlled_fragments`` protocol point (docs/PROTOCOL.md) picks one of two draws.

``clean`` (:func:`sample_fragments`): fragments of L GPT-2 tokens; a text is drawn uniformly
among the *eligible* texts (at least L tokens), then a start uniformly among its
``len - L + 1`` positions, so every fragment has exactly L tokens; draws are with
replacement and reproducible from the seed. Fragments "run out" when the eligible texts hold
fewer than n distinct (text, start) positions in total (:func:`fragment_capacity`): then None
is returned, and the caller reports the capacity. Human texts are used whole.

``official`` (:func:`sample_word_fragments`), as the authors' released code does it: a text
is split on whitespace into words and a fragment has ``int(L / 1.35)`` words
(:func:`words_for_tokens`: 74, 148 and 222 words for L = 100, 200, 300); every (text, start)
pair with start in ``range(len(words) - n_words)`` (one start fewer than fits) is a position,
and n positions are drawn uniformly *without* replacement among all of them, so a text is
picked in proportion to its number of positions, not uniformly. Too few positions: None.
The controlled-coherence prompt is the first ``int(50 / 1.35) = 37`` words
(:func:`split_word_prompt`). Human texts are first cut to their first 511 GPT-2 tokens
(:func:`cut_human_text`: the released code reads the human texts back from the token ids it
evaluated, the text's first ``max_length - 1`` tokens before the appended EOS). The released
texts were decoded by the transformers of the time, which removed the space before some
punctuation and English clitics (:func:`clean_up_spaces`); transformers 5 no longer does so
for GPT-2, so the official path does it itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: The released code's tokens-per-word ratio: an L-token fragment is int(L / 1.35) words.
TOKENS_PER_WORD = 1.35


def fragment_capacity(token_lists: Sequence[Sequence[int]], length: int) -> int:
    """Number of distinct (text, start) positions of ``length``-token fragments."""
    if length < 1:
        raise ValueError(f"fragment length must be >= 1, got {length}")
    return sum(len(t) - length + 1 for t in token_lists if len(t) >= length)


def sample_fragments(
    token_lists: Sequence[Sequence[int]], length: int, n: int, seed: int
) -> list[list[int]] | None:
    """``n`` random ``length``-token fragments ``t[s:s+length]`` (the clean draw), or None
    when ``fragment_capacity(token_lists, length) < n``."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
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
    """``(first prompt_tokens tokens, the rest)`` of a fragment (controlled coherence);
    ValueError when the fragment leaves no continuation."""
    if prompt_tokens < 1:
        raise ValueError(f"prompt_tokens must be >= 1, got {prompt_tokens}")
    if len(fragment) <= prompt_tokens:
        raise ValueError(
            f"a {len(fragment)}-token fragment leaves no continuation after a "
            f"{prompt_tokens}-token prompt"
        )
    tokens = list(fragment)
    return tokens[:prompt_tokens], tokens[prompt_tokens:]


# --------------------------------------------------------------------------- official


def words_for_tokens(tokens: int, ratio: float = TOKENS_PER_WORD) -> int:
    """Whitespace words standing for ``tokens`` GPT-2 tokens: ``int(tokens / ratio)``."""
    if tokens < 1:
        raise ValueError(f"tokens must be >= 1, got {tokens}")
    return int(tokens / ratio)


def word_capacity(word_lists: Sequence[Sequence[str]], n_words: int) -> int:
    """Positions of ``n_words``-word fragments: ``len(words) - n_words`` per text (at least 0)."""
    if n_words < 1:
        raise ValueError(f"fragment length must be >= 1 word, got {n_words}")
    return sum(max(0, len(words) - n_words) for words in word_lists)


def sample_word_fragments(
    word_lists: Sequence[Sequence[str]], n_words: int, n: int, seed: int
) -> list[list[str]] | None:
    """``n`` fragments ``words[s:s+n_words]`` at positions (text ``i``, start ``s`` in
    ``range(len(word_lists[i]) - n_words)``) drawn uniformly without replacement by
    ``numpy.random.default_rng(seed).choice``, in the order drawn; None when
    ``word_capacity(word_lists, n_words) < n``."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
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
    """``(first prompt_words words, the rest)`` of a word fragment, each joined by spaces;
    ValueError when the fragment leaves no continuation."""
    if prompt_words < 1:
        raise ValueError(f"prompt_words must be >= 1, got {prompt_words}")
    if len(fragment) <= prompt_words:
        raise ValueError(
            f"a {len(fragment)}-word fragment leaves no continuation after a "
            f"{prompt_words}-word prompt"
        )
    return " ".join(fragment[:prompt_words]), " ".join(fragment[prompt_words:])


def cut_human_text(token_ids: Sequence[int], max_length: int) -> list[int]:
    """A human text's first ``max_length - 1`` tokens: what the released evaluation kept of it
    (``max_length`` counts the EOS appended in finetuning)."""
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2, got {max_length}")
    return list(token_ids[: max_length - 1])


# The space removals of transformers' ``clean_up_tokenization`` (on by default in the
# transformers versions of the released code's time, for GPT-2 too), in their order.
_CLEANUPS = [(f" {x}", x) for x in (".", "?", "!", ",")] + [(" ' ", "'")]
_CLEANUPS += [(f" {x}", x) for x in ("n't", "'m", "'s", "'ve", "'re")]


def clean_up_spaces(text: str) -> str:
    """``text`` with the space before ``. ? ! ,`` and ``n't 'm 's 've 're`` removed and
    `` ' `` made ``'``: how the released code's decoded texts came out."""
    for old, new in _CLEANUPS:
        text = text.replace(old, new)
    return text
