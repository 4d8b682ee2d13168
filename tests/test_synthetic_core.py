"""Synthetic bigram core: target P, sampler, exact/Gumbel estimators, losses, metrics, training."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.spatial.distance import jensenshannon
from synthetic_reference import autograd_loss, compare, expected_sum, js_rows, occupancy

from mixce.objectives import mixce
from mixce.synthetic import objectives as so
from mixce.synthetic.data import (
    Sequences,
    chain_matrix,
    sample_sequences,
    sequence_logprob,
)
from mixce.synthetic.model import NeuralBigram
from mixce.synthetic.objectives import (
    Setting,
    count_loss,
    gumbel_rollout,
    log_mixture,
    objective_loss,
    sequence_logq,
)
from mixce.synthetic.target import check_target, random_target, real_text_target, uniform_start
from mixce.synthetic.train import make_batch, train_device, train_q

LOG_EPS = 1e-30


@pytest.fixture(autouse=True, scope="module")
def _float64():
    """float64 for every tensor made here; restored afterwards (other test files run after)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def p_chain(v: int, zero_fraction: float, seed: int) -> np.ndarray:
    """A random target as a (V + 1) x V chain matrix (uniform start)."""
    m = random_target(v, zero_fraction, 0.5, np.random.default_rng(seed))
    return chain_matrix(m, uniform_start(v))


def enumerate_sequences(chain: np.ndarray, max_length: int) -> list[tuple[tuple[int, ...], bool]]:
    """Every sequence with positive probability: (tokens, forced EOS)."""
    v = chain.shape[1]
    eos = v - 1
    out: list[tuple[tuple[int, ...], bool]] = []

    def rec(seq: list[int]) -> None:
        if seq[-1] == eos:
            out.append((tuple(seq), False))
        elif len(seq) == max_length - 1:
            out.append((tuple(seq) + (eos,), True))
        else:
            for b in range(v):
                if chain[seq[-1], b] > 0:
                    rec(seq + [b])

    for a in range(v):
        if chain[v, a] > 0:
            rec([a])
    return out


def counted_transitions(seq: tuple[int, ...], forced: bool, v: int) -> list[tuple[int, int]]:
    """(prev, next) of the drawn transitions of one sequence (BOS = v)."""
    pairs = list(zip((v,) + seq[:-1], seq, strict=True))
    return pairs[:-1] if forced else pairs


def brute_expected_sum(chain: torch.Tensor, per_step: torch.Tensor, max_length: int):
    """E[sum over drawn transitions of per_step] by enumeration; differentiable in both."""
    v = chain.shape[1]
    total = chain.new_zeros(())
    for seq, forced in enumerate_sequences(chain.detach().numpy(), max_length):
        pairs = counted_transitions(seq, forced, v)
        prev = torch.tensor([a for a, _ in pairs])
        nxt = torch.tensor([b for _, b in pairs])
        prob = chain[prev, nxt].prod()
        total = total + prob * per_step[prev, nxt].sum()
    return total


def brute_occupancy(chain: np.ndarray, max_length: int) -> np.ndarray:
    v = chain.shape[1]
    n = np.zeros(v + 1)
    for seq, forced in enumerate_sequences(chain, max_length):
        pairs = counted_transitions(seq, forced, v)
        prob = math.prod(chain[a, b] for a, b in pairs)
        for a, _ in pairs:
            n[a] += prob
    return n


def loop_expected_sum(chain: torch.Tensor, per_step: torch.Tensor, max_length: int):
    """The plain recursion u_{t+1} = u_t A, summed over token positions 1 .. max_length - 2."""
    v = chain.shape[1]
    a = chain[: v - 1, : v - 1]
    u = chain[v, : v - 1]
    n_tok = chain.new_zeros(v - 1)
    for _ in range(max_length - 2):
        n_tok = n_tok + u
        u = u @ a
    n = torch.cat([n_tok, chain.new_zeros(1), chain.new_ones(1)])
    return (n[:, None] * chain * per_step).sum()


def logits_with_eos(v: int, eos_prob: float, seed: int) -> torch.Tensor:
    """(V + 1) x V logits whose softmax gives every row P(EOS) = eos_prob."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(v + 1, v, generator=g)
    rest = torch.logsumexp(logits[:, :-1], dim=1)
    logits[:, -1] = rest + math.log(eos_prob / (1.0 - eos_prob))
    return logits


def tiny_model(v: int, seed: int, hidden: int = 8, dropout: float = 0.0) -> NeuralBigram:
    torch.manual_seed(seed)
    model = NeuralBigram(v, hidden, dropout).double()
    return model.eval() if dropout == 0.0 else model


def per_token_arrays(seqs: Sequences, v: int):
    """Padded (prev, next, mask) arrays: prev = BOS (v) then the tokens; forced EOS masked."""
    lengths = np.diff(seqs.offsets)
    width = int(lengths.max())
    prev = torch.zeros(len(seqs), width, dtype=torch.long)
    nxt = torch.zeros(len(seqs), width, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.bool)
    for i in range(len(seqs)):
        toks = seqs.tokens[seqs.offsets[i] : seqs.offsets[i + 1]].tolist()
        n = len(toks)
        prev[i, :n] = torch.tensor([v] + toks[:-1])
        nxt[i, :n] = torch.tensor(toks)
        mask[i, :n] = True
        if seqs.forced[i]:
            mask[i, n - 1] = False
    return prev, nxt, mask


def per_seq(seqs: Sequences) -> list[list[int]]:
    return [
        seqs.tokens[a:b].tolist() for a, b in zip(seqs.offsets[:-1], seqs.offsets[1:], strict=True)
    ]


# --------------------------------------------------------------------------------------------
# the target P
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("v", [10, 21])
@pytest.mark.parametrize("f", [0.1, 0.5, 0.9])
def test_random_target_structure(v, f):
    m = random_target(v, f, 0.5, np.random.default_rng(3))
    assert m.shape == (v, v)
    np.testing.assert_allclose(m[:-1].sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert np.all(m[-1] == 0)
    assert np.all(m >= 0)
    k = round(f * (v - 1))
    zeros = (m[:-1, :-1] == 0).sum(axis=1)
    assert np.all(zeros == k), (zeros, k)
    assert np.all(m[:-1, -1] > 0)
    check_target(m, uniform_start(v))


def test_random_target_same_seed_same_matrix():
    a = random_target(15, 0.5, 0.5, np.random.default_rng(11))
    b = random_target(15, 0.5, 0.5, np.random.default_rng(11))
    c = random_target(15, 0.5, 0.5, np.random.default_rng(12))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_random_target_zero_columns_vary_between_rows():
    m = random_target(30, 0.5, 0.5, np.random.default_rng(0))
    patterns = {tuple(row) for row in (m[:-1, :-1] == 0)}
    assert len(patterns) > 1


def test_uniform_start():
    pi = uniform_start(7)
    np.testing.assert_allclose(pi, np.full(7, 1 / 7))


def test_check_target_rejects_bad_matrices():
    v = 4
    pi = uniform_start(v)
    good = np.array(
        [[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5], [0.2, 0.0, 0.3, 0.5], [0.0, 0.0, 0.0, 0.0]]
    )
    check_target(good, pi)
    trapped = good.copy()  # tokens 0 and 1 only lead to each other
    trapped[0] = [0.0, 1.0, 0.0, 0.0]
    trapped[1] = [1.0, 0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="no path to EOS"):
        check_target(trapped, pi)
    eos_row = good.copy()
    eos_row[-1] = [0.25, 0.25, 0.25, 0.25]
    with pytest.raises(ValueError, match="EOS row"):
        check_target(eos_row, pi)
    sums = good.copy()
    sums[2] = [0.2, 0.0, 0.3, 0.6]
    with pytest.raises(ValueError, match="probability distribution"):
        check_target(sums, pi)
    negative = good.copy()
    negative[2] = [0.7, -0.2, 0.0, 0.5]
    with pytest.raises(ValueError):
        check_target(negative, pi)
    with pytest.raises(ValueError):
        check_target(good, np.full(v, 0.3))


CORPUS = [
    "The cat, the dog!",  # the cat the dog
    "Dog ant THE",  # dog ant the
    "zebra ant.",  # (zebra) ant
    "Yak",  # no kept word: skipped
]


def test_real_text_target_hand_counted():
    # frequencies: the 3, ant 2, dog 2, cat 1, yak 1, zebra 1 -> V - 1 = 4 kept:
    # the, ant, dog (ties alphabetical), cat (before yak, zebra)
    m, vocab = real_text_target(CORPUS, 5)
    assert vocab["words"] == ["the", "ant", "dog", "cat"]
    the, ant, dog, cat, eos = range(5)
    want = np.zeros((5, 5))
    # the -> cat, the -> dog, the -> EOS (text 2)
    want[the, [cat, dog, eos]] = 1 / 3
    # ant -> the (text 2), ant -> EOS (text 3)
    want[ant, [the, eos]] = 1 / 2
    # dog -> EOS (text 1), dog -> ant (text 2)
    want[dog, [eos, ant]] = 1 / 2
    want[cat, the] = 1.0
    np.testing.assert_allclose(m, want, rtol=0, atol=1e-15)
    assert vocab["n_texts"] == 3
    assert vocab["n_tokens"] == 8
    assert vocab["coverage"] == pytest.approx(8 / 10)
    check_target(m, uniform_start(5))


def test_real_text_target_tie_break_at_the_cut():
    m, vocab = real_text_target(CORPUS, 6)  # one more word: cat, yak, zebra tie at 1
    assert vocab["words"] == ["the", "ant", "dog", "cat", "yak"]
    yak = 4
    assert m[yak, 5] == 1.0  # "Yak" alone is now a text: yak -> EOS
    assert vocab["n_texts"] == 4


def test_real_text_target_too_few_words():
    real_text_target(CORPUS, 7)  # 6 distinct words = V - 1: fine
    with pytest.raises(ValueError, match="distinct words"):
        real_text_target(CORPUS, 8)


# --------------------------------------------------------------------------------------------
# the sampler
# --------------------------------------------------------------------------------------------

SMALL_CHAIN = np.array(
    [
        [0.1, 0.5, 0.2, 0.2],
        [0.3, 0.0, 0.5, 0.2],
        [0.0, 0.6, 0.2, 0.2],
        [0.0, 0.0, 0.0, 0.0],  # EOS
        [0.3, 0.3, 0.3, 0.1],  # BOS (start)
    ]
)


@pytest.fixture(scope="module")
def sampled():
    return sample_sequences(SMALL_CHAIN, 20000, 8, np.random.default_rng(0))


def test_sampler_transition_frequencies(sampled):
    v = 4
    counts = sampled.counts(v)
    for r in [0, 1, 2, 4]:
        n_r = counts[r].sum()
        assert n_r > 1000
        p = SMALL_CHAIN[r]
        freq = counts[r] / n_r
        se = np.sqrt(p * (1 - p) / n_r)
        assert np.all(np.abs(freq - p) <= 5 * se + 1e-15), (r, freq, p)
    assert counts[3].sum() == 0  # nothing follows EOS


def test_sampler_sequences_end_with_eos_and_forced_flags(sampled):
    v, max_length = 4, 8
    eos = v - 1
    seqs = per_seq(sampled)
    lengths = np.array([len(s) for s in seqs])
    assert np.array_equal(lengths, np.diff(sampled.offsets))
    assert lengths.min() >= 1 and lengths.max() <= max_length
    assert all(s[-1] == eos for s in seqs)
    assert all(eos not in s[:-1] for s in seqs)
    # position max_length is never drawn: EOS there is forced, and only there
    assert np.array_equal(sampled.forced, lengths == max_length)
    assert 0 < sampled.forced.sum() < len(sampled)
    # forced EOS is not counted: one counted transition per token except forced EOS
    counts = sampled.counts(v)
    assert counts.sum() == len(sampled.tokens) - sampled.forced.sum()
    assert counts[:, eos].sum() == len(sampled) - sampled.forced.sum()


def test_sampler_visit_counts_match_occupancy(sampled):
    """Expected visits per sequence from samples agree with the exact occupancy."""
    v, max_length = 4, 8
    prev, _, seq = sampled.transitions(v)
    visits = np.zeros((len(sampled), v + 1))
    np.add.at(visits, (seq, prev), 1.0)
    mean = visits.mean(axis=0)
    se = visits.std(axis=0) / np.sqrt(len(sampled))
    exact = occupancy(torch.from_numpy(SMALL_CHAIN), max_length).numpy()
    assert np.all(np.abs(mean - exact) <= 5 * se + 1e-12), (mean, exact)


def test_counts_equal_python_loop(sampled):
    v = 4
    seqs = sampled.subset(np.arange(500))
    want = np.zeros((v + 1, v))
    for toks, forced in zip(per_seq(seqs), seqs.forced, strict=True):
        for a, b in counted_transitions(tuple(toks), bool(forced), v):
            want[a, b] += 1
    assert np.array_equal(seqs.counts(v), want)


def test_sequence_logprob_equals_python_loop(sampled):
    v = 4
    seqs = sampled.subset(np.arange(300))
    with np.errstate(divide="ignore"):
        log_chain = np.log(SMALL_CHAIN + LOG_EPS)
    want = [
        sum(log_chain[a, b] for a, b in counted_transitions(tuple(t), bool(f), v))
        for t, f in zip(per_seq(seqs), seqs.forced, strict=True)
    ]
    np.testing.assert_allclose(sequence_logprob(log_chain, seqs), want, rtol=1e-12)
    torch.testing.assert_close(
        sequence_logq(torch.from_numpy(log_chain), seqs), torch.tensor(want), rtol=1e-12, atol=0
    )


def test_subset_round_trips(sampled):
    n = len(sampled)
    full = sampled.subset(np.arange(n))
    assert np.array_equal(full.tokens, sampled.tokens)
    assert np.array_equal(full.offsets, sampled.offsets)
    assert np.array_equal(full.forced, sampled.forced)
    idx = np.random.default_rng(1).permutation(n)[:777]
    sub = sampled.subset(idx)
    assert len(sub) == 777
    original = per_seq(sampled)
    assert per_seq(sub) == [original[i] for i in idx]
    assert np.array_equal(sub.forced, sampled.forced[idx])
    back = sub.subset(np.argsort(idx))
    assert per_seq(back) == [original[i] for i in np.sort(idx)]
    assert len(sampled.subset(np.array([], dtype=np.int64))) == 0


def test_sampler_same_seed_same_output():
    a = sample_sequences(SMALL_CHAIN, 500, 6, np.random.default_rng(5))
    b = sample_sequences(SMALL_CHAIN, 500, 6, np.random.default_rng(5))
    c = sample_sequences(SMALL_CHAIN, 500, 6, np.random.default_rng(6))
    for field in ("tokens", "offsets", "forced"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.tokens, c.tokens)


def test_sampler_never_draws_zero_probability_transitions():
    chain = p_chain(12, 0.9, seed=2)
    seqs = sample_sequences(chain, 3000, 40, np.random.default_rng(0))
    counts = seqs.counts(12)
    assert np.all(counts[chain == 0] == 0)


# --------------------------------------------------------------------------------------------
# the exact estimator: occupancy and expected sums
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("v,max_length", [(3, 2), (3, 3), (3, 6), (4, 5), (4, 6)])
def test_occupancy_matches_enumeration(v, max_length):
    chain = torch.softmax(logits_with_eos(v, 0.3, seed=v * 10 + max_length), dim=-1)
    got = occupancy(chain, max_length).numpy()
    want = brute_occupancy(chain.numpy(), max_length)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    assert got[v] == 1.0 and got[v - 1] == 0.0


def test_occupancy_matches_enumeration_sparse_target():
    chain = chain_matrix(*[SMALL_CHAIN[:4], SMALL_CHAIN[4]])
    got = occupancy(torch.from_numpy(chain), 6).numpy()
    np.testing.assert_allclose(got, brute_occupancy(chain, 6), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("v,max_length", [(3, 2), (3, 3), (3, 4), (3, 5), (4, 6)])
def test_expected_sum_matches_enumeration_value_and_gradient(v, max_length):
    g = torch.Generator().manual_seed(v)
    logits = logits_with_eos(v, 0.25, seed=v).requires_grad_(True)
    per_step = torch.randn(v + 1, v, generator=g)
    chain = torch.softmax(logits, dim=-1)
    got = expected_sum(chain, per_step, max_length)
    want = brute_expected_sum(chain, per_step, max_length)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
    (g_got,) = torch.autograd.grad(got, logits, retain_graph=True)
    (g_want,) = torch.autograd.grad(want, logits)
    torch.testing.assert_close(g_got, g_want, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("v,max_length", [(3, 5), (4, 6), (5, 12)])
def test_expected_sum_gradcheck(v, max_length):
    g = torch.Generator().manual_seed(100 + v)
    logits = torch.randn(v + 1, v, generator=g).requires_grad_(True)
    p_log = torch.from_numpy(np.log(p_chain(v, 0.0, seed=v) + LOG_EPS))
    per_step = torch.randn(v + 1, v, generator=g)

    def fn(lg):
        q = torch.softmax(lg, dim=-1)
        # a per-step term that depends on Q too (reverse KL) plus a fixed random one
        return expected_sum(q, torch.log_softmax(lg, -1) - p_log + per_step, max_length)

    assert torch.autograd.gradcheck(fn, (logits,), eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize(
    "case",
    ["long", "short", "medium", "sparse_p"],
)
def test_expected_sum_matches_python_recursion_large(case):
    v, max_length = 30, 200
    if case == "sparse_p":
        base = torch.from_numpy(np.log(p_chain(v, 0.9, seed=4) + 1e-300))
        logits = base.clone()
    else:
        eos = {"long": 0.002, "short": 0.5, "medium": 0.05}[case]
        logits = logits_with_eos(v, eos, seed=7)
    logits.requires_grad_(True)
    g = torch.Generator().manual_seed(8)
    per_step = torch.randn(v + 1, v, generator=g)
    chain = torch.softmax(logits, dim=-1)
    got = expected_sum(chain, per_step, max_length)
    want = loop_expected_sum(chain, per_step, max_length)
    torch.testing.assert_close(got, want, rtol=1e-8, atol=0)
    (g_got,) = torch.autograd.grad(got, logits, retain_graph=True)
    (g_want,) = torch.autograd.grad(want, logits)
    scale = float(g_want.abs().max())
    torch.testing.assert_close(g_got, g_want, rtol=1e-8, atol=1e-10 * scale)
    if case == "long":  # sequences really are long: about 1 / 0.002 tokens, cut at 200
        n = occupancy(chain.detach(), max_length)
        assert float(n[: v - 1].sum()) > 150


def test_expected_sum_short_max_length():
    v = 4
    chain = torch.softmax(logits_with_eos(v, 0.3, seed=1), dim=-1)
    per_step = torch.ones(v + 1, v)
    # max_length 2: only BOS -> first token is drawn
    assert float(expected_sum(chain, per_step, 2)) == pytest.approx(1.0)
    # max_length 3: plus one draw from every non-EOS first token
    want = 1.0 + float(chain[v, : v - 1].sum())
    assert float(expected_sum(chain, per_step, 3)) == pytest.approx(want, rel=1e-14)


# --------------------------------------------------------------------------------------------
# losses and metrics
# --------------------------------------------------------------------------------------------


def test_reverse_kl_zero_iff_q_equals_p():
    v, max_length = 8, 30
    p = torch.from_numpy(p_chain(v, 0.0, seed=3))
    assert torch.all(p[torch.arange(v + 1) != v - 1] > 0)
    log_p = torch.log(p + LOG_EPS)
    assert float(expected_sum(p, log_p - log_p, max_length)) == 0.0
    g = torch.Generator().manual_seed(0)
    for scale in (0.01, 1.0):
        q = torch.softmax(log_p + scale * torch.randn(v + 1, v, generator=g), -1)
        kl = float(expected_sum(q, torch.log(q) - log_p, max_length))
        assert kl > 0
    # and the sequence-level KL by enumeration agrees
    v, max_length = 3, 6
    p = torch.from_numpy(p_chain(v, 0.0, seed=4))
    log_p = torch.log(p + LOG_EPS)
    q = torch.softmax(log_p + torch.randn(v + 1, v, generator=g), -1)
    kl = expected_sum(q, torch.log(q) - log_p, max_length)
    total = 0.0
    for seq, forced in enumerate_sequences(q.numpy(), max_length):
        pairs = counted_transitions(seq, forced, v)
        lq = sum(math.log(q[a, b]) for a, b in pairs)
        lp = sum(math.log(p[a, b]) for a, b in pairs)
        total += math.exp(lq) * (lq - lp)
    assert float(kl) == pytest.approx(total, rel=1e-12)


@pytest.fixture(scope="module")
def tiny_problem():
    v, max_length = 5, 10
    p = p_chain(v, 0.5, seed=1)
    rng = np.random.default_rng(0)
    seqs = sample_sequences(p, 60, max_length, rng)
    p_log = np.log(p + LOG_EPS)
    batch = make_batch(seqs, p_log)

    def setting(estimator: str) -> Setting:
        return Setting(
            log_p=torch.from_numpy(p_log),
            max_length=max_length,
            estimator=estimator,
            tau=1.0,
            js_samples=40,
        )

    return v, batch, setting


@pytest.mark.parametrize("eta", [0.0, 0.3, 1.0])
def test_objective_loss_pieces_exact(tiny_problem, eta):
    v, batch, setting = tiny_problem
    s = setting("exact")
    model = tiny_model(v, seed=2)
    rng = np.random.default_rng(0)
    log_q = F.log_softmax(model.transition_logits(), -1)
    q = log_q.exp()
    fwd = count_loss(log_q, batch.counts, batch.n_seq, 1.0)
    rev_kl = expected_sum(q, log_q - s.log_p, s.max_length)
    rev_ce = expected_sum(q, -s.log_p, s.max_length)
    want = {
        "forward_kl": fwd,
        "reverse_kl": rev_kl,
        "mix_kl": eta * fwd + (1 - eta) * rev_kl,
        "mixce_star": eta * fwd + (1 - eta) * rev_ce,
        "mixce": count_loss(log_q, batch.counts, batch.n_seq, eta),
    }
    for name, w in want.items():
        loss, value = autograd_loss(name, eta, model, batch, s, rng)
        torch.testing.assert_close(loss, w, rtol=1e-12, atol=1e-12, msg=name)
        assert value == pytest.approx(float(w.detach()), rel=1e-12)
    # forward CE = mean over sequences of -log Q(x)
    lq_seq = sequence_logq(log_q, batch.seqs)
    torch.testing.assert_close(fwd, -lq_seq.mean(), rtol=1e-12, atol=0)


HAND_OBJECTIVES = ("forward_kl", "reverse_kl", "mix_kl", "mixce_star", "mixce")


@pytest.mark.parametrize(
    ("v", "zero_fraction", "max_length"), [(5, 0.5, 10), (30, 0.9, 40), (50, 0.1, 60)]
)
@pytest.mark.parametrize("eta", [0.0, 0.3, 0.99, 1.0])
def test_hand_gradient_equals_autograd(v, zero_fraction, max_length, eta):
    """The training loop's hand-derived value and logits-gradient, backpropagated through the
    network, equal autograd through the reference loss for every objective but JS."""
    p = p_chain(v, zero_fraction, seed=v)
    rng = np.random.default_rng(v)
    p_log = np.log(p + LOG_EPS)
    batch = make_batch(sample_sequences(p, 300, max_length, rng), p_log, seq_log_p=False)
    s = Setting(torch.from_numpy(p_log), max_length, "exact", 1.0, 10)
    model = tiny_model(v, seed=3)
    for name in HAND_OBJECTIVES:
        model.zero_grad()
        loss, value = autograd_loss(name, eta, model, batch, s, rng)
        loss.backward()
        want = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
        logits = model.transition_logits()
        got_value, grad = so.exact_value_and_grad(name, eta, logits.detach(), batch, s)
        logits.backward(grad)
        assert got_value == pytest.approx(value, rel=1e-12), name
        for w, param in zip(want, model.parameters(), strict=True):
            torch.testing.assert_close(param.grad, w, rtol=1e-10, atol=1e-12, msg=name)
        value_only, none = so.exact_value_and_grad(name, eta, logits.detach(), batch, s, False)
        assert none is None and value_only == got_value


def test_hand_gradient_refuses_js(tiny_problem):
    v, batch, setting = tiny_problem
    with pytest.raises(KeyError, match="js"):
        so.exact_value_and_grad("js", 0.5, torch.zeros(v + 1, v), batch, setting("exact"))


def test_count_loss_mixce_weights():
    log_q = torch.log(torch.tensor([[0.2, 0.8], [0.5, 0.5]]))
    counts = torch.tensor([[3.0, 1.0], [0.0, 2.0]])
    for eta in (0.0, 0.4, 1.0):
        w = eta + (1 - eta) * log_q.exp()
        want = -(counts * w * log_q).sum() / 4
        torch.testing.assert_close(count_loss(log_q, counts, 4, eta), want)


def test_log_mixture_and_js_of_p_with_itself():
    g = torch.Generator().manual_seed(0)
    lp = -10 * torch.rand(50, generator=g)
    lq = -10 * torch.rand(50, generator=g)
    for eta in (0.01, 0.5, 0.99):
        want = torch.log(eta * lp.exp() + (1 - eta) * lq.exp())
        torch.testing.assert_close(log_mixture(eta, lp, lq), want, rtol=1e-12, atol=1e-12)
        # M = eta P + (1 - eta) P = P: both KL terms of the JS are 0
        torch.testing.assert_close(log_mixture(eta, lp, lp), lp, rtol=1e-14, atol=1e-14)
        js = (
            eta * (lp - log_mixture(eta, lp, lp)).mean()
            + (1 - eta) * (lp - log_mixture(eta, lp, lp)).mean()
        )
        assert abs(float(js)) < 1e-14
    # stable for very unlikely sequences
    far = log_mixture(0.5, torch.tensor([-2000.0]), torch.tensor([-2001.0]))
    assert torch.isfinite(far).all()


def test_js_objective_value_bounded(tiny_problem):
    v, batch, setting = tiny_problem
    model = tiny_model(v, seed=3)
    for estimator in ("exact", "gumbel"):
        for eta in (0.1, 0.5, 0.9):
            torch.manual_seed(0)
            _, value = objective_loss(
                "js", eta, model, batch, setting(estimator), np.random.default_rng(0)
            )
            bound = -eta * math.log(eta) - (1 - eta) * math.log(1 - eta)
            assert math.isfinite(value) and value <= bound + 1e-12, value


def test_js_exact_surrogate_gradient_is_unbiased():
    """The score-function surrogate's gradient matches the enumerated JS gradient."""
    v, max_length, eta = 3, 5, 0.5
    p = p_chain(v, 0.0, seed=5)
    p_log = np.log(p + LOG_EPS)
    rng = np.random.default_rng(1)
    data = sample_sequences(p, 4, max_length, rng)
    batch = make_batch(data, p_log)
    s = Setting(torch.from_numpy(p_log), max_length, "exact", 1.0, 40000)
    model = tiny_model(v, seed=4)
    loss, value = objective_loss("js", eta, model, batch, s, rng)
    got = torch.autograd.grad(loss, list(model.parameters()))

    log_q = F.log_softmax(model.transition_logits(), -1)
    lq_d = sequence_logq(log_q, data)
    p_side = (batch.seq_log_p - log_mixture(eta, batch.seq_log_p, lq_d)).mean()
    q_side = log_q.new_zeros(())
    for seq, forced in enumerate_sequences(np.exp(log_q.detach().numpy()), max_length):
        pairs = counted_transitions(seq, forced, v)
        prev = torch.tensor([a for a, _ in pairs])
        nxt = torch.tensor([b for _, b in pairs])
        lq = log_q[prev, nxt].sum()
        lp = s.log_p[prev, nxt].sum()
        q_side = q_side + lq.exp() * (lq - log_mixture(eta, lp, lq))
    exact = eta * p_side + (1 - eta) * q_side
    want = torch.autograd.grad(exact, list(model.parameters()))
    got_flat = torch.cat([x.flatten() for x in got])
    want_flat = torch.cat([x.flatten() for x in want])
    rel = float((got_flat - want_flat).norm() / want_flat.norm())
    assert rel < 0.05, rel
    assert value == pytest.approx(float(exact.detach()), abs=0.01)


def test_compare_metrics():
    v = 9
    gold = p_chain(v, 0.5, seed=6)
    same = compare(gold.copy(), gold)
    assert same["avg_js"] == pytest.approx(0.0, abs=1e-15)
    assert same["avg_0s"] == 0.0
    g = torch.Generator().manual_seed(0)
    learned = torch.softmax(torch.randn(v + 1, v, generator=g), -1).numpy()
    got = compare(learned, gold)
    assert got["avg_js"] > 0
    rows = [*range(v - 1), v]  # the EOS row is left out
    want_js = np.mean([jensenshannon(learned[r], gold[r]) ** 2 for r in rows])
    assert got["avg_js"] == pytest.approx(want_js, rel=1e-10)
    zeros = gold[rows] == 0
    assert zeros.sum() == (v - 1) * round(0.5 * (v - 1))  # the BOS row has no zeros
    assert got["avg_0s"] == pytest.approx(learned[rows][zeros].mean(), rel=1e-12)
    # the EOS row of the learned matrix does not matter
    learned2 = learned.copy()
    learned2[v - 1] = np.eye(v)[0]
    assert compare(learned2, gold) == got


def test_js_rows_matches_scipy():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.full(7, 0.5), size=20)
    q = rng.dirichlet(np.full(7, 0.5), size=20)
    p[:5, :3] = 0.0
    p /= p.sum(axis=1, keepdims=True)
    want = np.array([jensenshannon(a, b) ** 2 for a, b in zip(p, q, strict=True)])
    np.testing.assert_allclose(js_rows(p, q), want, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(js_rows(q, p), want, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(js_rows(p, p), 0.0, atol=1e-15)
    assert np.all(js_rows(p, q) <= math.log(2) + 1e-12)


# --------------------------------------------------------------------------------------------
# Gumbel and exact estimators agree
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("zero_fraction", [0.0, 0.5])
def test_gumbel_and_exact_estimators_agree(zero_fraction):
    v, max_length, n = 5, 12, 20000
    p = torch.from_numpy(p_chain(v, zero_fraction, seed=8))
    log_p = torch.log(p + LOG_EPS)
    model = tiny_model(v, seed=5, hidden=16)
    with torch.no_grad():
        log_q = F.log_softmax(model.transition_logits(), -1)
        exact_kl = float(expected_sum(log_q.exp(), log_q - log_p, max_length))
        exact_ce = float(expected_sum(log_q.exp(), -log_p, max_length))
        torch.manual_seed(0)
        lq, lp = gumbel_rollout(model, log_p, n, max_length, 1.0)
    for sample, exact in ((lq - lp, exact_kl), (-lp, exact_ce)):
        mean = float(sample.mean())
        se = float(sample.std()) / math.sqrt(n)
        assert abs(mean - exact) <= 4 * se, (mean, exact, se)
    # log Q(x) itself: E_Q[log Q] = -(entropy), also exact
    exact_lq = float(expected_sum(log_q.exp(), log_q, max_length))
    assert abs(float(lq.mean()) - exact_lq) <= 4 * float(lq.std()) / math.sqrt(n)


def test_gumbel_rollout_gradients_flow():
    v = 5
    p = torch.from_numpy(p_chain(v, 0.0, seed=9))
    model = tiny_model(v, seed=6)
    torch.manual_seed(1)
    lq, lp = gumbel_rollout(model, torch.log(p + LOG_EPS), 50, 8, 1.0)
    assert lq.shape == lp.shape == (50,)
    (lq - lp).mean().backward()
    assert model.embedding.weight.grad is not None
    # token embeddings get gradient through the fed-back straight-through one-hots
    assert float(model.embedding.weight.grad[: v - 1].abs().sum()) > 0


# --------------------------------------------------------------------------------------------
# count matrix versus per-token loss
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("eta", [1.0, 0.5, 0.0])
def test_count_loss_equals_per_token_mixce(eta):
    v, max_length = 6, 9
    p = p_chain(v, 0.5, seed=10)
    seqs = sample_sequences(p, 40, max_length, np.random.default_rng(2))
    assert seqs.forced.any()
    counts = torch.from_numpy(seqs.counts(v))
    model = tiny_model(v, seed=7)
    params = list(model.parameters())

    log_q = F.log_softmax(model.transition_logits(), -1)
    loss_counts = count_loss(log_q, counts, len(seqs), eta)
    g_counts = torch.autograd.grad(loss_counts, params)

    prev, nxt, mask = per_token_arrays(seqs, v)
    n_tokens = int(mask.sum())
    assert n_tokens == int(counts.sum())
    loss_tok = mixce(model(prev), nxt, mask, eta=eta) * n_tokens / len(seqs)
    g_tok = torch.autograd.grad(loss_tok, params)

    # mixce.objectives computes log-softmax in float32 (token_logprobs casts with .float())
    torch.testing.assert_close(loss_tok.double(), loss_counts, rtol=1e-5, atol=1e-6)
    for a, b in zip(g_counts, g_tok, strict=True):
        scale = float(a.abs().max())
        torch.testing.assert_close(b.double(), a, rtol=1e-4, atol=1e-5 * scale)


# --------------------------------------------------------------------------------------------
# objective_loss and train_q
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", so.ESTIMATORS)
@pytest.mark.parametrize("name", so.OBJECTIVES)
def test_objective_loss_runs(tiny_problem, name, estimator):
    v, batch, setting = tiny_problem
    model = tiny_model(v, seed=8, dropout=0.1)
    model.train()
    torch.manual_seed(0)
    loss, value = autograd_loss(
        name, 0.5, model, batch, setting(estimator), np.random.default_rng(0)
    )
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert math.isfinite(value)
    loss.backward()
    grads = [prm.grad for prm in model.parameters()]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
    assert sum(float(gr.abs().sum()) for gr in grads) > 0


def test_objective_loss_unknown_names(tiny_problem):
    v, batch, setting = tiny_problem
    model = tiny_model(v, seed=8)
    rng = np.random.default_rng(0)
    with pytest.raises(KeyError, match="known"):
        objective_loss("nope", 0.5, model, batch, setting("exact"), rng)
    with pytest.raises(KeyError, match="known"):
        objective_loss("mixce", 0.5, model, batch, setting("reinforce"), rng)
    # the exact estimator's reverse terms are exact_value_and_grad's (training's only path)
    with pytest.raises(ValueError, match="exact_value_and_grad"):
        objective_loss("mix_kl", 0.5, model, batch, setting("exact"), rng)


@pytest.mark.parametrize("objective,eta", [("forward_kl", 1.0), ("mixce", 0.5)])
def test_train_q_improves_avg_js(train_problem, objective, eta):
    p, train, dev, cfg = train_problem
    seed = 7
    torch.manual_seed(seed)
    untrained = NeuralBigram(p.shape[1], cfg.hidden_size, cfg.dropout).double()
    before = compare(untrained.learned_matrix().numpy(), p)["avg_js"]
    result, log = train_q(p, train, dev, objective, eta, seed, cfg, progress=False)
    assert result["avg_js"] < 0.5 * before, (result["avg_js"], before)
    assert result["steps"] <= 60 and log[-1]["step"] == result["steps"]
    assert len(log) >= 1 and all(math.isfinite(r["dev_loss"]) for r in log)
    assert result["dev_loss"] == min(r["dev_loss"] for r in log)

    again, log2 = train_q(p, train, dev, objective, eta, seed, cfg, progress=False)
    result.pop("seconds")
    again.pop("seconds")
    assert again == result
    assert log2 == log


def test_train_device_names_the_key_and_the_problem():
    assert train_device("cpu") == torch.device("cpu")
    assert train_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="synthetic.train.device must be cpu, cuda or auto"):
        train_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="synthetic.train.device is cuda but torch sees"):
            train_device("cuda")


def test_train_q_cuda_without_a_gpu_stops_before_training(train_problem):
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: the error path is for machines without one")
    p, train, dev, cfg = train_problem
    cfg = dataclasses.replace(cfg, device="cuda")
    with pytest.raises(RuntimeError, match="sees no GPU"):
        train_q(p, train, dev, "mixce", 0.5, 7, cfg, progress=False)


@pytest.mark.parametrize("objective", ["js", "mix_kl"])
def test_train_q_reports_its_device_and_auto_on_cpu_equals_cpu(train_problem, objective):
    if torch.cuda.is_available():
        pytest.skip("auto means cuda here")
    p, train, dev, cfg = train_problem
    cfg = dataclasses.replace(cfg, max_steps=20, js_samples=50)
    on_cpu, log_cpu = train_q(p, train, dev, objective, 0.5, 3, cfg, progress=False)
    auto, log_auto = train_q(
        p, train, dev, objective, 0.5, 3, dataclasses.replace(cfg, device="auto"), progress=False
    )
    assert on_cpu["device"] == auto["device"] == "cpu"
    on_cpu.pop("seconds")
    auto.pop("seconds")
    assert on_cpu == auto and log_cpu == log_auto


# --------------------------------------------------------------------------------------------
# protocol points synthetic_zeroing, synthetic_forced_eos, synthetic_js_clamp (official and
# clean; docs/PROTOCOL.md)
# --------------------------------------------------------------------------------------------


def test_official_zeroing_at_f0_zeroes_nothing():
    m = random_target(10, 0.0, 0.5, np.random.default_rng(4), zeroing="official")
    assert np.all(m[:-1] > 0)  # no entry zeroed: the Dirichlet rows as drawn
    # the Dirichlet rows are drawn before the zeroing: f = 0 under both settings is one P
    clean = random_target(10, 0.0, 0.5, np.random.default_rng(4), zeroing="clean")
    assert np.array_equal(m, clean)


def test_official_zeroing_near_f1_leaves_only_eos():
    v = 8
    m = random_target(v, 1.0 - 1e-12, 0.5, np.random.default_rng(5), zeroing="official")
    # every non-EOS entry of every non-EOS row is zeroed, so each row goes to EOS surely
    assert np.all(m[:-1, :-1] == 0)
    assert np.all(m[:-1, -1] == 1.0)
    assert np.all(m[-1] == 0)
    check_target(m, uniform_start(v))
    # clean zeroes round(f (V - 1)) = 7 of 7 entries too, here
    clean = random_target(v, 1.0 - 1e-12, 0.5, np.random.default_rng(5), zeroing="clean")
    assert np.array_equal(clean[:-1, -1], np.ones(v - 1))


def test_official_zeroing_is_per_entry_with_probability_f():
    """Each of the (V-1)^2 non-EOS entries is zeroed independently with probability f: the
    share of zeros is f and a row's count of zeros is Binomial(V-1, f), with variance
    (V-1) f (1-f) = 200 * 0.3 * 0.7 = 42 (clean: exactly 60 zeros in every row)."""
    v, f = 201, 0.3
    m = random_target(v, f, 0.5, np.random.default_rng(0), zeroing="official")
    zeros = m[:-1, :-1] == 0
    # share: standard error sqrt(f (1-f) / 40000) = 0.0023
    assert abs(zeros.mean() - f) < 0.01, zeros.mean()
    per_row = zeros.sum(axis=1)
    # sample variance of 200 binomial counts: standard error about 4.2
    assert 30 < per_row.var(ddof=1) < 55, per_row.var(ddof=1)
    assert per_row.min() < 60 < per_row.max()
    # so do the columns (each column's share is f as well)
    assert abs(zeros.mean(axis=0).mean() - f) < 0.01
    assert np.all(m[:-1, -1] > 0) and np.all(m[-1] == 0)
    np.testing.assert_allclose(m[:-1].sum(axis=1), 1.0, rtol=0, atol=1e-12)
    clean = random_target(v, f, 0.5, np.random.default_rng(0), zeroing="clean")
    assert np.all((clean[:-1, :-1] == 0).sum(axis=1) == 60)


def test_official_zeroing_same_seed_same_matrix():
    a = random_target(15, 0.5, 0.5, np.random.default_rng(11), zeroing="official")
    b = random_target(15, 0.5, 0.5, np.random.default_rng(11), zeroing="official")
    c = random_target(15, 0.5, 0.5, np.random.default_rng(12), zeroing="official")
    clean = random_target(15, 0.5, 0.5, np.random.default_rng(11), zeroing="clean")
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, clean)
    # the default is clean (the project's P before the protocol setting existed)
    assert np.array_equal(random_target(15, 0.5, 0.5, np.random.default_rng(11)), clean)
    with pytest.raises(ValueError, match="zeroing"):
        random_target(15, 0.5, 0.5, np.random.default_rng(11), zeroing="paper")


def two_sequences() -> tuple[Sequences, np.ndarray]:
    """V = 3 (a = 0, b = 1, EOS = 2), max length 3: [a, b, EOS] with EOS forced at position 3
    and [b, EOS] drawn; a chain with hand-picked rows (BOS row 3 uniform)."""
    seqs = Sequences(
        tokens=np.array([0, 1, 2, 1, 2], dtype=np.int32),
        offsets=np.array([0, 3, 5], dtype=np.int64),
        forced=np.array([True, False]),
    )
    chain = np.array(
        [
            [0.2, 0.5, 0.3],  # a
            [0.4, 0.4, 0.2],  # b
            [0.0, 0.0, 0.0],  # EOS
            [1 / 3, 1 / 3, 1 / 3],  # BOS
        ]
    )
    return seqs, chain


def test_forced_eos_counted_only_when_official():
    seqs, chain = two_sequences()
    # by hand: BOS->a, a->b (sequence 1; its b->EOS is forced); BOS->b, b->EOS (sequence 2)
    clean = np.zeros((4, 3))
    clean[3, 0] = clean[0, 1] = clean[3, 1] = clean[1, 2] = 1
    official = clean.copy()
    official[1, 2] = 2  # sequence 1's forced b->EOS counts too
    assert np.array_equal(seqs.counts(3), clean)
    assert np.array_equal(seqs.counts(3, count_forced=True), official)
    # log P(x): the forced EOS adds log P(EOS | b) = log 0.2 to sequence 1
    log_chain = np.log(chain + LOG_EPS)
    want_clean = [math.log(1 / 3) + math.log(0.5), math.log(1 / 3) + math.log(0.2)]
    want_official = [want_clean[0] + math.log(0.2), want_clean[1]]
    np.testing.assert_allclose(sequence_logprob(log_chain, seqs), want_clean, rtol=1e-12)
    np.testing.assert_allclose(
        sequence_logprob(log_chain, seqs, count_forced=True), want_official, rtol=1e-12
    )
    torch.testing.assert_close(
        sequence_logq(torch.from_numpy(log_chain), seqs, count_forced=True),
        torch.tensor(want_official),
    )
    # the PyTorch batch: counts and log P under both settings
    for count_forced, counts, lp in ((False, clean, want_clean), (True, official, want_official)):
        batch = make_batch(seqs, log_chain, count_forced=count_forced)
        assert batch.count_forced is count_forced
        assert np.array_equal(batch.counts.numpy(), counts)
        np.testing.assert_allclose(batch.seq_log_p.numpy(), lp, rtol=1e-12)


def test_forced_eos_changes_the_forward_ce_by_its_term():
    """Forward CE per sequence, by hand: the official one adds -log Q(EOS | b) / 2."""
    seqs, chain = two_sequences()
    log_chain = np.log(chain + LOG_EPS)
    model = tiny_model(3, seed=2)
    setting = Setting(torch.from_numpy(log_chain), 3, "exact", 1.0, 2)
    log_q = F.log_softmax(model.transition_logits(), -1).detach()
    values = {}
    for count_forced in (False, True):
        batch = make_batch(seqs, log_chain, count_forced=count_forced)
        _, values[count_forced] = autograd_loss("forward_kl", 1.0, model, batch, setting, None)
    want = -(log_q[3, 0] + log_q[0, 1] + log_q[3, 1] + log_q[1, 2]) / 2
    assert values[False] == pytest.approx(float(want), rel=1e-12)
    assert values[True] == pytest.approx(float(want - log_q[1, 2] / 2), rel=1e-12)


def test_log_mixture_clamp_by_hand():
    """log M with log Q - log P = 67.08 > 30: the released code's clamp caps it at 30."""
    from mixce.synthetic import exact as ex

    eta = 0.5
    lp, lq = math.log(1e-30), -2.0  # a sequence through one of P's zeros (P + eps)
    clamped = lp + 30 + math.log(0.5) + math.log1p(math.exp(-30))  # by hand
    exact = lq + math.log(0.5) + math.log1p(math.exp(lp - lq))  # logaddexp
    assert clamped == pytest.approx(-39.7707, abs=1e-4)
    assert exact == pytest.approx(-2.6931, abs=1e-4)
    lp_t, lq_t = torch.tensor([lp]), torch.tensor([lq], requires_grad=True)
    got = log_mixture(eta, lp_t, lq_t, clamp=30.0)
    assert float(got.detach()) == pytest.approx(clamped, rel=1e-12)
    assert float(log_mixture(eta, lp_t, lq_t).detach()) == pytest.approx(exact, rel=1e-12)
    assert float(ex.log_mixture(eta, np.array([lp]), np.array([lq]), 30.0)[0]) == pytest.approx(
        clamped, rel=1e-12
    )
    assert float(ex.log_mixture(eta, np.array([lp]), np.array([lq]))[0]) == pytest.approx(
        exact, rel=1e-12
    )
    # the JS Q-side term log Q - log M: 37.77 clamped against log 2 exact; its derivative in
    # log Q is 1 where clamped (log M no longer moves with Q), 1 - (1 - eta) Q/M ~ 0 exact
    (grad,) = torch.autograd.grad(lq_t - got, lq_t)
    assert float(grad) == 1.0
    assert float(ex.mixture_share(eta, np.array([lp]), np.array([lq]), 30.0)[0]) == 0.0
    (grad,) = torch.autograd.grad(lq_t - log_mixture(eta, lp_t, lq_t), lq_t)
    assert abs(float(grad)) < 1e-25
    # inside [-30, 30] the clamped formula is log M itself, and d log M / d log Q agrees
    g = torch.Generator().manual_seed(1)
    lp_in = -20 * torch.rand(50, generator=g)
    lq_in = (lp_in + 50 * torch.rand(50, generator=g) - 25).requires_grad_(True)
    for e in (0.1, 0.5, 0.9):
        inside = log_mixture(e, lp_in, lq_in, clamp=30.0)
        torch.testing.assert_close(inside, log_mixture(e, lp_in, lq_in), rtol=1e-12, atol=1e-12)
        (share,) = torch.autograd.grad(inside.sum(), lq_in)
        np.testing.assert_allclose(
            ex.mixture_share(e, lp_in.numpy(), lq_in.detach().numpy(), 30.0),
            share.numpy(),
            rtol=1e-9,
            atol=1e-14,
        )


def hand_js_problem() -> tuple[np.ndarray, np.ndarray, Sequences]:
    """V = 3 (a, b, EOS), max length 3. P: a -> b or EOS, b -> a, b or EOS, start uniform.
    Q (logits 0 or -1000, so one-hot in float64): start -> a, a -> a, b -> EOS. Every draw
    from Q is [a, a, EOS forced]: log Q = 0, log P = log(1/3) + log(0 + 1e-30) (P(a | a) = 0).
    The data: [b, EOS]: log P = log(1/3) + log(1/4), log Q = -1000."""
    p = np.array(
        [
            [0.0, 0.5, 0.5],
            [0.5, 0.25, 0.25],
            [0.0, 0.0, 0.0],
            [1 / 3, 1 / 3, 1 / 3],
        ]
    )
    z = np.full((4, 3), -1000.0)
    z[0, 0] = z[1, 2] = z[3, 0] = 0.0
    z[2] = 0.0  # EOS row: never used
    data = Sequences(
        tokens=np.array([1, 2], dtype=np.int32),
        offsets=np.array([0, 2], dtype=np.int64),
        forced=np.array([False]),
    )
    return p, z, data


@pytest.mark.parametrize("clamp", [None, 30.0])
def test_js_value_with_clamped_terms_by_hand(clamp):
    """JS at eta = 0.5 on :func:`hand_js_problem`, both backends of the exact estimator.

    Official (clamp 30): the data's log Q - log P = -997.5 is clamped to -30, so
    KL(P||M) = -log(0.5 + 0.5 e^-30); Q's draws have log Q - log P = 70.18, clamped to 30,
    so their log Q - log M = 70.18 - log(0.5 + 0.5 e^30) = 40.87: JS = 20.78. Clean: both
    terms are log 2 (M is half of the distribution that dominates), JS = log 2."""
    from mixce.synthetic import exact as ex

    p, z, data = hand_js_problem()
    eta, lp_q = 0.5, math.log(1 / 3) + math.log(1e-30)
    if clamp is None:
        want = math.log(2)
    else:
        p_side = -math.log(0.5 + 0.5 * math.exp(-30))
        q_side = -lp_q - math.log(0.5 + 0.5 * math.exp(30))
        want = eta * p_side + (1 - eta) * q_side
        assert want == pytest.approx(20.78, abs=0.01)
    log_p = np.log(p + LOG_EPS)
    target = ex.make_target(log_p, data, 3, np.float64, True)
    value, grad, _ = ex.value_and_grad(
        "js", eta, z.copy(), target, True, np.random.default_rng(0), 4, js_clamp=clamp
    )
    assert value == pytest.approx(want, rel=1e-9)
    assert np.all(np.isfinite(grad))
    setting = Setting(torch.from_numpy(log_p), 3, "exact", 1.0, 4, js_clamp=clamp)
    log_q = F.log_softmax(torch.from_numpy(z), -1)
    _, got = so._js(eta, None, log_q, make_batch(data, log_p), setting, np.random.default_rng(0))
    assert got == pytest.approx(want, rel=1e-9)


def test_gumbel_js_honours_the_clamp(tiny_problem, monkeypatch):
    """The Gumbel estimator's Q side with two given rollouts, by hand: (log Q, log P) =
    (0, -70), clamped, log Q - log M = 70 - log(0.5 + 0.5 e^30) = 40.69; and (-5, -4),
    inside the clamp, -1 - log(0.5 + 0.5 e^-1) = -0.6201."""
    v, batch, setting = tiny_problem
    lq = torch.tensor([0.0, -5.0])
    lp = torch.tensor([-70.0, -4.0])
    monkeypatch.setattr(so, "gumbel_rollout", lambda *args, **kwargs: (lq, lp))
    model = tiny_model(v, seed=3)
    eta = 0.5
    q_side = {
        30.0: (70 - math.log(0.5 + 0.5 * math.exp(30)) - 1 - math.log(0.5 + 0.5 * math.exp(-1)))
        / 2,
        None: float((lq - torch.logaddexp(math.log(0.5) + lp, math.log(0.5) + lq)).mean()),
    }
    assert q_side[30.0] == pytest.approx((40.6931 - 0.6201) / 2, abs=1e-3)
    for clamp in (None, 30.0):
        s = dataclasses.replace(setting("gumbel"), js_clamp=clamp)
        # the P side on the data, as the objective computes it (same draw of sequences)
        log_q = F.log_softmax(model.transition_logits(), -1)
        idx = np.sort(np.random.default_rng(0).choice(batch.n_seq, 40, replace=False))
        lq_d = sequence_logq(log_q, batch.seqs.subset(idx))
        lp_d = batch.seq_log_p[idx]
        p_side = float((lp_d - log_mixture(eta, lp_d, lq_d, clamp)).mean().detach())
        _, value = objective_loss("js", eta, model, batch, s, np.random.default_rng(0))
        assert value == pytest.approx(eta * p_side + (1 - eta) * q_side[clamp], rel=1e-12)
