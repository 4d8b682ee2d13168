"""bench/synthetic_floor.py: the step totals it reads and the bound it computes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from layout import load_bench


def _bench():
    return load_bench("synthetic_floor")


def _write_run(root: Path, run: str, v: int, steps: list[list[int]]) -> Path:
    """A results/<run> tree with one eta*.json per inner list (one entry per seed)."""
    for i, seeds in enumerate(steps):
        f = root / run / "synthetic" / "train" / "random50" / f"V{v}" / "mix_kl" / f"eta0.{i}.json"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(
            json.dumps([{"vocab_size": v, "objective": "mix_kl", "steps": s} for s in seeds])
        )
    return root / run


def test_steps_taken_sums_models_and_steps_per_vocab(tmp_path: Path) -> None:
    bench = _bench()
    a = _write_run(tmp_path, "small", 20, [[100, 200], [300]])
    b = _write_run(tmp_path, "large", 1000, [[1000, 3000]])
    got = bench.steps_taken([a, b])
    assert got == {
        20: {"models": 3, "steps": 600, "by_objective": {"mix_kl": 600}, "runs": ["small"]},
        1000: {"models": 2, "steps": 4000, "by_objective": {"mix_kl": 4000}, "runs": ["large"]},
    }


def test_steps_taken_names_a_run_without_results(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="empty/synthetic/train"):
        _bench().steps_taken([tmp_path / "empty"])


def test_floor_is_steps_times_step_seconds_over_cores() -> None:
    steps = {
        500: {"models": 4, "steps": 6000, "by_objective": {"mixce": 4000, "js": 2000}, "runs": []}
    }
    times = {
        500: {
            "matmuls": 0.0005,
            "network": 0.002,
            "network_concurrent": 0.003,
            "objective": {"forward_kl": 0.001, "mixce": 0.0015, "js": 0.0},
        }
    }
    row = _bench().floor_rows(steps, times, cores=2)[0]
    assert row["matmuls_wall_s"] == pytest.approx(6000 * 0.0005 / 2)
    assert row["matmuls_plus_cheapest_wall_s"] == pytest.approx(6000 * 0.0015 / 2)
    assert row["matmuls_plus_own_wall_s"] == pytest.approx((3.0 + 4000 * 0.0015) / 2)
    assert row["network_wall_s"] == pytest.approx(6.0)
    assert row["network_concurrent_wall_s"] == pytest.approx(9.0)
    assert row["network_plus_own_wall_s"] == pytest.approx((12.0 + 6.0) / 2)
    assert row["models"] == 4 and row["steps_by_objective"]["js"] == 2000


def test_timed_parts_run_and_the_network_costs_more_than_its_products() -> None:
    bench = _bench()
    network = bench.network_step_seconds(100, steps=20)
    products = bench.matmul_seconds(100, reps=20)
    cheapest = bench.objective_seconds(100, "forward_kl", reps=20)
    with_visits = bench.objective_seconds(100, "mix_kl", reps=20)
    assert 0 < products < network
    assert 0 < cheapest < with_visits  # the visit counts and their adjoint cost extra
    assert bench.objective_seconds(100, "js", reps=20) == 0.0
