"""Sequences from a bigram chain, and their transition-count matrices.

A sequence has at most ``max_length`` tokens, EOS included: token 1 from the start
distribution, each later one from the previous token's row until EOS, which is forced at
``max_length`` if not drawn before. A forced EOS is not a draw: by default (protocol point
``synthetic_forced_eos`` = clean) it is no transition, in the data counts or in log P(x). With
``count_forced=True`` (official) the data's forced EOS counts like a drawn one, as in the
released code, which trains on it and adds log P(EOS | previous token) to log P(x). Sequences
drawn from Q for an expectation never count it (the released code stops them there).

Count matrices have ``V + 1`` rows (the V tokens, then BOS, whose row counts the first tokens)
and V columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass
class Sequences:
    """Sequences stored flat: tokens of sequence i are ``tokens[offsets[i]:offsets[i+1]]``."""

    tokens: np.ndarray  # int32, concatenated sequences
    offsets: np.ndarray  # int64, length n + 1
    forced: np.ndarray  # bool, EOS was forced at max_length

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def subset(self, idx: np.ndarray) -> Sequences:
        """The sequences at positions ``idx`` (a new flat store)."""
        lengths = np.diff(self.offsets)[idx]
        starts = self.offsets[:-1][idx]
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        gather = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        return Sequences(self.tokens[gather], offsets, self.forced[idx])

    def transitions(
        self, vocab_size: int, count_forced: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(prev, next, sequence index) of every counted transition (BOS -> first included);
        a forced EOS only with ``count_forced``."""
        prev = np.empty_like(self.tokens)  # BOS for a first token, else the token before it
        prev[1:] = self.tokens[:-1]
        prev[self.offsets[:-1]] = np.full(len(self), vocab_size)
        seq = np.repeat(np.arange(len(self)), np.diff(self.offsets))
        if count_forced:
            return prev, self.tokens, seq
        keep = np.ones(len(self.tokens), dtype=bool)
        keep[self.offsets[1:][self.forced] - 1] = False  # a forced EOS is not a draw
        return prev[keep], self.tokens[keep], seq[keep]

    def counts(self, vocab_size: int, count_forced: bool = False) -> np.ndarray:
        """(V + 1) x V matrix of counted transitions (a forced EOS only with ``count_forced``)."""
        prev, nxt, _ = self.transitions(vocab_size, count_forced)
        flat = np.bincount(
            prev.astype(np.int64) * vocab_size + nxt, minlength=(vocab_size + 1) * vocab_size
        )
        return flat.reshape(vocab_size + 1, vocab_size).astype(np.float64)


def chain_matrix(m: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """The (V + 1) x V matrix of next-token distributions: rows of M, then pi for BOS."""
    return np.vstack([m, pi[None, :]])


def sample_sequences(
    chain: np.ndarray, n: int, max_length: int, rng: np.random.Generator
) -> Sequences:
    """Draw ``n`` sequences from a chain matrix ((V + 1) x V, last row = start distribution),
    all advancing together; a draw is a binary search of ``state + u`` in the row-offset
    cumulative distributions, so one step costs O(n log V)."""
    v = chain.shape[1]
    eos = v - 1
    cdf = np.minimum(np.cumsum(chain, axis=1), 1.0)
    cdf[:, -1] = 1.0
    flat = (cdf + np.arange(v + 1)[:, None]).ravel()

    def draw(states: np.ndarray) -> np.ndarray:
        keys = states + rng.random(states.size)
        order = np.argsort(keys)  # sorted keys search ~2x faster (cache locality)
        pos = np.empty(keys.size, dtype=np.int64)
        pos[order] = np.searchsorted(flat, keys[order], side="right")
        return (pos - states * v).astype(np.int32)

    out = np.full((n, max_length), -1, dtype=np.int32)
    state = draw(np.full(n, v))
    out[:, 0] = state
    alive = np.flatnonzero(state != eos)
    forced = np.zeros(n, dtype=bool)
    for t in range(1, max_length):
        if alive.size == 0:
            break
        if t == max_length - 1:
            out[alive, t] = eos
            forced[alive] = True
            break
        nxt = draw(state[alive])
        out[alive, t] = nxt
        state[alive] = nxt
        alive = alive[nxt != eos]
    lengths = (out >= 0).sum(axis=1)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return Sequences(out[out >= 0], offsets, forced)


def sequence_logprob(
    chain_log: np.ndarray, seqs: Sequences, count_forced: bool = False
) -> np.ndarray:
    """Sum of log chain probabilities over each sequence's counted transitions."""
    prev, nxt, seq = seqs.transitions(chain_log.shape[1], count_forced)
    return np.bincount(seq, weights=chain_log[prev, nxt], minlength=len(seqs))


#: the arrays of a Sequences in a file, each as ``{prefix}_{name}``, and their dtypes
_PARTS = {"tokens": np.int32, "offsets": np.int64, "forced": bool}


def sequences_arrays(seqs: Sequences, prefix: str) -> dict[str, np.ndarray]:
    """``{prefix}_tokens``, ``{prefix}_offsets`` and ``{prefix}_forced`` of ``seqs``."""
    return {f"{prefix}_{k}": np.asarray(getattr(seqs, k), dtype=t) for k, t in _PARTS.items()}


def load_sequences(npz: Mapping[str, np.ndarray], prefix: str) -> Sequences:
    """The :class:`Sequences` stored under ``prefix`` by :func:`sequences_arrays`."""
    missing = [f"{prefix}_{k}" for k in _PARTS if f"{prefix}_{k}" not in npz]
    if missing:
        raise KeyError(f"no sequences {prefix!r} in the file: missing {', '.join(missing)}")
    tokens, offsets, forced = (np.asarray(npz[f"{prefix}_{k}"], t) for k, t in _PARTS.items())
    if offsets.ndim != 1 or len(forced) != len(offsets) - 1 or offsets[-1] != len(tokens):
        raise ValueError(f"sequences {prefix!r}: tokens, offsets and forced do not match")
    return Sequences(tokens, offsets, forced)
