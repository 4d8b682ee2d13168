"""GPT-2-style token objectives (mixce.objectives): MLE, MixCE, TaiLr, loss truncation,
unlikelihood, truncated CE, LFD, and the registry."""

from __future__ import annotations

import math

import pytest
import torch

from mixce import objectives as obj
from mixce.objectives import (
    check_hyper,
    get_objective,
    get_spec,
    lfd,
    loss_truncation,
    mixce,
    mixce_weight,
    mle,
    objective_names,
    previous_context_candidates,
    register,
    tailr,
    token_logprobs,
    truncated_ce,
    unlikelihood,
)

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


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_mixce_weight_detaches(eta):
    logq = torch.log(torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)).requires_grad_(True)
    w = mixce_weight(logq, eta)
    assert not w.requires_grad
    torch.testing.assert_close(w, eta + (1 - eta) * logq.detach().exp())
    (g,) = torch.autograd.grad((w * logq).sum(), logq)
    torch.testing.assert_close(g, w)  # no term from d w / d logq


# --------------------------------------------------------------------------- registry


def test_registry_lookup_and_specs():
    assert get_objective("mixce") is mixce
    assert get_objective("mle") is mle
    assert objective_names() == sorted(
        ["mle", "mixce", "tailr", "loss_truncation", "unlikelihood", "truncated_ce", "lfd"]
    )
    spec = get_spec("lfd")
    assert spec.fn is lfd and spec.needs_reference and not spec.stateful
    assert dict(spec.hyper) == {"mle_weight": 0.0}
    spec = get_spec("loss_truncation")
    assert spec.stateful and not spec.needs_reference
    assert dict(spec.hyper) == {"c": 0.4, "buffer": 10000.0}
    assert not any(get_spec(n).needs_reference for n in ("mle", "mixce", "tailr"))
    assert dict(get_spec("mle").hyper) == {}


def test_registry_unknown_name_lists_known():
    for lookup in (get_objective, get_spec):
        with pytest.raises(KeyError) as err:
            lookup("no-such-objective")
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

        @register(name, hyper={"k": 2.0}, stateful=True)
        def tmp(logits, targets, mask, **_):
            return logits.sum()

        assert get_objective(name) is tmp
        assert get_spec(name).stateful and get_spec(name).hyper == {"k": 2.0}
        with pytest.raises(ValueError):
            register(name)(lambda *a, **k: None)
        assert get_objective(name) is tmp
    finally:
        obj.OBJECTIVES.pop(name, None)
    assert obj.OBJECTIVES == before


def test_check_hyper_fills_defaults_and_names_bad_keys():
    assert check_hyper("mle", {}) == {}
    assert check_hyper("mixce", {"eta": 1}) == {"eta": 1.0}
    assert check_hyper("tailr", {"gamma": 0.5}) == {"gamma": 0.5, "w_min": 0.0}
    assert check_hyper("loss_truncation", {"c": 0.2}) == {"buffer": 10000.0, "c": 0.2}
    assert check_hyper("unlikelihood", {}) == {"alpha": 1.0}
    assert check_hyper("truncated_ce", {}) == {"keep": 0.5}
    assert check_hyper("lfd", {"mle_weight": 1}) == {"mle_weight": 1.0}
    assert list(check_hyper("loss_truncation", {})) == ["buffer", "c"]  # sorted keys
    with pytest.raises(ValueError, match=r"objective 'mle' takes no hyper-parameter 'eta'"):
        check_hyper("mle", {"eta": 1.0})
    with pytest.raises(ValueError, match=r"'tailr' takes no hyper-parameter 'gama'.*gamma"):
        check_hyper("tailr", {"gama": 0.5})
    with pytest.raises(ValueError, match=r"objective 'mixce' needs hyper-parameter 'eta'"):
        check_hyper("mixce", {})
    with pytest.raises(ValueError, match=r"objective 'tailr' needs hyper-parameter 'gamma'"):
        check_hyper("tailr", {"w_min": 0.1})
    with pytest.raises(KeyError, match="unknown objective"):
        check_hyper("nope", {})


# --------------------------------------------------------------------------- helpers


def _call(name, logits, targets, mask, reference=None, state=None, **hyper):
    """Call objective ``name`` with its defaults, a reference (LFD) and a state if it needs."""
    spec = get_spec(name)
    extra = {}
    if spec.needs_reference:
        extra["reference_logits"] = torch.zeros_like(logits) if reference is None else reference
    if spec.stateful:
        extra["state"] = state
    return spec.fn(logits, targets, mask, **check_hyper(name, hyper), **extra)


def _logsoftmax(row):
    """log softmax of a list of floats, in plain python."""
    top = max(row)
    log_z = top + math.log(sum(math.exp(z - top) for z in row))
    return [z - log_z for z in row]


def _logits_for_nll(nll: float, vocab: int = 3) -> list[float]:
    """Logits whose target (token 0) has NLL ``nll``: z_0 = 0, the others log((e^nll-1)/(V-1))."""
    other = math.log((math.exp(nll) - 1.0) / (vocab - 1))
    return [0.0] + [other] * (vocab - 1)


NEW = [
    ("tailr", {"gamma": 0.4, "w_min": 0.1}),
    ("loss_truncation", {}),
    ("unlikelihood", {}),
    ("truncated_ce", {"keep": 0.6}),
    ("lfd", {"mle_weight": 0.5}),
]


# --------------------------------------------------------------------------- TaiLr


def test_tailr_by_hand():
    # q = (1/8, 2/8, 5/8) in every position; targets 0 and 2
    row = [0.0, math.log(2.0), math.log(5.0)]
    logits = torch.tensor([[row, row]], dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([[0, 2]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    q = [1 / 8, 2 / 8, 5 / 8]
    # gamma = 0.5: w = q / (0.5 + 0.5 q): 2/9 for q = 1/8, 10/13 for q = 5/8
    w0, w2 = (1 / 8) / (0.5 + 1 / 16), (5 / 8) / (0.5 + 5 / 16)
    assert (w0, w2) == pytest.approx((2 / 9, 10 / 13))
    want = (-w0 * math.log(q[0]) - w2 * math.log(q[2])) / 2
    loss = tailr(logits, targets, mask, gamma=0.5, w_min=0.0)
    assert float(loss.detach()) == pytest.approx(want, rel=1e-12)
    # the weight is a constant: d/dz_j of -w log q_x is w (q_j - [j == x]), over 2 tokens
    (grad,) = torch.autograd.grad(loss, logits)
    for pos, (x, w) in enumerate([(0, w0), (2, w2)]):
        want_grad = [w * (q[j] - (j == x)) / 2 for j in range(3)]
        assert grad[0, pos].tolist() == pytest.approx(want_grad, rel=1e-12)
    # w_min = 0.5 lifts 2/9 to 0.5 and leaves 10/13
    floor = tailr(logits, targets, mask, gamma=0.5, w_min=0.5)
    assert float(floor.detach()) == pytest.approx((-0.5 * math.log(q[0]) - w2 * math.log(q[2])) / 2)
    with pytest.raises(ValueError, match="gamma"):
        tailr(logits, targets, mask, gamma=1.5, w_min=0.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_tailr_limits_are_mle_and_mixce_eta0(seed):
    logits, targets, mask = _batch(seed)
    loss_mle, grad_mle = _grad(mle, logits, targets, mask)
    loss_t0, grad_t0 = _grad(tailr, logits, targets, mask, gamma=0.0, w_min=0.0)
    assert torch.equal(loss_t0, loss_mle) and torch.equal(grad_t0, grad_mle)
    loss_mix, grad_mix = _grad(mixce, logits, targets, mask, eta=0.0)
    loss_t1, grad_t1 = _grad(tailr, logits, targets, mask, gamma=1.0, w_min=0.0)
    assert torch.equal(loss_t1, loss_mix) and torch.equal(grad_t1, grad_mix)


def test_tailr_underflowing_probability_is_safe():
    # q of the target underflows float32 (logit gap 200): gamma = 0 still gives weight 1
    logits = torch.tensor([[[0.0, 200.0, 0.0]]])
    targets, mask = torch.tensor([[0]]), torch.ones(1, 1, dtype=torch.bool)
    assert float(logits.softmax(-1)[0, 0, 0]) == 0.0
    for gamma in (0.0, 1e-8, 0.5, 1.0):
        loss, grad = _grad(tailr, logits, targets, mask, gamma=gamma, w_min=0.0)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()
    loss, _ = _grad(tailr, logits, targets, mask, gamma=0.0, w_min=0.0)
    assert float(loss) == pytest.approx(200.0, rel=1e-6)


# --------------------------------------------------------------------------- loss truncation


def _rows(nlls_and_lengths, width):
    """A batch whose row i has lengths[i] real tokens, each with NLL nlls[i] (target 0)."""
    logits = torch.zeros(len(nlls_and_lengths), width, 3, dtype=torch.float64)
    mask = torch.zeros(len(nlls_and_lengths), width, dtype=torch.bool)
    for i, (nll, length) in enumerate(nlls_and_lengths):
        logits[i, :length] = torch.tensor(_logits_for_nll(nll), dtype=torch.float64)
        mask[i, :length] = True
    return logits, torch.zeros(len(nlls_and_lengths), width, dtype=torch.long), mask


def test_loss_truncation_by_hand():
    state: dict = {}
    hyper = {"c": 0.5, "buffer": 4.0}
    # cold (2 of 4 losses seen): nothing dropped, the plain token-mean NLL
    logits, targets, mask = _rows([(1.0, 2), (2.0, 3)], 3)
    loss = loss_truncation(logits, targets, mask, state=state, **hyper)
    assert float(loss) == pytest.approx((1.0 * 2 + 2.0 * 3) / 5)
    assert int(state["seen"]) == 2
    assert state["losses"].tolist() == pytest.approx([1.0, 2.0, 0.0, 0.0])
    # warm now: buffer {1, 2, 1.5, 3.5}, median 1.75; the 3.5 row (3 tokens) is dropped
    logits, targets, mask = _rows([(1.5, 2), (3.5, 3)], 3)
    x = logits.clone().requires_grad_(True)
    loss = loss_truncation(x, targets, mask, state=state, **hyper)
    assert float(loss.detach()) == pytest.approx(1.5 * 2 / 5)
    (grad,) = torch.autograd.grad(loss, x)
    assert torch.count_nonzero(grad[1]) == 0 and torch.count_nonzero(grad[0, :2]) > 0
    assert int(state["seen"]) == 4
    assert state["losses"].tolist() == pytest.approx([1.0, 2.0, 1.5, 3.5])
    # the ring wraps: slots 0 and 1 are overwritten; buffer {0.5, 4, 1.5, 3.5}: cut 2.5
    logits, targets, mask = _rows([(0.5, 1), (4.0, 2)], 2)
    loss = loss_truncation(logits, targets, mask, state=state, **hyper)
    assert state["losses"].tolist() == pytest.approx([0.5, 4.0, 1.5, 3.5])
    assert float(loss) == pytest.approx(0.5 / 3)
    # evaluation: no dropping and no update
    before = {k: v.clone() for k, v in state.items()}
    assert float(loss_truncation(logits, targets, mask, state=None, **hyper)) == pytest.approx(
        (0.5 + 4.0 * 2) / 3
    )
    assert all(torch.equal(before[k], state[k]) for k in state)


def test_loss_truncation_drops_c_share_once_warm_and_nothing_before():
    state: dict = {}
    nlls = [float(k) for k in range(1, 11)]  # ten rows, one token each, NLL 1 .. 10
    logits, targets, mask = _rows([(v, 1) for v in nlls], 1)
    plain = sum(nlls) / 10
    # buffer 20: the first call (10 losses) is cold
    loss = loss_truncation(logits, targets, mask, c=0.4, buffer=20.0, state=state)
    assert float(loss) == pytest.approx(plain)
    # second call fills it: 0.6-quantile of {1..10, 1..10} is 6.4 -> keep 1..6, drop 40%
    loss = loss_truncation(logits, targets, mask, c=0.4, buffer=20.0, state=state)
    assert float(loss) == pytest.approx(sum(range(1, 7)) / 10)
    # more rows than slots: only the last `buffer` losses are kept, and it is warm at once
    small: dict = {}
    loss = loss_truncation(logits, targets, mask, c=0.4, buffer=5.0, state=small)
    assert small["losses"].tolist() == pytest.approx([6.0, 7.0, 8.0, 9.0, 10.0])
    assert int(small["seen"]) == 10
    # 0.6-quantile of 6..10 is 8.4: rows 1..8 kept
    assert float(loss) == pytest.approx(sum(range(1, 9)) / 10)
    with pytest.raises(ValueError, match="buffer"):
        loss_truncation(logits, targets, mask, c=0.4, buffer=2.5, state={})
    with pytest.raises(ValueError, match="c must"):
        loss_truncation(logits, targets, mask, c=1.0, buffer=5.0, state={})


def test_loss_truncation_cold_or_eval_is_mle():
    logits, targets, mask = _batch(6)
    loss_mle, grad_mle = _grad(mle, logits, targets, mask)
    for state in (None, {}):
        loss, grad = _grad(loss_truncation, logits, targets, mask, c=0.4, buffer=100.0, state=state)
        torch.testing.assert_close(loss, loss_mle, rtol=1e-6, atol=0)
        torch.testing.assert_close(grad, grad_mle, rtol=1e-6, atol=1e-9)


# --------------------------------------------------------------------------- unlikelihood


def test_unlikelihood_candidates_enumerated():
    targets = torch.tensor([[0, 1, 0, 2], [2, 1, 1, 0]])
    mask = torch.tensor([[True, True, True, True], [True, False, True, True]])
    cand = previous_context_candidates(targets, mask, 3)
    sets = [[{v for v in range(3) if cand[b, t, v]} for t in range(4)] for b in range(2)]
    assert sets[0] == [set(), {0}, {1}, {0, 1}]
    # row 1: the masked target (position 1) is no candidate; x_t itself never is
    assert sets[1] == [set(), {2}, {2}, {2, 1}]


def test_unlikelihood_by_hand():
    rows = [[0.5, -1.0, 2.0], [1.0, 0.0, -0.5], [0.0, 3.0, 1.0], [-2.0, 0.5, 0.5]]
    targets = [0, 1, 0, 2]
    candidates = [set(), {0}, {1}, {0, 1}]
    alpha = 0.7
    want = 0.0
    for row, x, cands in zip(rows, targets, candidates, strict=True):
        logp = _logsoftmax(row)
        want += -logp[x] + alpha * sum(-math.log(1.0 - math.exp(logp[c])) for c in cands)
    want /= 4
    logits = torch.tensor([rows], dtype=torch.float64)
    mask = torch.ones(1, 4, dtype=torch.bool)
    got = unlikelihood(logits, torch.tensor([targets]), mask, alpha=alpha)
    assert float(got) == pytest.approx(want, rel=1e-12)
    # alpha = 0 is MLE
    zero = unlikelihood(logits, torch.tensor([targets]), mask, alpha=0.0)
    torch.testing.assert_close(zero, mle(logits, torch.tensor([targets]), mask))


def test_unlikelihood_clamps_a_certain_candidate():
    # position 1 puts all mass on token 0, an earlier target: -log(1 - p) is clamped at 1e-5
    logits = torch.tensor([[[0.0, 0.0], [200.0, 0.0]]])
    targets, mask = torch.tensor([[0, 1]]), torch.ones(1, 2, dtype=torch.bool)
    loss, grad = _grad(unlikelihood, logits, targets, mask, alpha=1.0)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    assert float(loss) == pytest.approx((math.log(2) + 200.0 - math.log(1e-5)) / 2, rel=1e-5)


# --------------------------------------------------------------------------- truncated CE


def test_truncated_ce_keeps_the_lowest_nll_tokens():
    nlls = [[0.3, 2.0, 0.1], [1.5, 0.7, 9.0]]
    mask = torch.tensor([[True, True, True], [True, True, False]])
    logits = torch.tensor([[_logits_for_nll(v) for v in row] for row in nlls], dtype=torch.float64)
    targets = torch.zeros(2, 3, dtype=torch.long)
    # 5 real tokens (the 9.0 is padding); keep 0.5 -> ceil(2.5) = 3 tokens: 0.1, 0.3, 0.7
    loss, grad = _grad(truncated_ce, logits, targets, mask, keep=0.5)
    assert float(loss) == pytest.approx((0.1 + 0.3 + 0.7) / 3, rel=1e-12)
    touched = grad.abs().sum(-1) > 0
    assert touched.tolist() == [[True, False, True], [False, True, False]]
    assert float(truncated_ce(logits, targets, mask, keep=0.2)) == pytest.approx(0.1)
    full = truncated_ce(logits, targets, mask, keep=1.0)
    torch.testing.assert_close(full, mle(logits, targets, mask))
    with pytest.raises(ValueError, match="keep"):
        truncated_ce(logits, targets, mask, keep=0.0)


# --------------------------------------------------------------------------- LFD


def test_lfd_by_hand():
    main = [[1.0, -0.5, 0.2], [0.0, 2.0, -1.0]]
    ref = [[3.0, 0.0, 0.0], [-1.0, 0.5, 4.0]]
    targets = [0, 1]
    want_poe = want_nll = 0.0
    for z, r, x in zip(main, ref, targets, strict=True):
        combined = [a + b for a, b in zip(_logsoftmax(z), _logsoftmax(r), strict=True)]
        want_poe += -_logsoftmax(combined)[x] / 2
        want_nll += -_logsoftmax(z)[x] / 2
    logits = torch.tensor([main], dtype=torch.float64)
    reference = torch.tensor([ref], dtype=torch.float64, requires_grad=True)
    t, mask = torch.tensor([targets]), torch.ones(1, 2, dtype=torch.bool)
    got = lfd(logits, t, mask, mle_weight=0.0, reference_logits=reference)
    assert float(got) == pytest.approx(want_poe, rel=1e-12)
    got = lfd(logits, t, mask, mle_weight=0.5, reference_logits=reference)
    assert float(got) == pytest.approx(want_poe + 0.5 * want_nll, rel=1e-12)
    assert not got.requires_grad  # no gradient reaches the reference model


@pytest.mark.parametrize("seed", [0, 1])
def test_lfd_with_uniform_reference_is_mle(seed):
    logits, targets, mask = _batch(seed)
    loss_mle, grad_mle = _grad(mle, logits, targets, mask)
    uniform = torch.full_like(logits, 0.37)
    loss, grad = _grad(lfd, logits, targets, mask, mle_weight=0.0, reference_logits=uniform)
    torch.testing.assert_close(loss, loss_mle, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad, grad_mle, rtol=1e-5, atol=1e-7)
    loss, grad = _grad(lfd, logits, targets, mask, mle_weight=1.0, reference_logits=uniform)
    torch.testing.assert_close(loss, 2 * loss_mle, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad, 2 * grad_mle, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------- all new ones


@pytest.mark.parametrize("name,hyper", NEW)
def test_new_objectives_ignore_padding(name, hyper):
    logits, targets, mask = _batch(7)
    reference = 2.0 * torch.randn(logits.shape, generator=torch.Generator().manual_seed(1))
    x = logits.clone().requires_grad_(True)
    loss = _call(name, x, targets, mask, reference=reference, state={}, **hyper)
    (grad,) = torch.autograd.grad(loss, x)
    assert torch.count_nonzero(grad[~mask]) == 0
    logits2, targets2, reference2 = logits.clone(), targets.clone(), reference.clone()
    logits2[~mask] = 1e4 * torch.randn(int((~mask).sum()), V)
    reference2[~mask] = -1e4
    targets2[~mask] = (targets2[~mask] + 1) % V
    x2 = logits2.clone().requires_grad_(True)
    loss2 = _call(name, x2, targets2, mask, reference=reference2, state={}, **hyper)
    (grad2,) = torch.autograd.grad(loss2, x2)
    torch.testing.assert_close(loss2, loss, rtol=1e-6, atol=0)
    torch.testing.assert_close(grad2[mask], grad[mask], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name,hyper", NEW)
def test_new_objectives_in_bf16_compute_in_float32(name, hyper):
    logits, targets, mask = _batch(8)
    reference = torch.randn(logits.shape, generator=torch.Generator().manual_seed(2))
    low, ref_low = 10.0 * logits.bfloat16(), 10.0 * reference.bfloat16()
    loss = _call(name, low, targets, mask, reference=ref_low, state={}, **hyper)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    want = _call(name, low.float(), targets, mask, reference=ref_low.float(), state={}, **hyper)
    torch.testing.assert_close(loss, want, rtol=1e-6, atol=1e-6)
