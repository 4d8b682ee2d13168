"""MAUVE (Pillutla et al. 2021) from precomputed features, with the library's defaults.

Human features are computed once per dataset and split, model texts with the same featurizer
(which texts, cut how: docs/PROTOCOL.md, points ``length_cuts`` and ``newlines``;
:func:`mixce.gpt2.metrics.scoring.mauve_inputs`); otherwise the ``mauve-text`` defaults:
``num_buckets="auto"`` (the library's ``max(2, round(min(n_p, n_q) / 10))`` k-means
clusters), PCA keeping 0.9 of the variance (on all the data, ``pca_max_data=-1``), k-means
with 5 restarts x 500 iterations, scaling factor 5, seed 25.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def _as_features(name: str, features: Any) -> np.ndarray:
    array = np.asarray(features, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array [n, d], got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds non-finite values")
    return array


def mauve_from_features(
    p_features: Any,
    q_features: Any,
    *,
    seed: int = 25,
    num_buckets: int | str = "auto",
    pca_max_data: int = -1,
    kmeans_explained_var: float = 0.9,
    kmeans_num_redo: int = 5,
    kmeans_max_iter: int = 500,
    scaling_factor: float = 5,
    device_id: int = -1,
) -> dict[str, Any]:
    """MAUVE between feature sets P (e.g. human) and Q (e.g. model), ``[n_p, d]``, ``[n_q, d]``:
    ``mauve.compute_mauve(p_features=..., q_features=...)`` with these arguments
    (``scaling_factor``: the library's ``mauve_scaling_factor``), its printing sent to this
    module's logger at DEBUG level. Returns ``{"mauve", "frontier_integral", "n_p", "n_q",
    "num_buckets", "seed"}``."""
    import mauve

    p = _as_features("p_features", p_features)
    q = _as_features("q_features", q_features)
    if p.shape[1] != q.shape[1]:
        raise ValueError(f"feature dimensions differ: p has {p.shape[1]}, q has {q.shape[1]}")
    if isinstance(num_buckets, (int, np.integer)) and not isinstance(num_buckets, bool):
        num_buckets = int(num_buckets)  # the library checks isinstance(num_buckets, int)
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        out = mauve.compute_mauve(
            p_features=p,
            q_features=q,
            num_buckets=num_buckets,
            pca_max_data=pca_max_data,
            kmeans_explained_var=kmeans_explained_var,
            kmeans_num_redo=kmeans_num_redo,
            kmeans_max_iter=kmeans_max_iter,
            mauve_scaling_factor=scaling_factor,
            device_id=device_id,
            verbose=False,
            seed=seed,
        )
    if captured.getvalue().strip():
        log.debug("mauve: %s", captured.getvalue().strip())
    result = {
        "mauve": float(out.mauve),
        "frontier_integral": float(out.frontier_integral),
        "n_p": int(p.shape[0]),
        "n_q": int(q.shape[0]),
        "num_buckets": int(out.num_buckets),
        "seed": int(seed),
    }
    if math.isnan(result["mauve"]):
        log.warning("MAUVE is nan (n_p=%d, n_q=%d)", result["n_p"], result["n_q"])
    return result
