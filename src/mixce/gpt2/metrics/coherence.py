"""Coherence (Su et al. 2022, paper section 4.2): cosine of prompt and continuation embeddings
(SimCSE in the paper, :class:`.features.SimCSEFeaturizer`), averaged over examples. The
released code takes scikit-learn's ``cosine_similarity`` of each pair; :func:`coherence` is
that cosine vectorised in float64 (equal to float32 rounding, tests/test_simcse.py), except
that an all-zero embedding gives nan here, not 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def coherence(prompt_emb: Any, cont_emb: Any) -> np.ndarray:
    """Row-wise cosine similarity ``[n]`` of two ``[n, d]`` embedding arrays (nan for a row
    whose prompt or continuation embedding is all zeros)."""
    a = np.asarray(prompt_emb, dtype=np.float64)
    b = np.asarray(cont_emb, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"embeddings must be two [n, d] arrays of one shape: {a.shape}, {b.shape}")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = np.einsum("ij,ij->i", a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(norms > 0, dots / norms, np.nan)
    return np.clip(cos, -1.0, 1.0)
