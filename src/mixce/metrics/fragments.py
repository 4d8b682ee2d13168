"""Random fixed-length fragments for controlled MAUVE and coherence (paper appendix F.4).

c-mauve_L = mauve(F_h,L, F_m,L), where F_h,L and F_m,L are 10K random L-token fragments of
the human and of the model texts: "we first randomly sample a text t_i from the set, and
then randomly select a start token s [...], then the fragment is t_i[s:s+L]" (L = 100, 200,
300; an L is skipped where 10K fragments cannot be had). Controlled coherence takes the first
50 tokens of each fragment as the prompt and the rest as the continuation.

Here (:func:`sample_fragments`): a text is drawn uniformly among the *eligible* texts (at
least L tokens), then a start uniformly among its ``len - L + 1`` positions, so every
fragment has exactly L tokens; draws are with replacement and reproducible from the seed.
Fragments "run out" when the eligible texts hold fewer than n distinct (text, start)
positions in total (:func:`fragment_capacity`): then None is returned, and the caller reports
the capacity. (The public reference code instead shuffles all positions and takes the first
n without replacement, with starts ``range(len - L)``, i.e. one position fewer per text; it
fails under the same capacity rule up to that off-by-one.)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["fragment_capacity", "sample_fragments", "split_prompt"]


def fragment_capacity(token_lists: Sequence[Sequence[int]], length: int) -> int:
    """Number of distinct (text, start) positions of ``length``-token fragments."""
    if length < 1:
        raise ValueError(f"fragment length must be >= 1, got {length}")
    return sum(len(t) - length + 1 for t in token_lists if len(t) >= length)


def sample_fragments(
    token_lists: Sequence[Sequence[int]], length: int, n: int, seed: int
) -> list[list[int]] | None:
    """``n`` random ``length``-token fragments ``t[s:s+length]``, or None if they run out.

    Text uniform among texts with at least ``length`` tokens, then start uniform; with
    replacement; the same ``seed`` gives the same fragments. None when
    ``fragment_capacity(token_lists, length) < n``.
    """
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
    """``(first prompt_tokens tokens, the rest)`` of a fragment (controlled coherence).

    Raises ValueError when the fragment leaves no continuation.
    """
    if prompt_tokens < 1:
        raise ValueError(f"prompt_tokens must be >= 1, got {prompt_tokens}")
    if len(fragment) <= prompt_tokens:
        raise ValueError(
            f"a {len(fragment)}-token fragment leaves no continuation after a "
            f"{prompt_tokens}-token prompt"
        )
    tokens = list(fragment)
    return tokens[:prompt_tokens], tokens[prompt_tokens:]
