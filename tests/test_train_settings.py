"""mixce.gpt2.plan.model_train_settings: the `settings` params of the finetune and pretrain
rules, as the rules built them field by field before (a changed value or key order would rerun
every job), and every key a mixce.gpt2.train.TrainSettings field."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mixce.config import load_config
from mixce.gpt2.plan import finetune_jobs, model_train_settings, scratch_models
from mixce.gpt2.train import TrainSettings, protocol_settings

REPO = Path(__file__).resolve().parents[1]
FIELDS = [f.name for f in dataclasses.fields(TrainSettings)]


def test_finetune_and_pretrain_settings_from_the_config() -> None:
    gpt2 = load_config([REPO / "config.yaml", REPO / "config/test.yaml"])["gpt2"]
    ft, pt = gpt2["finetune"], gpt2["pretrain"]
    jobs = finetune_jobs(gpt2)
    assert any(job.hyper for job in jobs), "no objective with hyper-parameters planned"
    for job in jobs:
        micro = gpt2["models"][job.model]["micro_batch_size"]
        fields = model_train_settings(gpt2, job.model, job)
        assert fields == {
            "objective": job.objective,
            "hyper": dict(job.hyper),
            **{key: ft[key] for key in ("lr", "weight_decay", "warmup_steps", "grad_clip")},
            "epochs": ft["epochs"],
            "max_steps": None,
            "batch_size": ft["batch_size"],
            "micro_batch_size": micro,
            "max_length": ft["max_length"],
            "seed": ft["seed"],
            "eval_every": ft["eval_every"],
            "dev_batch_size": ft["dev_batch_size"],
        }
        assert list(fields) == FIELDS[: len(fields)]  # field order: the params' repr
        assert TrainSettings(**protocol_settings(fields, {})).objective == job.objective
    (model,) = scratch_models(gpt2)
    fields = model_train_settings(gpt2, model)
    assert fields == {
        "objective": "mle",
        "hyper": {},
        **{key: pt[key] for key in ("lr", "weight_decay", "warmup_steps", "grad_clip")},
        "epochs": pt["epochs"],
        "max_steps": pt["max_steps"],
        "batch_size": pt["batch_size"],
        "micro_batch_size": gpt2["models"][model]["micro_batch_size"],
        "max_length": pt["max_length"],
        "seed": pt["seed"],
        "eval_every": 0,
        "dev_batch_size": ft["dev_batch_size"],  # pretraining evaluates as finetuning does
    }
    assert list(fields) == FIELDS[: len(fields)]
    assert TrainSettings(**fields).max_steps == pt["max_steps"]
