"""avg.js and avg.0s (paper section 4.1), comparing the learned M' with the gold M."""

from __future__ import annotations

import numpy as np


def js_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence (natural log) between matching rows of p and q."""
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(a > 0, a * (np.log(a) - np.log(m)), 0.0)
        return terms.sum(axis=1)

    return np.maximum(0.5 * kl(p) + 0.5 * kl(q), 0.0)


def compare(learned: np.ndarray, gold_chain: np.ndarray) -> dict[str, float]:
    """avg.js and avg.0s over every row that predicts a token: BOS and the non-EOS tokens.

    ``learned`` and ``gold_chain`` are (V + 1) x V chain matrices (tokens, then BOS); the EOS
    row (V - 1) is left out since nothing follows EOS.
    """
    v = gold_chain.shape[1]
    rows = np.r_[0 : v - 1, v]
    p, q = gold_chain[rows], learned[rows]
    q = q / q.sum(axis=1, keepdims=True)
    zeros = p == 0
    avg_0s = float(q[zeros].mean()) if zeros.any() else 0.0
    return {"avg_js": float(js_rows(q, p).mean()), "avg_0s": avg_0s}
