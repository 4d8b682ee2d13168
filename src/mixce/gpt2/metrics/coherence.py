"""Coherence (Su et al. 2022, paper section 4.2): cosine similarity of prompt and continuation.

The paper embeds the prompt and the continuation with SimCSE
(princeton-nlp/sup-simcse-bert-base-uncased; :class:`.features.SimCSEFeaturizer`, the
``simcse`` package's ``encode`` as the released MixCE code calls it in metrics.py,
``compute_coherence``) and averages the cosine similarity over examples. The released code
takes scikit-learn's ``cosine_similarity([prompt_emb], [cont_emb])[0][0]`` of each pair;
:func:`coherence` is the same row-wise cosine, vectorised (in float64: it agrees with
scikit-learn's to float32 rounding, tests/test_simcse.py), except that a row with an all-zero
embedding gets nan here, not 0.
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
