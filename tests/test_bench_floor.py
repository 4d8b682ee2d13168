"""bench/synthetic_floor.py: the step totals it reads and the bound it computes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from mixce.layout import REPO


def _bench():
    spec = importlib.util.spec_from_file_location(
        "synthetic_floor", REPO / "bench" / "synthetic_floor.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_run(root: Path, run: str, v: int, steps: list[list[int]]) -> Path:
    """A results/<run> tree with one eta*.json per inner list (one entry per seed)."""
    for i, seeds in enumerate(steps):
        f = root / run / "synthetic" / "train" / "random50" / f"V{v}" / "mix_kl" / f"eta0.{i}.json"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps([{"vocab_size": v, "steps": s} for s in seeds]))
    return root / run


def test_steps_taken_sums_models_and_steps_per_vocab(tmp_path: Path) -> None:
    bench = _bench()
    a = _write_run(tmp_path, "small", 20, [[100, 200], [300]])
    b = _write_run(tmp_path, "large", 1000, [[1000, 3000]])
    got = bench.steps_taken([a, b])
    assert got == {
        20: {"models": 3, "steps": 600, "runs": ["small"]},
        1000: {"models": 2, "steps": 4000, "runs": ["large"]},
    }


def test_steps_taken_names_a_run_without_results(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="empty/synthetic/train"):
        _bench().steps_taken([tmp_path / "empty"])


def test_floor_is_steps_times_step_seconds_over_cores() -> None:
    rows = _bench().floor_rows(
        {500: {"models": 4, "steps": 6000, "runs": ["r"]}},
        {500: {"network": 0.002, "matmuls": 0.0005}},
        cores=2,
    )
    assert rows[0]["network_wall_s"] == pytest.approx(6.0)
    assert rows[0]["matmuls_wall_s"] == pytest.approx(1.5)
    assert rows[0]["models"] == 4 and rows[0]["network_step_s"] == 0.002


def test_timed_parts_run_and_the_network_costs_more_than_its_products() -> None:
    bench = _bench()
    network = bench.network_step_seconds(100, steps=20)
    products = bench.matmul_seconds(100, reps=20)
    objective = bench.objective_seconds(100, reps=20)
    assert 0 < products < network
    assert objective > 0
