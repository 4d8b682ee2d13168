"""avg.js and avg.0s (paper section 4.1), comparing the learned M' with the gold M.

NumPy, float64: a training run compares at every dev check, so the gold side's entropy is
computed once and each check costs two logarithms per entry (JS = H(M) - (H(P) + H(Q)) / 2
with M = (P + Q) / 2, natural log, 0 log 0 = 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _xlogx_rows(x: np.ndarray) -> np.ndarray:
    """sum_c x log x per row, 0 log 0 = 0."""
    logs = np.zeros_like(x)
    np.log(x, out=logs, where=x > 0)
    logs *= x
    return logs.sum(1)


def _js_from_parts(p: np.ndarray, p_xlogx: np.ndarray, q: np.ndarray) -> np.ndarray:
    m = 0.5 * (p + q)
    js = 0.5 * p_xlogx + 0.5 * _xlogx_rows(q) - _xlogx_rows(m)
    return np.maximum(js, 0.0)


class Comparer:
    """avg.js and avg.0s against one gold chain, its parts prepared once (a training run
    compares at every dev check)."""

    def __init__(self, gold_chain: np.ndarray) -> None:
        v = gold_chain.shape[1]
        # every row that predicts a token: the non-EOS tokens and BOS
        self.rows = np.r_[0 : v - 1, v]
        self.p = np.asarray(gold_chain, dtype=np.float64)[self.rows]
        self.p_xlogx = _xlogx_rows(self.p)
        self.zeros = self.p == 0

    def __call__(self, learned: Any) -> dict[str, float]:
        if hasattr(learned, "detach"):  # a torch tensor (the PyTorch backends)
            learned = learned.detach().cpu().numpy()
        q = np.asarray(learned, dtype=np.float64)[self.rows]
        q /= q.sum(1, keepdims=True)
        avg_0s = float(q[self.zeros].mean()) if bool(self.zeros.any()) else 0.0
        return {"avg_js": float(_js_from_parts(self.p, self.p_xlogx, q).mean()), "avg_0s": avg_0s}
