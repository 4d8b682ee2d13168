"""MAUVE (Pillutla et al. 2021) from precomputed features, with the library's defaults.

Human features are computed once per dataset and split, model texts with the same featurizer
(which texts, cut how: docs/PROTOCOL.md, points ``length_cuts`` and ``newlines``;
:func:`mixce.gpt2.metrics.scoring.mauve_inputs`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# The ``mauve-text`` defaults, written out: "auto" buckets are the library's
# max(2, round(min(n_p, n_q) / 10)) k-means clusters; PCA keeps 0.9 of the variance (on all
# the data); k-means with 5 restarts x 500 iterations; scaling factor 5; on the CPU.
MAUVE_SETTINGS: dict[str, Any] = {
    "num_buckets": "auto",
    "pca_max_data": -1,
    "kmeans_explained_var": 0.9,
    "kmeans_num_redo": 5,
    "kmeans_max_iter": 500,
    "mauve_scaling_factor": 5,
    "device_id": -1,
}


def _as_features(name: str, features: Any) -> np.ndarray:
    array = np.asarray(features, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array [n, d], got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds non-finite values")
    return array


def mauve_from_features(p_features: Any, q_features: Any, *, seed: int = 25) -> dict[str, Any]:
    """MAUVE between feature sets P (e.g. human) and Q (e.g. model), ``[n_p, d]``, ``[n_q, d]``:
    ``mauve.compute_mauve`` with :data:`MAUVE_SETTINGS`, its printing sent to this module's
    logger at DEBUG level. Returns ``{"mauve", "frontier_integral", "n_p", "n_q",
    "num_buckets", "seed"}``."""
    import mauve

    p = _as_features("p_features", p_features)
    q = _as_features("q_features", q_features)
    if p.shape[1] != q.shape[1]:
        raise ValueError(f"feature dimensions differ: p has {p.shape[1]}, q has {q.shape[1]}")
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        out = mauve.compute_mauve(
            p_features=p, q_features=q, **MAUVE_SETTINGS, verbose=False, seed=seed
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
