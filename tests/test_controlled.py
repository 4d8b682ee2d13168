"""mixce.gpt2.metrics.controlled: the controlled-metric algorithm with a stand-in tokenizer
(token i is the word ``w<i>``) and stand-in featurizers (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from mixce.gpt2.metrics.controlled import Controlled, sample_seed
from mixce.gpt2.metrics.fragments import sample_fragments, sample_word_fragments


class WordTokenizer:
    """Token i <-> word ``w<i>``; a text is its words joined by spaces."""

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [[int(w[1:]) for w in t.split()] for t in texts]}

    def batch_decode(self, ids, **kwargs):
        return [" ".join(f"w{i}" for i in x) for x in ids]


class Features:
    """Features from a text's words; remembers every call and its max_len."""

    kind = "fake"

    def __init__(self) -> None:
        self.max_len = 512
        self.calls: list[tuple[list[str], int]] = []

    def featurize(self, texts):
        self.calls.append((list(texts), self.max_len))
        words = [[int(w[1:]) for w in t.split()] for t in texts]
        return np.array([[len(w), sum(w) % 97, w[0] % 13] for w in words], dtype=float)


def controlled(official: bool, lengths=(8, 500), n=6) -> Controlled:
    return Controlled(
        Features(),
        Features(),
        WordTokenizer(),
        lengths=list(lengths),
        n=n,
        prompt_tokens=4,
        mauve_seed=0,
        official=official,
        truncate_at_l=official,
    )


TOKENS = [list(range(k * 100, k * 100 + 30)) for k in range(5)]


def test_units_are_words_official_and_tokens_clean():
    assert controlled(False).units(TOKENS[:1]) == TOKENS[:1]
    assert controlled(True).units([[1, 2, 3]]) == [["w1", "w2", "w3"]]


def test_human_units_cut_the_texts_official_only():
    texts = [" ".join(f"w{i}" for i in t) for t in TOKENS]
    assert controlled(True).human_units(texts, max_length=11) == [
        [f"w{i}" for i in t[:10]] for t in TOKENS
    ]
    assert controlled(False).human_units(texts, max_length=11) == TOKENS


def test_draws_are_the_fragments_split_at_the_prompt():
    clean = controlled(False).draw(TOKENS, 8, seed=3)
    fragments = sample_fragments(TOKENS, 8, 6, 3)
    assert clean.prompts == [" ".join(f"w{i}" for i in f[:4]) for f in fragments]
    assert clean.rests == [" ".join(f"w{i}" for i in f[4:]) for f in fragments]
    words = controlled(True).units(TOKENS)
    official = controlled(True).draw(words, 8, seed=3)
    word_fragments = sample_word_fragments(words, 5, 6, 3)  # int(8 / 1.35) = 5 words
    assert official.prompts == [" ".join(f[:2]) for f in word_fragments]  # int(4 / 1.35) = 2
    assert official.rests == [" ".join(f[2:]) for f in word_fragments]
    assert controlled(True).draw(words, 500, seed=3) is None


@pytest.mark.parametrize("official", [True, False])
def test_human_score_against_a_second_draw_then_a_model_against_it(official):
    job = controlled(official)
    units = job.units(TOKENS)
    results, arrays = job.score(units, seed=0, reference=None)
    assert list(results) == ["8", "500"] and list(arrays) == ["len8"]
    ok, skipped = results["8"], results["500"]
    # mauve-text's divergence-curve area can land one ulp above 1 (1.0000000000000002 with
    # OMP_NUM_THREADS=1): the value is the library's, kept as it is.
    assert ok["status"] == "ok" and ok["n_fragments"] == 6 and 0 < ok["c_mauve"] <= 1 + 1e-12
    assert skipped == {"status": skipped["status"], "capacity": 0}
    assert skipped["status"].startswith("skipped: 0 fragment positions of")
    assert ("n_words" in ok) == official
    # MAUVE features of the draw (seed 0) and of the second human draw (seed 1)
    mauve_calls = job.mauve_f.calls
    assert len(mauve_calls) == 2 and mauve_calls[0][0] != mauve_calls[1][0]
    np.testing.assert_array_equal(arrays["len8"], job.mauve_f.featurize(mauve_calls[0][0]))
    # coherence_split official encodes c-coh_L at max_len L, then restores the featurizer's
    prompts, rests = job.coh_f.calls
    assert [prompts[1], rests[1]] == ([8, 8] if official else [512, 512])
    assert job.coh_f.max_len == 512
    # a model with a length the human reference lacks: skipped for that reason
    model = controlled(official, lengths=(8, 10))
    scored, _ = model.score(units, seed=7, reference=arrays)
    assert scored["8"]["status"] == "ok"
    assert scored["10"]["status"] == "skipped: the human fragments of this length ran out"
    assert len(model.mauve_f.calls) == 1  # the reference replaces the second draw


def test_sample_seed():
    assert sample_seed([{"seed": 3}], 5) == 1008
    assert sample_seed([], 5) == 5
