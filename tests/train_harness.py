"""A tiny deterministic training run for tests/test_train.py, run in a subprocess so that the
test can SIGTERM it: python tests/train_harness.py WORK_DIR OUT_FILE [STEP_DELAY [OBJECTIVE]].

OBJECTIVE (default mixce) picks one of :data:`SETTINGS`; loss_truncation's buffer is small
enough to be warm after two steps, so its state matters after a resume."""

from __future__ import annotations

import logging
import sys
import time

import torch

from mixce.gpt2.models import scratch_model
from mixce.gpt2.train import Preempted, StopOnSignal, TrainSettings, train

ARCH = {"n_layer": 1, "n_head": 2, "n_embd": 16, "n_positions": 64}
COMMON = {"lr": 3e-3, "epochs": 3, "batch_size": 6, "micro_batch_size": 4, "seed": 5}
SETTINGS = {
    "mixce": TrainSettings(objective="mixce", hyper={"eta": 0.3}, eval_every=2, **COMMON),
    "loss_truncation": TrainSettings(
        objective="loss_truncation", hyper={"c": 0.4, "buffer": 12}, eval_every=2, **COMMON
    ),
}


def texts(n: int, seed: int) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        length = int(torch.randint(5, 30, (1,), generator=generator))
        out.append(torch.randint(0, 50256, (length,), generator=generator).tolist() + [50256])
    return out


def main() -> int:
    logging.basicConfig(level=logging.INFO)
    work_dir, out_file = sys.argv[1], sys.argv[2]
    delay = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    settings = SETTINGS[sys.argv[4] if len(sys.argv) > 4 else "mixce"]
    model = scratch_model(ARCH, settings.seed)
    with StopOnSignal() as stop:

        def should_stop() -> bool:
            time.sleep(delay)  # slow the run down so that the test's signal lands mid-run
            return stop()

        try:
            summary = train(
                model,
                texts(30, 1),
                texts(6, 2),
                settings,
                work_dir=work_dir,
                device=torch.device("cpu"),
                checkpoint_every=2,
                should_stop=should_stop,
                progress=False,
            )
        except Preempted as error:
            print(f"PREEMPTED: {error}", flush=True)
            return 3
    torch.save({"state": model.state_dict(), "steps": summary["steps"]}, out_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
