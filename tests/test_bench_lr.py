"""bench/synthetic_lr.py: the early-stop replay and the steps-to-match summary."""

from __future__ import annotations

from layout import load_bench


def _curve(losses: list[float], every: int = 20) -> list[dict]:
    return [
        {"step": every * (i + 1), "dev_loss": loss, "avg_js": loss / 100}
        for i, loss in enumerate(losses)
    ]


def test_early_stop_replays_the_training_loops_rule():
    bench = load_bench("synthetic_lr")
    # best at check 2 (step 40), then 3 checks without a better loss: stops at step 100
    stop = bench.early_stop(_curve([5.0, 4.0, 4.5, 4.0, 4.1, 3.0]), patience=3)
    assert stop["stopped_at"] == 100
    assert stop["step"] == 40 and stop["dev_loss"] == 4.0
    # never 3 bad checks in a row: runs to the end, keeps the overall best
    run = bench.early_stop(_curve([5.0, 4.0, 4.5, 3.0, 3.5, 2.0]), patience=3)
    assert run["stopped_at"] is None and run["step"] == 120


def test_summary_counts_steps_to_reach_the_first_learning_rates_best():
    bench = load_bench("synthetic_lr")
    runs = [
        {"objective": "mixce", "eta": 0.5, "lr": 0.01, "seconds": 1.0,
         "curve": _curve([5.0, 4.0, 3.0, 2.5])},
        {"objective": "mixce", "eta": 0.5, "lr": 0.03, "seconds": 1.0,
         "curve": _curve([4.0, 2.4, 2.6, 2.2])},
        {"objective": "mixce", "eta": 0.5, "lr": 0.1, "seconds": 1.0,
         "curve": _curve([6.0, 5.0, 4.0, 3.0])},
    ]  # fmt: skip
    out = bench.summarize(runs, [0.01, 0.03, 0.1], patience=2)["mixce eta=0.5"]
    assert out["0.01"]["final"]["dev_loss"] == 2.5
    assert out["0.01"]["steps_to_match"] == 80
    assert out["0.03"]["steps_to_match"] == 40  # 2.4 <= 2.5 at the second check
    assert out["0.1"]["steps_to_match"] is None
    assert out["0.03"]["early_stop"]["stopped_at"] is None  # one bad check only
    assert out["0.03"]["final"]["step"] == 80
