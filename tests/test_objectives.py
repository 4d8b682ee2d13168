"""GPT-2-style token objectives (mixce.objectives): MLE, MixCE and the registry."""

from __future__ import annotations

import pytest
import torch

from mixce import objectives as obj
from mixce.objectives import get_objective, mixce, mixce_weight, mle, register, token_logprobs

V = 11


def _batch(seed: int, batch: int = 3, length: int = 7, dtype=torch.float32):
    """Random logits (B, T, V), targets (B, T) and a padding mask with a ragged right edge."""
    g = torch.Generator().manual_seed(seed)
    logits = 3.0 * torch.randn(batch, length, V, generator=g, dtype=dtype)
    targets = torch.randint(0, V, (batch, length), generator=g)
    lengths = torch.tensor([length, length - 3, 2])[:batch]
    mask = torch.arange(length)[None, :] < lengths[:, None]
    return logits, targets, mask


def _grad(fn, logits, targets, mask, **hyper):
    x = logits.clone().requires_grad_(True)
    loss = fn(x, targets, mask, **hyper)
    (g,) = torch.autograd.grad(loss, x)
    return loss.detach(), g


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mixce_eta_one_is_mle_exactly(seed):
    logits, targets, mask = _batch(seed)
    loss_mle, grad_mle = _grad(mle, logits, targets, mask)
    loss_mix, grad_mix = _grad(mixce, logits, targets, mask, eta=1.0)
    assert torch.equal(loss_mix, loss_mle)
    assert torch.equal(grad_mix, grad_mle)


def test_mle_is_masked_mean_nll():
    logits, targets, mask = _batch(3, dtype=torch.float64)
    logp = torch.log_softmax(logits, -1).gather(-1, targets[..., None])[..., 0]
    want = -(logp[mask]).mean()
    torch.testing.assert_close(mle(logits, targets, mask).double(), want, rtol=1e-6, atol=0)


@pytest.mark.parametrize("eta", [0.0, 0.1, 0.5, 0.99])
def test_mixce_gradient_is_weighted_mle_gradient_single_token(eta):
    g = torch.Generator().manual_seed(int(eta * 100))
    for _ in range(10):
        logits = 2.0 * torch.randn(1, V, generator=g)
        target = torch.randint(0, V, (1,), generator=g)
        mask = torch.ones(1, dtype=torch.bool)
        _, grad_mle = _grad(mle, logits, target, mask)
        _, grad_mix = _grad(mixce, logits, target, mask, eta=eta)
        q = torch.softmax(logits, -1)[0, target[0]]
        weight = eta + (1.0 - eta) * q
        t = int(target[0])
        # the target logit: d/dz_t of -log q_t is q_t - 1
        torch.testing.assert_close(grad_mle[0, t], q - 1.0, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(grad_mix[0, t], weight * grad_mle[0, t], rtol=1e-5, atol=1e-7)
        # and every other logit gets the same factor (the weight is a constant)
        torch.testing.assert_close(grad_mix, weight * grad_mle, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("eta", [0.0, 0.3, 0.7])
def test_mixce_gradient_is_weighted_mle_gradient_per_token_in_batch(eta):
    logits, targets, mask = _batch(4)
    loss_mle, grad_mle = _grad(mle, logits, targets, mask)
    loss_mix, grad_mix = _grad(mixce, logits, targets, mask, eta=eta)
    q = token_logprobs(logits, targets).exp()
    weight = eta + (1.0 - eta) * q
    torch.testing.assert_close(grad_mix, weight[..., None] * grad_mle, rtol=1e-5, atol=1e-8)
    nll = -token_logprobs(logits, targets)
    torch.testing.assert_close(loss_mix, (weight * nll)[mask].mean(), rtol=1e-6, atol=0)
    assert loss_mix <= loss_mle + 1e-6  # weights are <= 1


@pytest.mark.parametrize("name,hyper", [("mle", {}), ("mixce", {"eta": 0.3})])
def test_masked_positions_do_not_contribute(name, hyper):
    fn = get_objective(name)
    logits, targets, mask = _batch(5)
    loss, grad = _grad(fn, logits, targets, mask, **hyper)
    assert torch.count_nonzero(grad[~mask]) == 0
    assert torch.count_nonzero(grad[mask].abs().sum(-1)) == int(mask.sum())
    # garbage at the padded positions changes nothing
    logits2, targets2 = logits.clone(), targets.clone()
    logits2[~mask] = 1e4 * torch.randn(int((~mask).sum()), V, dtype=logits.dtype)
    targets2[~mask] = (targets2[~mask] + 1) % V
    loss2, grad2 = _grad(fn, logits2, targets2, mask, **hyper)
    assert torch.equal(loss2, loss)
    assert torch.equal(grad2[mask], grad[mask])
    # the mean is over real tokens only: the same tokens without padding give the same loss
    flat = fn(
        logits[mask][None],
        targets[mask][None],
        torch.ones_like(targets[mask][None]).bool(),
        **hyper,
    )
    torch.testing.assert_close(flat, loss, rtol=1e-6, atol=0)


def test_registry_lookup():
    assert get_objective("mixce") is mixce
    assert get_objective("mle") is mle
    assert {"mle", "mixce"} <= set(obj.OBJECTIVES)


def test_registry_unknown_name_lists_known():
    with pytest.raises(KeyError) as err:
        get_objective("no-such-objective")
    msg = str(err.value)
    assert "no-such-objective" in msg
    for name in obj.OBJECTIVES:
        assert name in msg


def test_registry_duplicate_raises():
    before = dict(obj.OBJECTIVES)
    with pytest.raises(ValueError, match="mixce"):
        register("mixce")(lambda *a, **k: None)
    assert obj.OBJECTIVES == before
    name = "_test_objective_tmp"
    try:

        @register(name)
        def tmp(logits, targets, mask, **_):
            return logits.sum()

        assert get_objective(name) is tmp
        with pytest.raises(ValueError):
            register(name)(lambda *a, **k: None)
        assert get_objective(name) is tmp
    finally:
        obj.OBJECTIVES.pop(name, None)
    assert obj.OBJECTIVES == before


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_mixce_weight_detaches(eta):
    logq = torch.log(torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)).requires_grad_(True)
    w = mixce_weight(logq, eta)
    assert not w.requires_grad
    torch.testing.assert_close(w, eta + (1 - eta) * logq.detach().exp())
    (g,) = torch.autograd.grad((w * logq).sum(), logq)
    torch.testing.assert_close(g, w)  # no term from d w / d logq
