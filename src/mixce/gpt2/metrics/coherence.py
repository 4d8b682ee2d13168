"""Coherence (Su et al. 2022, paper section 4.2): cosine similarity of prompt and continuation.

The paper embeds the prompt and the continuation with SimCSE
(princeton-nlp/sup-simcse-bert-base-uncased) and averages the cosine similarity over
examples. The embeddings come from :mod:`mixce.gpt2.metrics.features`; at paper scale from
:class:`~mixce.gpt2.metrics.features.SimCSEFeaturizer`, i.e. the ``simcse`` package's
``SimCSE(...).encode(texts, return_numpy=True, device, batch_size, max_length)`` as the
released MixCE code calls it (metrics.py, ``compute_coherence``). That code then takes
scikit-learn's ``cosine_similarity([prompt_emb], [cont_emb])[0][0]`` of each pair and the
mean over pairs; :func:`coherence` is the same row-wise cosine, vectorised (in float64: it
agrees with scikit-learn's to float32 rounding, tests/test_simcse.py), except that a row
with an all-zero embedding gets nan here, not 0. Controlled coherence (appendix F.4)
applies the same to fragments split by :func:`mixce.gpt2.metrics.fragments.split_prompt`.
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
