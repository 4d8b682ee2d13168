"""The NumPy backend of the exact estimator (mixce.synthetic.exact) against the PyTorch one.

Every piece is checked against its PyTorch counterpart on the same numbers: the network's
forward and backward pass, Adam, each objective's value and gradient (JS with the same
random draws), then whole training runs (reproducible, improving, no torch import).
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from synthetic_reference import compare

from mixce.synthetic import exact as ex
from mixce.synthetic.data import chain_matrix, sample_sequences
from mixce.synthetic.model import NeuralBigram
from mixce.synthetic.objectives import OBJECTIVES, Setting, _js, exact_value_and_grad
from mixce.synthetic.pipeline import make_target, train_config, train_settings
from mixce.synthetic.settings import OBJECTIVES as SETTINGS_OBJECTIVES
from mixce.synthetic.settings import TrainConfig
from mixce.synthetic.target import random_target, uniform_start
from mixce.synthetic.train import make_batch, train_q

V, MAX_LEN = 12, 30


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    m = random_target(V, 0.5, 0.5, rng)
    chain = chain_matrix(m, uniform_start(V))
    seqs = sample_sequences(chain, 300, MAX_LEN, rng)
    log_p = np.log(chain + 1e-30)
    setting = Setting(torch.from_numpy(log_p), MAX_LEN, "exact", 1.0, 50)
    batch = make_batch(seqs, log_p, torch.float64, True)
    target = ex.make_target(log_p, seqs, MAX_LEN, np.float64, True)
    return chain, seqs, setting, batch, target


def torch_model(seed: int, dropout: float = 0.0) -> NeuralBigram:
    torch.manual_seed(seed)
    return NeuralBigram(V, 8, dropout).double()


def params_of(model: NeuralBigram) -> ex.Params:
    def a(t: torch.Tensor) -> np.ndarray:
        return t.detach().numpy().copy()

    return ex.Params(
        a(model.embedding.weight),
        a(model.mlp[0].weight),
        a(model.mlp[0].bias),
        a(model.mlp[3].weight),
        a(model.mlp[3].bias),
    )


def test_objective_names_are_shared_by_both_backends():
    """One list of names (settings.OBJECTIVES); the NumPy backend rejects any other."""
    assert OBJECTIVES is SETTINGS_OBJECTIVES
    with pytest.raises(KeyError, match="unknown synthetic objective 'nope'"):
        ex.value_and_grad("nope", 0.5, np.zeros((V + 1, V)), None)


@pytest.mark.parametrize("name", ["forward_kl", "reverse_kl", "mix_kl", "mixce_star", "mixce"])
@pytest.mark.parametrize("eta", [1.0, 0.99, 0.5, 0.01, 0.0])
def test_value_and_gradient_equal_the_pytorch_ones(problem, name, eta):
    _, _, setting, batch, target = problem
    z = np.random.default_rng(1).standard_normal((V + 1, V)) * 2
    want_value, want_grad = exact_value_and_grad(
        name, eta, torch.from_numpy(z.copy()), batch, setting
    )
    value, grad, q = ex.value_and_grad(name, eta, z.copy(), target)
    assert value == pytest.approx(want_value, rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(grad, want_grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(q, torch.softmax(torch.from_numpy(z), -1).numpy(), rtol=1e-12)
    # without the gradient: the same value
    again, none, _ = ex.value_and_grad(name, eta, z.copy(), target, need_grad=False)
    assert none is None and again == pytest.approx(value, rel=1e-14)


@pytest.mark.parametrize("eta", [0.9, 0.5, 0.1])
def test_js_equals_pytorch_autograd_with_the_same_draws(problem, eta):
    _, _, setting, batch, target = problem
    model = torch_model(3)
    z = model.transition_logits().detach().clone().requires_grad_(True)
    loss, want_value = _js(
        eta, model, F.log_softmax(z, -1), batch, setting, np.random.default_rng(5)
    )
    loss.backward()
    value, grad, _ = ex.value_and_grad(
        "js", eta, z.detach().numpy().copy(), target, True, np.random.default_rng(5), 50
    )
    assert value == pytest.approx(want_value, rel=1e-12)
    assert np.abs(grad).max() > 1e-4  # a real gradient, not zeros
    np.testing.assert_allclose(grad, z.grad.numpy(), rtol=1e-8, atol=1e-14)
    with pytest.raises(ValueError, match="rng"):
        ex.value_and_grad("js", eta, z.detach().numpy().copy(), target)


def test_network_forward_and_backward_equal_autograd():
    model = torch_model(4)
    p = params_of(model)
    z = model.transition_logits()
    g = np.random.default_rng(2).standard_normal(tuple(z.shape))
    z.backward(torch.from_numpy(g))
    mine, cache = ex.forward(p, 0.1, None)  # no rng: eval mode, no dropout
    np.testing.assert_allclose(mine, z.detach().numpy(), rtol=1e-12, atol=1e-14)
    flat = ex.backward(p, cache, g)
    sizes = np.cumsum([a.size for a in p.arrays()])[:-1]
    grads = [x.reshape(a.shape) for x, a in zip(np.split(flat, sizes), p.arrays(), strict=True)]
    want = [
        model.embedding.weight.grad,
        model.mlp[0].weight.grad,
        model.mlp[0].bias.grad,
        model.mlp[3].weight.grad,
        model.mlp[3].bias.grad,
    ]
    for got, w in zip(grads, want, strict=True):
        np.testing.assert_allclose(got, w.numpy(), rtol=1e-10, atol=1e-12)


def test_dropout_zeroes_the_rate_and_keeps_the_mean():
    p = ex.init_params(V, 50, np.random.default_rng(0), np.float64)
    _, cache = ex.forward(p, 0.25, np.random.default_rng(1))
    keep = cache.keep
    assert keep is not None
    assert abs((keep == 0).mean() - 0.25) < 0.02
    np.testing.assert_allclose(keep[keep > 0], 1 / 0.75)
    # the gradient flows only through kept units (finite differences on one kept weight)
    g = np.random.default_rng(3).standard_normal((V + 1, V))
    d = p.emb.size
    d_w1 = ex.backward(p, cache, g)[d : d + p.w1.size].reshape(p.w1.shape)
    eps = 1e-6
    for i, j in [(0, 0), (3, 7)]:
        pre = p.emb @ p.w1.T + p.b1
        h = np.maximum(pre, 0) * keep
        base = float(((h @ p.w2.T + p.b2) * g).sum())
        p.w1[i, j] += eps
        h2 = np.maximum(p.emb @ p.w1.T + p.b1, 0) * keep
        p.w1[i, j] -= eps
        numeric = (float(((h2 @ p.w2.T + p.b2) * g).sum()) - base) / eps
        assert numeric == pytest.approx(d_w1[i, j], rel=1e-4, abs=1e-6)


def test_params_are_views_of_one_vector():
    p = ex.init_params(V, 8, np.random.default_rng(0), np.float32)
    assert p.flat.size == sum(a.size for a in p.arrays())
    p.flat[:] = 0.0
    assert all(float(np.abs(a).sum()) == 0.0 for a in p.arrays())
    assert p.w2.shape == (V, 8) and p.emb.shape == (V + 1, 8)


def test_adam_equals_torch_adam():
    rng = np.random.default_rng(0)
    start = [rng.standard_normal(s) for s in [(4, 3), (3,)]]
    tparams = [torch.tensor(x.copy(), requires_grad=True) for x in start]
    topt = torch.optim.Adam(tparams, lr=1e-2, weight_decay=1e-4)
    mine = ex.Adam(np.concatenate([x.ravel() for x in start]), 1e-2, 1e-4)
    for _ in range(7):
        grads = [rng.standard_normal(x.shape) for x in start]
        for t, g in zip(tparams, grads, strict=True):
            t.grad = torch.from_numpy(g.copy())
        topt.step()
        mine.step(np.concatenate([g.ravel() for g in grads]))
    want = np.concatenate([t.detach().numpy().ravel() for t in tparams])
    np.testing.assert_allclose(mine.param, want, rtol=1e-12, atol=1e-15)


def test_softmax_never_returns_subnormals_and_keeps_the_rows():
    z = np.array([[0.0, -50.0, -200.0, -1e4], [3.0, 2.0, 1.0, 0.0]], dtype=np.float32)
    q = np.empty_like(z)
    log_q = ex.softmax_in_place(z.copy(), q)
    assert np.all(q >= np.finfo(np.float32).tiny)  # no subnormal, no zero
    np.testing.assert_allclose(q.sum(1), 1.0, rtol=1e-6)
    want = torch.log_softmax(torch.from_numpy(z), -1).numpy()
    np.testing.assert_allclose(log_q, want, rtol=1e-6)  # log Q itself is not floored
    np.testing.assert_allclose(q[1], np.exp(want[1]), rtol=1e-6)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_a_chain_of_tiny_numbers_still_ends_in_its_closed_form_tail(backend):
    """A start vector of ~1e-24 (a Q that almost never leaves BOS for a token): its squares
    underflow in float32, which once made rho NaN and the chain run its whole length."""
    rng = np.random.default_rng(0)
    a = rng.dirichlet(np.ones(50), size=50) * 0.9  # every row sums to 0.9: x A shrinks by 0.9
    first = (rng.random(50) * 1e-24).astype(np.float32)
    exact = [first.astype(np.float64)]
    for _ in range(499):
        exact.append(exact[-1] @ a)
    want = np.sum(exact, 0)
    if backend == "numpy":
        got, state = ex.occupancy_forward(first, a.astype(np.float32), 500)
    else:
        from mixce.synthetic.objectives import occupancy_forward

        got, state = occupancy_forward(torch.from_numpy(first), torch.from_numpy(a).float(), 500)
        got = got.numpy()
    assert state.big_u.shape[0] < 100  # ended in the closed-form tail, not after 500 vectors
    assert state.rho == pytest.approx(0.9, rel=1e-3)
    np.testing.assert_allclose(got, want, rtol=1e-4)


@pytest.mark.parametrize(
    "objective,eta", [("forward_kl", 1.0), ("mixce", 0.5), ("mix_kl", 0.5), ("js", 0.5)]
)
def test_numpy_training_improves_reproducibly_and_is_what_train_q_runs(
    train_problem, objective, eta
):
    p, train, dev, cfg = train_problem
    # the run's own initial network (the same stream, default_rng([seed, 2]))
    untrained = ex.init_params(p.shape[1], cfg.hidden_size, np.random.default_rng([7, 2]), "f4")
    z, _ = ex.forward(untrained, 0.0, None)
    q = np.empty_like(z)
    ex.softmax_in_place(z, q)
    before = compare(q, p)
    result, log = ex.train(p, train, dev, objective, eta, 7, cfg, progress=False)
    assert result["avg_js"] < 0.7 * before["avg_js"], (result["avg_js"], before)
    assert result["dev_loss"] == min(r["dev_loss"] for r in log)
    assert result["steps"] == log[-1]["step"] <= cfg.max_steps
    again, log2 = train_q(p, train, dev, objective, eta, 7, cfg, progress=False)
    result.pop("seconds")
    again.pop("seconds")
    assert again == result and log2 == log  # train_q dispatches here, bit for bit
    other, _ = ex.train(p, train, dev, objective, eta, 8, cfg, progress=False)
    assert other["avg_js"] != result["avg_js"]  # the seed matters


def test_numpy_and_torch_backends_reach_the_same_quality(train_problem):
    p, train, dev, cfg = train_problem
    cfg = dataclasses.replace(cfg, max_steps=400, dtype="float64")
    got = {
        backend: np.mean(
            [
                train_q(
                    p,
                    train,
                    dev,
                    "mixce_star",
                    0.5,
                    seed,
                    dataclasses.replace(cfg, cpu_backend=backend),
                    progress=False,
                )[0]["avg_js"]
                for seed in (1, 2, 3)
            ]
        )
        for backend in ("numpy", "torch")
    }
    assert got["numpy"] == pytest.approx(got["torch"], rel=0.25), got


def test_unknown_cpu_backend_and_objective_are_named(train_problem):
    p, train, dev, cfg = train_problem
    with pytest.raises(ValueError, match="synthetic.train.exact.cpu_backend"):
        train_q(p, train, dev, "mixce", 0.5, 7, dataclasses.replace(cfg, cpu_backend="jax"))
    with pytest.raises(KeyError, match="known are"):
        ex.train(p, train, dev, "nope", 0.5, 7, cfg, progress=False)
    with pytest.raises(ValueError, match="synthetic.train.dtype"):
        ex.train(p, train, dev, "mixce", 0.5, 7, dataclasses.replace(cfg, dtype="f16"))


def test_cpu_backend_reaches_the_job_from_the_config():
    config = {
        "synthetic": {
            "train": {
                "estimator": "exact",
                "device": "cpu",
                "dtype": "float32",
                "weight_decay": 1e-4,
                "log_eps": 1e-30,
                "patience": 5,
                "exact": {"lr": 0.01, "max_steps": 10, "eval_every": 5},
            },
            "model": {"hidden_size": 8, "dropout": 0.1},
            "data": {"max_length": 30},
        }
    }
    assert train_settings(config, "mixce")["cpu_backend"] == "numpy"  # the default
    config["synthetic"]["train"]["exact"]["cpu_backend"] = "torch"
    cfg = train_config(train_settings(config, "mixce"))
    assert cfg.cpu_backend == "torch" and not cfg.uses_numpy()
    assert TrainConfig(estimator="gumbel").uses_numpy() is False


def test_a_numpy_training_job_never_imports_torch(tmp_path):
    out_file = str(tmp_path / "out.json")
    code = f"""
import json, sys
import numpy as np
from mixce.synthetic.data import chain_matrix, sample_sequences
from mixce.synthetic.pipeline import train_config, train_seeds
from mixce.synthetic.target import random_target, uniform_start
chain = chain_matrix(random_target(5, 0.5, 0.5, np.random.default_rng(0)), uniform_start(5))
rng = np.random.default_rng(1)
runs = [(7, chain, sample_sequences(chain, 200, 20, rng), sample_sequences(chain, 50, 20, rng))]
cfg = train_config({{"max_steps": 20, "eval_every": 10, "max_length": 20, "hidden_size": 8}})
results, _ = train_seeds(runs, "mix_kl", 0.5, cfg, init="random50", vocab_size=5, progress=False)
out = {{"torch": "torch" in sys.modules, "steps": results[0]["steps"]}}
json.dump(out, open({out_file!r}, "w"))
"""
    subprocess.run([sys.executable, "-c", code], check=True)
    out = json.loads((tmp_path / "out.json").read_text())
    assert out == {"torch": False, "steps": 20}


# --------------------------------------------------------------------------------------------
# protocol points synthetic_js_clamp and synthetic_forced_eos under official: both backends
# --------------------------------------------------------------------------------------------

SHORT = 8  # max length: many data sequences end in a forced EOS


@pytest.fixture(scope="module")
def official_problem():
    """P with official zeroing; data of max length 8, its forced EOS counted."""
    rng = np.random.default_rng(0)
    m = random_target(V, 0.5, 0.5, rng, zeroing="official")
    chain = chain_matrix(m, uniform_start(V))
    seqs = sample_sequences(chain, 300, SHORT, rng)
    assert 0.05 < seqs.forced.mean() < 0.95
    log_p = np.log(chain + 1e-30)
    setting = Setting(torch.from_numpy(log_p), SHORT, "exact", 1.0, 50, js_clamp=30.0)
    batch = make_batch(seqs, log_p, torch.float64, True, count_forced=True)
    target = ex.make_target(log_p, seqs, SHORT, np.float64, True, count_forced=True)
    return seqs, log_p, setting, batch, target


@pytest.mark.parametrize("name", ["forward_kl", "mix_kl", "mixce_star", "mixce"])
def test_counted_forced_eos_value_and_gradient_equal_the_pytorch_ones(official_problem, name):
    seqs, log_p, setting, batch, target = official_problem
    z = np.random.default_rng(1).standard_normal((V + 1, V)) * 2
    want_value, want_grad = exact_value_and_grad(
        name, 0.5, torch.from_numpy(z.copy()), batch, setting
    )
    value, grad, _ = ex.value_and_grad(name, 0.5, z.copy(), target)
    assert value == pytest.approx(want_value, rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(grad, want_grad.numpy(), rtol=1e-9, atol=1e-12)
    # and the counted forced EOS moves the data term
    clean = ex.make_target(log_p, seqs, SHORT, np.float64, True)
    assert ex.value_and_grad(name, 0.5, z.copy(), clean)[0] != pytest.approx(value, rel=1e-6)


@pytest.mark.parametrize("eta", [0.9, 0.5, 0.1])
def test_clamped_js_equals_pytorch_autograd_with_the_same_draws(official_problem, eta):
    _, _, setting, batch, target = official_problem
    model = torch_model(3)
    z = model.transition_logits().detach().clone().requires_grad_(True)
    loss, want_value = _js(
        eta, model, F.log_softmax(z, -1), batch, setting, np.random.default_rng(5)
    )
    loss.backward()
    args = ("js", eta, z.detach().numpy().copy(), target, True)
    value, grad, _ = ex.value_and_grad(*args, np.random.default_rng(5), 50, js_clamp=30.0)
    assert value == pytest.approx(want_value, rel=1e-12)
    assert np.abs(grad).max() > 1e-4
    np.testing.assert_allclose(grad, z.grad.numpy(), rtol=1e-8, atol=1e-14)
    # the clamp binds here: Q's draws go through P's zeros (log P ~ -69 per zero)
    unclamped, _, _ = ex.value_and_grad(*args, np.random.default_rng(5), 50)
    assert value > unclamped + 1.0


@pytest.mark.parametrize("objective", ["js", "mixce"])
def test_official_training_on_both_backends(train_problem, objective):
    """Both backends train under the official points: reproducible, and not the clean run."""
    p, _, _, cfg = train_problem
    clean = dataclasses.replace(cfg, max_steps=20, max_length=6, js_samples=100)  # forced EOS
    official = dataclasses.replace(clean, js_clamp="official", forced_eos="official")
    train6, dev6 = (sample_sequences(p, n, 6, np.random.default_rng(n)) for n in (300, 100))
    for backend in ("numpy", "torch"):
        runs = [
            train_q(p, train6, dev6, objective, 0.5, 7, c, progress=False)[0]
            for c in (
                dataclasses.replace(s, cpu_backend=backend) for s in (official, official, clean)
            )
        ]
        for r in runs:
            r.pop("seconds")
        assert runs[0] == runs[1] and math.isfinite(runs[0]["avg_js"])
        assert runs[0]["dev_loss"] != runs[2]["dev_loss"]


def test_gumbel_js_trains_with_the_clamp(train_problem):
    p, train, dev, cfg = train_problem
    gumbel = dataclasses.replace(
        cfg, estimator="gumbel", batch_size=100, max_epochs=1, js_samples=20, js_clamp="official"
    )
    result, log = train_q(p, train, dev, "js", 0.5, 7, gumbel, progress=False)
    assert math.isfinite(result["dev_loss"]) and len(log) == 1


def syn_config(**top) -> dict:
    return {
        **top,
        "synthetic": {
            "train": {
                "estimator": "exact",
                "device": "cpu",
                "dtype": "float32",
                "weight_decay": 1e-4,
                "log_eps": 1e-30,
                "patience": 5,
                "js_samples": 100,
                "exact": {"lr": 0.01, "max_steps": 10, "eval_every": 5},
            },
            "model": {"hidden_size": 8, "dropout": 0.1},
            "data": {"max_length": 30},
        },
    }


def test_protocol_points_reach_training_from_the_config():
    official = syn_config()  # protocol defaults to official
    js = train_settings(official, "js")
    assert js["js_clamp"] == "official" and js["forced_eos"] == "official"
    assert train_config(js).js_clamp_limit() == 30.0 and train_config(js).counts_forced_eos()
    # only JS reads the clamp; reverse KL reads no data, so not the forced EOS either
    assert "js_clamp" not in train_settings(official, "mixce")
    assert train_settings(official, "mixce")["forced_eos"] == "official"
    assert "forced_eos" not in train_settings(official, "reverse_kl")
    clean = train_config(train_settings(syn_config(protocol="clean"), "js"))
    assert clean.js_clamp_limit() is None and not clean.counts_forced_eos()
    one = syn_config(protocol_points={"synthetic_js_clamp": "clean"})
    assert train_settings(one, "js")["js_clamp"] == "clean"
    assert train_settings(one, "js")["forced_eos"] == "official"
    # TrainConfig's own defaults are clean; a wrong value is named
    assert TrainConfig().js_clamp_limit() is None and not TrainConfig().counts_forced_eos()
    with pytest.raises(ValueError, match="TrainConfig.forced_eos"):
        TrainConfig(forced_eos="paper").counts_forced_eos()


def test_make_target_passes_the_zeroing_setting():
    spec = {"kind": "random", "zero_fraction": 0.5}
    official, meta = make_target(spec, 12, 7, 0.5, zeroing="official")
    clean, clean_meta = make_target(spec, 12, 7, 0.5)
    assert meta["zeroing"] == "official" and clean_meta["zeroing"] == "clean"
    assert np.array_equal(official, make_target(spec, 12, 7, 0.5, zeroing="official")[0])
    assert clean_meta["zero_fraction_min"] == clean_meta["zero_fraction_max"]  # 5 of 11
    assert meta["zero_fraction_min"] < meta["zero_fraction_max"]  # per entry: rows vary
    assert not np.array_equal(official, clean)
