"""Coherence (Su et al. 2022, paper section 4.2): cosine similarity of prompt and continuation.

The paper embeds the prompt and the continuation with SimCSE
(princeton-nlp/sup-simcse-bert-base-uncased) and averages the cosine similarity over
examples; the embeddings come from :mod:`mixce.metrics.features`. Controlled coherence
(appendix F.4) applies the same to fragments split by
:func:`mixce.metrics.fragments.split_prompt`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["coherence", "mean_coherence"]


def coherence(prompt_emb: Any, cont_emb: Any) -> np.ndarray:
    """Row-wise cosine similarity ``[n]`` of two ``[n, d]`` embedding arrays.

    A row whose prompt or continuation embedding is all zeros gets nan.
    """
    a = np.asarray(prompt_emb, dtype=np.float64)
    b = np.asarray(cont_emb, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"embeddings must be two [n, d] arrays of one shape: {a.shape}, {b.shape}")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = np.einsum("ij,ij->i", a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(norms > 0, dots / norms, np.nan)
    return np.clip(cos, -1.0, 1.0)


def mean_coherence(prompt_emb: Any, cont_emb: Any) -> float:
    """Mean of :func:`coherence` over rows, ignoring nan rows; nan if there is none."""
    cos = coherence(prompt_emb, cont_emb)
    cos = cos[~np.isnan(cos)]
    return float(cos.mean()) if cos.size else math.nan
