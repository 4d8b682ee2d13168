"""Fixtures shared by the synthetic test modules."""

from __future__ import annotations

import numpy as np
import pytest

from mixce.synthetic.data import chain_matrix, sample_sequences
from mixce.synthetic.settings import TrainConfig
from mixce.synthetic.target import random_target, uniform_start


@pytest.fixture(scope="module")
def train_problem():
    """A small target (V = 6), its train / dev sequences and a short exact-estimator config."""
    v = 6
    p = chain_matrix(random_target(v, 0.5, 0.5, np.random.default_rng(12)), uniform_start(v))
    rng = np.random.default_rng(3)
    train = sample_sequences(p, 300, 30, rng)
    dev = sample_sequences(p, 100, 30, rng)
    cfg = TrainConfig(
        estimator="exact", lr=1e-2, max_steps=60, eval_every=10, hidden_size=16, max_length=30
    )
    return p, train, dev, cfg
