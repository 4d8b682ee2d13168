"""avg.js and avg.0s (paper section 4.1), comparing the learned M' with the gold M."""

from __future__ import annotations

import numpy as np
import torch


def _js_rows(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Row-wise JS (natural log) of float64 tensors; xlogy makes 0 log 0 = 0."""
    m = 0.5 * (p + q)
    kl_p = (torch.xlogy(p, p) - torch.xlogy(p, m)).sum(1)
    kl_q = (torch.xlogy(q, q) - torch.xlogy(q, m)).sum(1)
    return (0.5 * kl_p + 0.5 * kl_q).clamp_min(0.0)


def js_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence (natural log) between matching rows of p and q."""
    return _js_rows(
        torch.as_tensor(p, dtype=torch.float64), torch.as_tensor(q, dtype=torch.float64)
    ).numpy()


class Comparer:
    """avg.js and avg.0s against one gold chain, its parts prepared once (a training run
    compares at every dev check)."""

    def __init__(self, gold_chain: np.ndarray) -> None:
        v = gold_chain.shape[1]
        # every row that predicts a token: the non-EOS tokens and BOS
        self.rows = torch.from_numpy(np.r_[0 : v - 1, v])
        self.p = torch.as_tensor(gold_chain, dtype=torch.float64)[self.rows]
        self.zeros = self.p == 0

    def __call__(self, learned: np.ndarray | torch.Tensor) -> dict[str, float]:
        q = torch.as_tensor(learned).to(torch.float64)[self.rows]
        q = q / q.sum(1, keepdim=True)
        avg_0s = float(q[self.zeros].mean()) if bool(self.zeros.any()) else 0.0
        return {"avg_js": float(_js_rows(q, self.p).mean()), "avg_0s": avg_0s}


def compare(learned: np.ndarray | torch.Tensor, gold_chain: np.ndarray) -> dict[str, float]:
    """avg.js and avg.0s over every row that predicts a token: BOS and the non-EOS tokens.

    ``learned`` and ``gold_chain`` are (V + 1) x V chain matrices (tokens, then BOS); the EOS
    row (V - 1) is left out since nothing follows EOS.
    """
    return Comparer(gold_chain)(learned)
