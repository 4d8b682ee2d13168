"""The GPT-2 training loop (mixce.gpt2.train), tokenizer and model sources."""

from __future__ import annotations

import json
import math
import os
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import mixce.gpt2.train
from mixce.cluster import MODEL_BYTES_PER_PARAM, RESUME_BYTES_PER_PARAM
from mixce.gpt2.models import count_parameters, load_model, save_model, scratch_model
from mixce.gpt2.tokenizer import build_tokenizer, check_gpt2_bpe, encode_texts
from mixce.gpt2.train import (
    RESUME_KEYS,
    CheckpointError,
    NonFiniteLoss,
    TrainSettings,
    autocast,
    autocast_dtype,
    clip_gradients,
    epoch_order,
    evaluate,
    fingerprint,
    float32_matmuls,
    micro_batch_weights,
    pad_batch,
    protocol_settings,
    save_atomic,
    step_batches,
    tf32_allowed,
    train,
)
from mixce.objectives import mle

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT / "tests" / "train_harness.py"
ARCH = {"n_layer": 1, "n_head": 2, "n_embd": 16, "n_positions": 64}
CPU = torch.device("cpu")


def texts(n: int, seed: int) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        length = int(torch.randint(5, 30, (1,), generator=generator))
        out.append(torch.randint(0, 50256, (length,), generator=generator).tolist() + [50256])
    return out


def run(settings: TrainSettings, work_dir: Path, seed_model: int = 0, dropout=True, **kwargs):
    model = scratch_model(ARCH, seed_model)
    if not dropout:
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    summary = train(
        model,
        texts(24, 1),
        texts(6, 2),
        settings,
        work_dir=work_dir,
        device=CPU,
        progress=False,
        **kwargs,
    )
    return model, summary


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --------------------------------------------------------------------------- tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer("package")


def test_package_tokenizer_is_gpt2_bpe(tokenizer):
    check_gpt2_bpe(tokenizer)  # raises if not
    assert tokenizer(" the cat", add_special_tokens=False)["input_ids"] == [262, 3797]


def test_check_rejects_a_different_tokenizer(tokenizer):
    class Shifted:
        eos_token_id = 50256

        def __len__(self):
            return 50257

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [i + 1 for i in tokenizer(text)["input_ids"]]}

    with pytest.raises(ValueError, match="encodes 'Hello world'"):
        check_gpt2_bpe(Shifted())


def test_encode_texts_appends_eos_and_truncates(tokenizer):
    ids = encode_texts(tokenizer, ["Hello world", "one two three four five six"], max_length=4)
    assert ids[0] == [15496, 995, 50256]
    assert len(ids[1]) == 4 and ids[1][-1] == 50256
    with pytest.raises(ValueError, match="max_length"):
        encode_texts(tokenizer, ["x"], max_length=1)


# --------------------------------------------------------------------------- batches


def test_pad_batch_shifts_and_masks():
    inputs, attention, targets, mask = pad_batch([[1, 2, 3], [4, 5]], 9, CPU)
    assert inputs.tolist() == [[1, 2], [4, 5]]
    assert targets.tolist() == [[2, 3], [5, 9]]
    assert mask.tolist() == [[True, True], [True, False]]
    assert attention.tolist() == [[1, 1], [1, 1]]


def test_step_batches_cover_each_text_once_sorted_by_length():
    lengths = [5, 9, 2, 7, 7, 3, 8]
    order = epoch_order(len(lengths), seed=3, epoch=0)
    steps = step_batches(lengths, order, batch_size=4, micro_batch_size=3)
    flat = [i for step in steps for micro in step for i in micro]
    assert sorted(flat) == list(range(len(lengths)))
    assert [sum(len(m) for m in step) for step in steps] == [4, 3]
    for step in steps:
        seq = [lengths[i] for micro in step for i in micro]
        assert seq == sorted(seq, reverse=True)
    assert epoch_order(7, 3, 0) == order and epoch_order(7, 3, 1) != order


# --------------------------------------------------------------------------- the loop


def test_micro_batch_size_does_not_change_the_update(tmp_path):
    base = dict(objective="mixce", hyper={"eta": 0.5}, lr=1e-3, epochs=1, batch_size=8, seed=0)
    # Dropout draws masks of the micro-batch's shape, so it is off for this comparison.
    a, _ = run(TrainSettings(micro_batch_size=8, **base), tmp_path / "a", dropout=False)
    b, _ = run(TrainSettings(micro_batch_size=3, **base), tmp_path / "b", dropout=False)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6, msg=name)


def test_same_seed_same_weights_other_seed_differs(tmp_path):
    settings = TrainSettings(objective="mle", lr=1e-3, epochs=1, batch_size=8, micro_batch_size=4)
    a, sa = run(settings, tmp_path / "a")
    b, sb = run(settings, tmp_path / "b")
    assert same_weights(a, b)
    assert sa["evals"] == sb["evals"]
    c, _ = run(TrainSettings(**{**settings.__dict__, "seed": 1}), tmp_path / "c")
    assert not same_weights(a, c)


def test_training_lowers_dev_loss_and_keeps_best(tmp_path):
    settings = TrainSettings(objective="mle", lr=3e-3, epochs=4, batch_size=8, micro_batch_size=8)
    model, summary = run(settings, tmp_path)
    losses = [e["loss"] for e in summary["evals"]]
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert summary["best_dev_loss"] == min(losses)
    best = load_model(tmp_path / "best")
    assert evaluate(best, texts(6, 2), settings, CPU)["loss"] == pytest.approx(min(losses), 1e-5)
    # MLE's objective dev loss is the plain NLL; MixCE's is not.
    assert all(e["loss"] == pytest.approx(e["nll"]) for e in summary["evals"])
    mix = evaluate(best, texts(6, 2), TrainSettings(objective="mixce", hyper={"eta": 0.1}), CPU)
    assert mix["loss"] < mix["nll"]


def test_non_finite_loss_names_the_step(tmp_path):
    model = scratch_model(ARCH, 0)
    with torch.no_grad():
        model.transformer.wte.weight[123] = float("nan")
    data = texts(8, 1)
    data[5] = [123, *data[5]]
    settings = TrainSettings(objective="mle", epochs=1, batch_size=8, micro_batch_size=2)
    with pytest.raises(NonFiniteLoss, match=r"optimizer step 1 .*micro-batch \d holding"):
        train(model, data, texts(2, 2), settings, work_dir=tmp_path, device=CPU, progress=False)


def test_resume_checkpoint_of_other_settings_is_ignored(tmp_path):
    settings = TrainSettings(objective="mle", lr=1e-3, epochs=1, batch_size=8, micro_batch_size=8)
    run(settings, tmp_path, checkpoint_every=1)
    assert (tmp_path / "resume.pt").is_file()
    other = TrainSettings(**{**settings.__dict__, "lr": 2e-3})
    fresh, _ = run(other, tmp_path / "fresh")
    reused, summary = run(other, tmp_path)  # stale checkpoint from `settings`: not used
    assert same_weights(fresh, reused) and summary["steps"] == 3


@pytest.mark.parametrize("objective", ["mixce", "loss_truncation"])
def test_sigterm_then_resume_ends_with_the_same_weights(tmp_path, objective):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    full = subprocess.run(
        [
            sys.executable,
            str(HARNESS),
            str(tmp_path / "full"),
            str(tmp_path / "full.pt"),
            "0",
            objective,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert full.returncode == 0, full.stderr

    work = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, str(HARNESS), str(work), str(tmp_path / "resumed.pt"), "0.3", objective],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not (work / "resume.pt").exists():  # first checkpoint written: mid-run
        assert proc.poll() is None and time.time() < deadline, "run ended before a checkpoint"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    assert "PREEMPTED: stopped at step" in out
    saved = torch.load(work / "resume.pt", weights_only=True)["state"]
    stopped_at = saved["step"]
    assert 0 < stopped_at < 15  # 3 epochs x 5 steps
    if objective == "loss_truncation":  # the loss buffer travels in the checkpoint
        assert int(saved["objective"]["seen"]) == 6 * stopped_at
        assert saved["objective"]["losses"].shape == (12,)
    else:
        assert saved["objective"] == {}

    resumed = subprocess.run(
        [sys.executable, str(HARNESS), str(work), str(tmp_path / "resumed.pt"), "0", objective],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from {work / 'resume.pt'} at step {stopped_at}" in resumed.stderr
    a = torch.load(tmp_path / "full.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert a["steps"] == b["steps"] == 15
    for key, value in a["state"].items():
        assert torch.equal(value, b["state"][key]), key
    best_a, best_b = load_model(tmp_path / "full" / "best"), load_model(work / "best")
    assert same_weights(best_a, best_b)


class TouchOnUnpickle:
    """Unpickling this runs code: it creates ``marker`` (a harmless stand-in for any code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_resume_checkpoint_holding_a_pickled_object_is_refused_unrun(tmp_path):
    settings = TrainSettings(objective="mle", lr=1e-3, epochs=1, batch_size=8, micro_batch_size=8)
    marker = tmp_path / "code_ran"
    planted = {key: {} for key in RESUME_KEYS}
    planted["rng"] = {"torch": TouchOnUnpickle(marker)}
    work = tmp_path / "work"
    work.mkdir()
    torch.save(planted, work / "resume.pt")
    # the planted file is live: an unpickling load runs its code
    torch.load(work / "resume.pt", weights_only=False)
    assert marker.exists()
    marker.unlink()

    with pytest.raises(CheckpointError) as refused:
        run(settings, work)
    message = str(refused.value)
    assert f"refusing resume checkpoint {work / 'resume.pt'}" in message
    assert "pickled objects (" in message and "pathlib" in message
    assert not marker.exists()
    assert not (work / "best").exists()  # refused before any training


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (
            b"not a checkpoint",
            "refusing resume checkpoint .*: it is no checkpoint that torch.save wrote",
        ),
        ({"fingerprint": "x", "model": {}}, r"is not a resume checkpoint: no optimizer, sched"),
        ([torch.zeros(1)], "is not a resume checkpoint: no fingerprint"),
    ],
)
def test_resume_file_that_is_no_checkpoint_is_refused(tmp_path, content, error):
    path = tmp_path / "resume.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    settings = TrainSettings(objective="mle", lr=1e-3, epochs=1, batch_size=8, micro_batch_size=8)
    with pytest.raises(CheckpointError, match=error) as refused:
        run(settings, tmp_path)
    assert str(path) in str(refused.value)


def test_checkpoint_saves_only_plain_types(tmp_path):
    import numpy as np

    path = tmp_path / "resume.pt"
    bad = {"state": {"log": [{"loss": 1.0}, {"loss": np.float64(2.0)}]}}
    with pytest.raises(
        TypeError, match=r"checkpoint\['state'\]\['log'\]\[1\]\['loss'\] is a numpy"
    ):
        save_atomic(bad, path)
    assert not path.exists()
    good = {"rng": {"torch": torch.get_rng_state(), "cuda": [torch.zeros(2)]}, "best": math.inf}
    save_atomic({**good, "state": {"best_step": None, "log": [{"step": 1}]}}, path)
    back = torch.load(path, weights_only=True)
    assert torch.equal(back["rng"]["torch"], good["rng"]["torch"]) and back["best"] == math.inf


# --------------------------------------------------------------------------- retention


def test_one_resume_checkpoint_of_12_bytes_per_parameter(tmp_path):
    """A checkpoint at every step replaces the last: the work directory holds one resume.pt
    and best/, nothing else (a stale temporary file of a save cut short is dropped). Its size
    is what mixce.cluster counts for the README's disk table."""
    settings = TrainSettings(objective="mle", lr=1e-3, epochs=1, batch_size=6, micro_batch_size=6)
    (tmp_path / "once").mkdir()
    (tmp_path / "once" / ".resume.pt.tmp").write_bytes(b"a save cut short by a kill")
    run(settings, tmp_path / "once", checkpoint_every=0)  # no checkpoint to replace it
    assert sorted(p.name for p in (tmp_path / "once").iterdir()) == ["best"]
    tmp_path = tmp_path / "every_step"
    model, summary = run(settings, tmp_path, checkpoint_every=1)
    assert summary["steps"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", "resume.pt"]
    assert torch.load(tmp_path / "resume.pt", weights_only=True)["state"]["step"] == 4
    n = count_parameters(model)
    per_param = (tmp_path / "resume.pt").stat().st_size / n
    assert RESUME_BYTES_PER_PARAM <= per_param < RESUME_BYTES_PER_PARAM * 1.01, per_param
    best = (tmp_path / "best" / "model.safetensors").stat().st_size / n
    assert MODEL_BYTES_PER_PARAM <= best < MODEL_BYTES_PER_PARAM * 1.01, best


class StopAfter:
    """Stands in for StopOnSignal in the rule's script: 'SIGTERM' after ``steps`` steps."""

    steps = 2

    def __init__(self) -> None:
        self.calls = 0

    def __enter__(self) -> StopAfter:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def __call__(self) -> bool:
        self.calls += 1
        return self.calls >= self.steps


def train_job(tmp_path: Path) -> SimpleNamespace:
    """scripts/gpt2_train.py's `snakemake` object for a scratch model on 12 short texts."""
    from mixce.gpt2.tokenizer import save_tokenizer

    tokenizer = tmp_path / "tokenizer"
    if not tokenizer.exists():
        save_tokenizer("package", "gpt2", tokenizer)
    words = "the a cat dog sat ran on under mat tree house big small red".split()
    for split, n in (("train", 12), ("dev", 4)):
        lines = [
            json.dumps({"text": " ".join(words[(i * 5 + j * 3) % len(words)] for j in range(12))})
            for i in range(n)
        ]
        (tmp_path / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    settings = {"objective": "mle", "lr": 1e-3, "epochs": 2, "batch_size": 4}
    return SimpleNamespace(
        rule="pretrain",
        resources=SimpleNamespace(gpu=0, mem_mb=1000, runtime=10),
        params=SimpleNamespace(
            settings={**settings, "micro_batch_size": 4, "max_length": 32, "seed": 3},
            architecture=ARCH,
            work_dir=str(tmp_path / "work"),
            checkpoint_every=100,
            device="cpu",
            n_train=None,
        ),
        input=SimpleNamespace(
            tokenizer=str(tokenizer),
            train=str(tmp_path / "train.jsonl"),
            dev=str(tmp_path / "dev.jsonl"),
        ),
        output=SimpleNamespace(
            model=str(out / "model"), log_csv=str(out / "log.csv"), summary=str(out / "s.json")
        ),
        threads=1,
        log=[str(tmp_path / "job.log")],
    )


def test_rule_keeps_the_checkpoint_when_stopped_and_removes_it_when_done(tmp_path, monkeypatch):
    """The training rule's script as Snakemake runs it: stopped ('SIGTERM' before the time
    limit) it fails with Preempted, its one resume checkpoint kept and no outputs (so
    Snakemake retries it); run again it resumes, writes its outputs and deletes its work
    directory, checkpoint included."""
    script = str(ROOT / "rules" / "scripts" / "gpt2_train.py")
    smk = train_job(tmp_path)
    work = Path(smk.params.work_dir)
    monkeypatch.setattr(mixce.gpt2.train, "StopOnSignal", StopAfter)
    with pytest.raises(mixce.gpt2.train.Preempted, match="stopped at step 2 of 6"):
        runpy.run_path(script, init_globals={"snakemake": smk})
    assert sorted(p.name for p in work.iterdir()) == ["resume.pt"]  # no dev evaluation yet
    assert not (tmp_path / "out").exists()

    monkeypatch.setattr(StopAfter, "steps", 10**6)
    runpy.run_path(script, init_globals={"snakemake": smk})
    assert "resumed from" in (tmp_path / "job.log").read_text()
    assert not work.exists()
    assert json.loads((tmp_path / "out" / "s.json").read_text())["steps"] == 6
    assert (tmp_path / "out" / "model" / "model.safetensors").is_file()


# --------------------------------------------------------------------------- objectives


def test_settings_hyper_checked_filled_and_fingerprinted():
    a = TrainSettings(objective="loss_truncation", hyper={"c": 0.2})
    assert a.hyper == {"buffer": 10000.0, "c": 0.2} == a.objective_kwargs()
    b = TrainSettings(objective="loss_truncation", hyper={"buffer": 10000, "c": 0.2})
    assert a == b and hash(a) == hash(b)
    assert fingerprint(a, texts(3, 1)) == fingerprint(b, texts(3, 1))
    c = TrainSettings(objective="loss_truncation", hyper={"c": 0.3})
    assert fingerprint(a, texts(3, 1)) != fingerprint(c, texts(3, 1))
    assert TrainSettings().hyper == {}
    assert TrainSettings(**{**a.__dict__, "seed": 3}).hyper == a.hyper
    with pytest.raises(ValueError, match="'mle' takes no hyper-parameter 'eta'"):
        TrainSettings(objective="mle", hyper={"eta": 1.0})
    with pytest.raises(ValueError, match="'mixce' needs hyper-parameter 'eta'"):
        TrainSettings(objective="mixce")


class UniformLM(torch.nn.Module):
    """A causal LM with all-equal logits (a uniform next-token distribution)."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask):
        return SimpleNamespace(logits=torch.zeros(*input_ids.shape, 50257) + self.unused)


def test_lfd_trains_with_a_frozen_reference(tmp_path):
    settings = TrainSettings(
        objective="lfd", hyper={"mle_weight": 0.5}, lr=1e-3, epochs=2, batch_size=8
    )
    with pytest.raises(ValueError, match="'lfd' needs a reference model"):
        run(settings, tmp_path / "none")
    with pytest.raises(ValueError, match="'mle' takes no reference model"):
        run(TrainSettings(objective="mle"), tmp_path / "mle", reference=scratch_model(ARCH, 3))
    reference = scratch_model(ARCH, 3).train()
    before = {k: v.clone() for k, v in reference.state_dict().items()}
    model, summary = run(settings, tmp_path / "lfd", reference=reference)
    assert summary["steps"] == 6 and len(summary["evals"]) == 2
    assert all(math.isfinite(e["loss"]) and e["loss"] != e["nll"] for e in summary["evals"])
    assert not reference.training and not any(p.requires_grad for p in reference.parameters())
    assert all(torch.equal(before[k], v) for k, v in reference.state_dict().items())
    assert not same_weights(model, scratch_model(ARCH, 0))
    # the dev loss is the PoE loss with this reference; without it, evaluate refuses
    dev = evaluate(load_model(tmp_path / "lfd" / "best"), texts(6, 2), settings, CPU, reference)
    assert dev["loss"] == pytest.approx(summary["best_dev_loss"], rel=1e-5)
    with pytest.raises(ValueError, match="needs a reference"):
        evaluate(model, texts(6, 2), settings, CPU)


def test_lfd_with_a_uniform_reference_trains_like_mle(tmp_path):
    base = dict(lr=1e-3, epochs=1, batch_size=8, micro_batch_size=4)
    mle_model, mle_summary = run(TrainSettings(objective="mle", **base), tmp_path / "mle")
    lfd_model, lfd_summary = run(
        TrainSettings(objective="lfd", **base), tmp_path / "lfd", reference=UniformLM()
    )
    for (name, pa), pb in zip(
        mle_model.state_dict().items(), lfd_model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-6, msg=name)
    assert lfd_summary["best_dev_loss"] == pytest.approx(mle_summary["best_dev_loss"], rel=1e-5)


def test_loss_truncation_trains_and_evaluates_as_nll(tmp_path):
    base = dict(lr=1e-3, epochs=2, batch_size=8, micro_batch_size=4, seed=2)
    mle_model, _ = run(TrainSettings(objective="mle", **base), tmp_path / "mle")
    # c = 0 keeps every sequence: MLE exactly
    keep_all, _ = run(
        TrainSettings(objective="loss_truncation", hyper={"c": 0.0, "buffer": 8}, **base),
        tmp_path / "c0",
    )
    assert same_weights(mle_model, keep_all)
    # a small buffer is warm after the first step: sequences are dropped, weights differ
    settings = TrainSettings(objective="loss_truncation", hyper={"c": 0.4, "buffer": 8}, **base)
    model, summary = run(settings, tmp_path / "lt")
    assert not same_weights(mle_model, model)
    assert summary["steps"] == 6
    assert all(e["loss"] == pytest.approx(e["nll"]) for e in summary["evals"])  # state=None


# --------------------------------------------------------------------------- protocol points


def test_protocol_settings_official_clean_and_absent():
    base = {"objective": "mle", "grad_clip": 1.0, "lr": 1e-3}
    official = dict.fromkeys(("grad_clip", "grad_accumulation", "precision"), "official")
    assert protocol_settings(base, official) == {
        **base,
        "grad_clip": None,
        "accumulation": "micro_batches",
        "precision": "float32",
    }
    clean = dict.fromkeys(official, "clean")
    assert protocol_settings(base, clean) == {
        **base,
        "accumulation": "tokens",
        "precision": "bf16_autocast",
    }
    assert protocol_settings(base, {}) == base  # pretraining passes no point
    assert protocol_settings(base, {"grad_clip": "official"})["grad_clip"] is None
    assert base["grad_clip"] == 1.0  # not modified in place
    with pytest.raises(KeyError, match="diversity"):
        protocol_settings(base, {"diversity": "official"})
    with pytest.raises(ValueError, match="precision"):
        TrainSettings(precision="fp16")
    with pytest.raises(ValueError, match="accumulation"):
        TrainSettings(accumulation="sum")
    # the settings are part of a resume checkpoint's fingerprint
    a = TrainSettings(**protocol_settings({}, clean))
    b = TrainSettings(**protocol_settings({}, official))
    assert fingerprint(a, texts(2, 1)) != fingerprint(b, texts(2, 1))


def test_clip_gradients_known_answer():
    def param() -> torch.nn.Parameter:
        p = torch.nn.Parameter(torch.zeros(2))
        p.grad = torch.tensor([3.0, 4.0])  # norm 5
        return p

    clipped, unclipped, loose = param(), param(), param()
    none = torch.nn.Parameter(torch.zeros(3))  # no gradient: ignored
    assert clip_gradients([clipped, none], 1.0) == pytest.approx(5.0)
    torch.testing.assert_close(clipped.grad, torch.tensor([0.6, 0.8]))  # 3/5, 4/5
    assert clip_gradients([unclipped], None) == pytest.approx(5.0)
    assert unclipped.grad.tolist() == [3.0, 4.0]
    assert clip_gradients([loose], 10.0) == pytest.approx(5.0)
    assert loose.grad.tolist() == [3.0, 4.0]


def test_grad_clip_none_is_no_clipping_in_the_loop(tmp_path):
    base = dict(objective="mle", lr=1e-3, epochs=1, batch_size=12, micro_batch_size=12)
    free, s_free = run(TrainSettings(grad_clip=None, **base), tmp_path / "none")
    tight, s_tight = run(TrainSettings(grad_clip=1e-3, **base), tmp_path / "tight")
    assert not same_weights(free, tight)
    norms = [[row["grad_norm"] for row in s["log"]] for s in (s_free, s_tight)]
    assert len(norms[0]) == 2 and all(n > 1e-3 for n in norms[0])  # logged without clipping
    assert norms[1][0] == norms[0][0]  # same first step: the norm is taken before clipping
    assert norms[1][1] != norms[0][1]


def test_micro_batch_weights_known_answer():
    # a full step of two micro-batches holding 6 and 2 target tokens
    assert micro_batch_weights([6, 2], "tokens", 2) == [0.75, 0.25]  # 6/8, 2/8
    assert micro_batch_weights([6, 2], "micro_batches", 2) == [0.5, 0.5]  # 1/2 each
    # an epoch's short last step: one micro-batch of 3 tokens where a full step has 4
    assert micro_batch_weights([3], "tokens", 4) == [1.0]
    assert micro_batch_weights([3], "micro_batches", 4) == [0.25]
    with pytest.raises(ValueError, match="accumulation"):
        micro_batch_weights([1], "sum", 1)


def test_official_micro_batches_keep_the_epoch_order():
    lengths = [2, 9, 5]
    assert step_batches(lengths, [0, 1, 2], 3, 2) == [[[1, 2], [0]]]  # longest first
    assert step_batches(lengths, [0, 1, 2], 3, 2, by_length=False) == [[[0, 1], [2]]]


@pytest.mark.parametrize("accumulation", ["tokens", "micro_batches"])
def test_step_loss_and_gradient_weight_micro_batches(tmp_path, accumulation):
    """One step of two one-text micro-batches with 2 and 6 target tokens, lr 0: the logged
    loss and gradient norm are those of w_a l_a + w_b l_b, w = (2/8, 6/8) when weighting by
    tokens and (1/2, 1/2) when every micro-batch counts the same."""
    short, long = [5, 6, 7], [11, 12, 13, 14, 15, 16, 17]  # 2 and 6 targets (ids[1:])
    settings = TrainSettings(
        objective="mle",
        lr=0.0,
        epochs=1,
        batch_size=2,
        micro_batch_size=1,
        grad_clip=None,
        accumulation=accumulation,
    )
    model = scratch_model(ARCH, 0)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    summary = train(
        model, [short, long], [short], settings, work_dir=tmp_path, device=CPU, progress=False
    )
    weights = {"tokens": (2 / 8, 6 / 8), "micro_batches": (1 / 2, 1 / 2)}[accumulation]

    by_hand = scratch_model(ARCH, 0)
    for module in by_hand.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    losses = []
    for text in (short, long):
        inputs, attention, targets, mask = pad_batch([text], 0, CPU)
        assert int(mask.sum()) == len(text) - 1
        losses.append(
            mle(by_hand(input_ids=inputs, attention_mask=attention).logits, targets, mask)
        )
    loss = weights[0] * losses[0] + weights[1] * losses[1]
    loss.backward()
    norm = torch.cat([p.grad.flatten() for p in by_hand.parameters() if p.grad is not None]).norm()
    (row,) = summary["log"]
    assert row["loss"] == pytest.approx(loss.item(), rel=1e-6)
    assert row["grad_norm"] == pytest.approx(float(norm), rel=1e-5)
    assert row["tokens"] == 8
    assert losses[0].item() != pytest.approx(losses[1].item(), rel=1e-3)  # weights matter


def test_precision_chooses_autocast_and_tf32():
    assert autocast_dtype("cuda", "bf16_autocast") == torch.bfloat16
    assert autocast_dtype("cuda", "float32") is None
    assert autocast_dtype("cpu", "bf16_autocast") is None  # the CPU always runs float32
    assert autocast_dtype("cpu", "float32") is None
    assert tf32_allowed("cuda", "bf16_autocast")
    assert not tf32_allowed("cuda", "float32") and not tf32_allowed("cpu", "bf16_autocast")
    with pytest.raises(ValueError, match="precision"):
        autocast_dtype("cuda", "fp16")
    with autocast(CPU, "bf16_autocast"):
        assert not torch.is_autocast_enabled("cpu")
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        with float32_matmuls():
            assert not torch.backends.cuda.matmul.allow_tf32
            assert not torch.backends.cudnn.allow_tf32
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@pytest.mark.parametrize("precision", ["bf16_autocast", "float32"])
def test_training_forward_takes_the_precision_and_dev_loss_is_float32(
    tmp_path, monkeypatch, precision
):
    calls = []

    def spy(device, precision="bf16_autocast"):
        calls.append((device.type, precision))
        return autocast(device, precision)

    monkeypatch.setattr(mixce.gpt2.train, "autocast", spy)
    seen_tf32 = []  # TF32 flag at each dev (eval-mode) forward
    model = scratch_model(ARCH, 0)
    model.register_forward_pre_hook(
        lambda module, _: (
            None if module.training else seen_tf32.append(torch.backends.cuda.matmul.allow_tf32)
        )
    )
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        settings = TrainSettings(
            objective="mle",
            lr=1e-3,
            epochs=1,
            batch_size=4,
            micro_batch_size=2,
            precision=precision,
        )
        summary = train(
            model,
            texts(4, 1),
            texts(2, 2),
            settings,
            work_dir=tmp_path,
            device=CPU,
            progress=False,
        )
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before
    assert calls == [("cpu", precision)] * 2  # the training forwards only (2 micro-batches)
    assert seen_tf32 == [False]  # the dev evaluation: one batch, TF32 off
    assert summary["settings"]["precision"] == precision


# --------------------------------------------------------------------------- models


def test_scratch_model_is_seeded_and_saves_round_trip(tmp_path):
    a, b, c = scratch_model(ARCH, 1), scratch_model(ARCH, 1), scratch_model(ARCH, 2)
    assert same_weights(a, b) and not same_weights(a, c)
    save_model(a, tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").is_file()
    assert same_weights(a, load_model(tmp_path / "m"))
    with pytest.raises(FileNotFoundError, match="holds no model"):
        load_model(tmp_path)


class _BigramLM(torch.nn.Module):
    """logits[b, t] = log P[input_ids[b, t]]: token x predicts the next token with row P[x]."""

    def __init__(self, probs: list[list[float]]) -> None:
        super().__init__()
        self.table = torch.nn.Parameter(torch.log(torch.tensor(probs)))

    def forward(self, input_ids, attention_mask=None):
        return SimpleNamespace(logits=self.table[input_ids])


def test_dev_loss_average_known_answer():
    # token 0 predicts uniformly over 4 tokens (NLL log 4 = 2 log 2); token 1 puts 1/2 on EOS
    # (token 3, NLL log 2); rows 2 and 3 are never read
    quarter = [0.25, 0.25, 0.25, 0.25]
    model = _BigramLM([quarter, [1 / 6, 1 / 6, 1 / 6, 0.5], quarter, quarter])
    texts = [[0, 1, 3], [0, 3], [1, 3]]  # NLLs in log 2 units: (2, 1), (2,), (1,)
    log2 = math.log(2)
    cpu = torch.device("cpu")
    clean = evaluate(model, texts, TrainSettings(dev_batch_size=2), cpu)
    # token-weighted: (2 + 1 + 2 + 1) / 4 tokens
    assert clean["nll"] == pytest.approx(6 / 4 * log2) and clean["tokens"] == 4
    assert clean["loss"] == pytest.approx(clean["nll"])  # MLE's loss is its NLL
    official = TrainSettings(**protocol_settings({}, {"perplexity_average": "official"}))
    assert official.dev_batch_size == 32 and official.dev_average == "batch_means"
    # batches of 2 in file order: ([0,1,3], [0,3]) mean (2 + 1 + 2) / 3 = 5/3 over 2 texts,
    # ([1,3]) mean 1 over 1 text -> (2 * 5/3 + 1) / 3 = 13/9
    two = TrainSettings(
        **{**protocol_settings({}, {"perplexity_average": "official"}), "dev_batch_size": 2}
    )
    assert evaluate(model, texts, two, cpu)["nll"] == pytest.approx(13 / 9 * log2)
    # one batch of 32 holds all three texts: the token-weighted mean again
    assert evaluate(model, texts, official, cpu)["nll"] == pytest.approx(6 / 4 * log2)
    # clean sorts by length first, so its batches of 2 are ([0,1,3], [0,3]) too but its
    # weights are tokens: still 6/4, whatever the batching
    assert protocol_settings({"dev_batch_size": 16}, {"perplexity_average": "clean"}) == {
        "dev_batch_size": 16,
        "dev_average": "tokens",
    }
