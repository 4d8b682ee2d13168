"""The "human" language model P of the synthetic experiments: a bigram LM.

Tokens are ``0 .. V-1``; the last one, ``V-1``, is EOS. ``M`` is the V x V transition matrix
(the EOS row is all zero: nothing follows EOS) and ``pi`` the start distribution, uniform over
all V tokens as in the public reference code (a sequence may be EOS alone).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

import numpy as np

from mixce.synthetic.settings import PROTOCOL_SETTINGS as ZEROING  # synthetic_zeroing's settings

EOS_FLOOR = 1e-12  # smallest P(EOS | token) after drawing a random row; keeps EOS reachable
WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def uniform_start(vocab_size: int) -> np.ndarray:
    """The start distribution pi: uniform over every token, EOS included."""
    return np.full(vocab_size, 1.0 / vocab_size)


def random_target(
    vocab_size: int,
    zero_fraction: float,
    alpha: float,
    rng: np.random.Generator,
    zeroing: str = "clean",
) -> np.ndarray:
    """Rows from Dirichlet(alpha), some non-EOS entries of the non-EOS rows set to 0, rows
    renormalised. ``zeroing`` (protocol point ``synthetic_zeroing``) says which entries:
    ``clean``: exactly round(zero_fraction * (V-1)) per row, chosen uniformly; ``official``:
    each independently with probability ``zero_fraction``, as the released code does (a row's
    number of zeros is Binomial(V-1, zero_fraction)). The zeroing is drawn after the rows.
    """
    if zeroing not in ZEROING:
        raise ValueError(f"zeroing must be one of {', '.join(ZEROING)}, got {zeroing!r}")
    v = vocab_size
    m = rng.dirichlet(np.full(v, alpha), size=v)
    if zeroing == "official":
        m[:-1, :-1][rng.random((v - 1, v - 1)) < zero_fraction] = 0.0
    else:
        k = int(round(zero_fraction * (v - 1)))
        if k:
            cols = np.argsort(rng.random((v - 1, v - 1)), axis=1)[:, :k]
            np.put_along_axis(m[:-1, :-1], cols, 0.0, axis=1)
    m[:, -1] = np.maximum(m[:, -1], EOS_FLOOR)
    m /= m.sum(axis=1, keepdims=True)
    m[-1] = 0.0
    return m


def words(text: str) -> list[str]:
    """Lower-cased word tokens of a text (letters, with inner apostrophes)."""
    return WORD.findall(text.lower())


def real_text_target(texts: Iterable[str], vocab_size: int) -> tuple[np.ndarray, dict]:
    """Transition matrix from the bigram counts of real texts: the ``V-1`` most frequent words
    (ties alphabetical) plus EOS. Other words are dropped (their neighbours become adjacent),
    every text ends with EOS, texts with no kept word are skipped; so every non-EOS row has
    counts and reaches EOS. Also the kept ``words``, ``n_texts``, ``n_tokens`` and
    ``coverage`` (share of word occurrences whose word is kept)."""
    tokenised = [words(t) for t in texts]
    freq = Counter(w for ws in tokenised for w in ws)
    if len(freq) < vocab_size - 1:
        raise ValueError(
            f"the real-text corpus has {len(freq)} distinct words, fewer than vocab_size - 1 = "
            f"{vocab_size - 1}: use a larger synthetic.real_text source or a smaller vocab size"
        )
    kept = [w for w, _ in sorted(freq.items(), key=lambda kv: (-kv[1], kv[0]))[: vocab_size - 1]]
    index = {w: i for i, w in enumerate(kept)}
    eos = vocab_size - 1
    counts = np.zeros((vocab_size, vocab_size))
    n_texts = n_kept = 0
    for ws in tokenised:
        ids = [index[w] for w in ws if w in index]
        if not ids:
            continue
        n_texts += 1
        n_kept += len(ids)
        np.add.at(counts, (np.array(ids), np.array(ids[1:] + [eos])), 1.0)
    m = counts / counts.sum(axis=1, keepdims=True).clip(min=1.0)
    m[-1] = 0.0
    coverage = n_kept / sum(freq.values())
    return m, {"words": kept, "n_texts": n_texts, "n_tokens": n_kept, "coverage": coverage}


def check_target(m: np.ndarray, pi: np.ndarray) -> None:
    """Raise ValueError unless (m, pi) is a valid bigram LM whose every token reaches EOS."""
    v = m.shape[0]
    if m.shape != (v, v) or pi.shape != (v,):
        raise ValueError(f"bad shapes: M {m.shape}, pi {pi.shape}")
    if not np.allclose(m[:-1].sum(axis=1), 1.0) or np.any(m < 0):
        raise ValueError("every non-EOS row of M must be a probability distribution")
    if np.any(m[-1] != 0):
        raise ValueError("the EOS row of M must be all zero")
    if not np.isclose(pi.sum(), 1.0):
        raise ValueError("pi must sum to 1")
    from scipy.sparse.csgraph import breadth_first_order  # here: training jobs import this module

    reach = np.zeros(v, dtype=bool)  # reaches EOS: found from EOS over the reversed edges
    reach[breadth_first_order((m > 0).T, v - 1, return_predecessors=False)] = True
    if not reach.all():
        bad = np.flatnonzero(~reach)[:10].tolist()
        raise ValueError(f"tokens {bad} have no path to EOS")
