"""Coherence through the ``simcse`` package (simcse 0.4, installed with --no-deps).

The package must import in the project's environment (transformers 5, numpy 2), and its
``SimCSE`` must give, on a small BERT-shaped model built here (random weights, offline),
the embeddings of the project's earlier transformers path; the released MixCE code's
cosine (scikit-learn's ``cosine_similarity`` of each pair) must equal ours.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mixce.gpt2.metrics.coherence import coherence
from mixce.gpt2.metrics.features import (
    SentenceFeaturizer,
    SimCSEFeaturizer,
    make_featurizer,
    simcse_class,
)

ROOT = Path(__file__).resolve().parents[1]


class TransformersSimCSEFeaturizer(SentenceFeaturizer):
    """The project's earlier SimCSE path, ``transformers.AutoModel`` and our own pooling,
    kept here as the cross-check of the ``simcse`` package (batches are sorted by length, so
    padding differs: equal up to float rounding)."""

    kind = "simcse-transformers"

    def __init__(self, name: str | os.PathLike[str], *, pooler: str = "cls", **options) -> None:
        assert pooler in SimCSEFeaturizer.POOLERS
        self.pooler = pooler
        super().__init__(name, **options)
        if pooler == "cls":
            assert getattr(self.model, "pooler", None) is not None

    def _pool(self, outputs: Any, mask: torch.Tensor) -> torch.Tensor:
        if self.pooler == "cls":
            return outputs.pooler_output
        return outputs.last_hidden_state[:, 0]


TEXTS = [
    "the cat sat on the mat",
    "a dog ran",
    "the quick brown fox jumps over the lazy dog and the cat sat on the mat again",
    "",
    "dogs and cats",
]
LETTERS = "abcdefghijklmnopqrstuvwxyz"


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> Path:
    """A BERT-shaped model directory (random weights, own word-piece vocabulary)."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path = tmp_path_factory.mktemp("tiny-sup-bert")
    words = ["the", "cat", "sat", "on", "mat", "dog", "##s", "and", "a", "ran", "fox"]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, *LETTERS]
    vocab += [f"##{c}" for c in LETTERS]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(path / "vocab.txt")).save_pretrained(path)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(path)
    return path


def test_simcse_imports_in_the_project_environment():
    import simcse
    from simcse import SimCSE

    pin = re.search(r"^simcse==(\S+)", (ROOT / "requirements-nodeps.txt").read_text(), re.M)
    assert pin is not None
    assert importlib.metadata.version("simcse") == pin.group(1) == "0.4"
    assert simcse.SimCSE is SimCSE is simcse_class()
    # the stale pins were not honoured: numpy 2 and the lock's scipy sit next to it
    assert int(np.__version__.split(".")[0]) >= 2


def test_simcse_import_leaves_the_root_logger_alone(monkeypatch):
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", logging.WARNING)
    for name in ("simcse", "simcse.tool"):  # import afresh: simcse.tool calls basicConfig
        monkeypatch.delitem(sys.modules, name, raising=False)
    assert simcse_class().__name__ == "SimCSE"
    assert root.handlers == [] and root.level == logging.WARNING


@pytest.mark.parametrize("pooler", ["cls", "cls_before_pooler"])
def test_simcse_package_and_previous_path_agree(bert_dir, pooler):
    package = SimCSEFeaturizer(bert_dir, pooler=pooler, max_len=12, batch_size=2)
    previous = TransformersSimCSEFeaturizer(bert_dir, pooler=pooler, max_len=12, batch_size=2)
    ours, before = package.featurize(TEXTS), previous.featurize(TEXTS)
    assert ours.shape == (5, 16) and ours.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(ours, before, atol=1e-5)
    # a different text order (other batches, other padding) gives the same rows
    np.testing.assert_allclose(package.featurize(TEXTS[::-1])[::-1], ours, atol=1e-5)
    # max_len truncates: text 2 is longer than 12 word pieces, and its first 10 words alone
    # give the same embedding
    cut = " ".join(TEXTS[2].split()[:10])
    np.testing.assert_allclose(package.featurize([cut])[0], ours[2], atol=1e-5)
    assert not np.allclose(
        SimCSEFeaturizer(bert_dir, pooler=pooler, max_len=64).featurize(TEXTS[2:3])[0], ours[2]
    )


def test_featurizer_is_the_released_call_pattern(bert_dir):
    from simcse import SimCSE

    # metrics.py's compute_coherence: SimCSE(name), then encode(..., return_numpy=True,
    # device, batch_size, max_length) of prompts and of continuations
    released = SimCSE(str(bert_dir)).encode(
        TEXTS, return_numpy=True, device="cpu", batch_size=2, max_length=512
    )
    feat = make_featurizer(
        {"kind": "simcse", "name": str(bert_dir), "max_len": 512, "batch_size": 2}
    )
    assert isinstance(feat, SimCSEFeaturizer) and isinstance(feat.encoder, SimCSE)
    assert feat.encoder.pooler == "cls"
    np.testing.assert_array_equal(feat.featurize(TEXTS), released)
    assert feat.describe() == {
        "kind": "simcse",
        "name": str(bert_dir),
        "max_len": 512,
        "normalize": True,
        "pooler": "cls",
    }
    assert feat.featurize([]).shape == (0, 16)


def test_pooler_is_explicit_whatever_the_directory_name(bert_dir, tmp_path):
    # SimCSE picks cls_before_pooler for a name containing "unsup"; ours is passed explicitly
    unsup = tmp_path / "unsup-copy"
    unsup.symlink_to(bert_dir, target_is_directory=True)
    assert SimCSEFeaturizer(unsup).encoder.pooler == "cls"
    raw = SimCSEFeaturizer(unsup, pooler="cls_before_pooler", normalize=False)
    enc = raw.tokenizer(TEXTS[:1], return_tensors="pt")
    with torch.no_grad():
        cls = raw.model(**enc).last_hidden_state[0, 0].numpy()
    np.testing.assert_allclose(raw.featurize(TEXTS[:1])[0], cls, atol=1e-6)
    with pytest.raises(ValueError, match="unknown SimCSE pooler"):
        SimCSEFeaturizer(bert_dir, pooler="avg")


def test_coherence_known_answer_and_the_released_cosine(bert_dir):
    from sklearn.metrics.pairwise import cosine_similarity

    # by hand: (1,0).(0,1) = 0; (3,4).(4,3) / (5*5) = 24/25; (1,1).(2,2) / (sqrt2*sqrt8) = 1
    a = np.array([[1.0, 0.0], [3.0, 4.0], [1.0, 1.0]])
    b = np.array([[0.0, 1.0], [4.0, 3.0], [2.0, 2.0]])
    np.testing.assert_allclose(coherence(a, b), [0.0, 0.96, 1.0], atol=1e-12)
    assert np.mean(coherence(a, b)) == pytest.approx((0 + 0.96 + 1) / 3)
    # on SimCSE embeddings: the released per-pair scikit-learn cosine and its mean
    feat = SimCSEFeaturizer(bert_dir, batch_size=2)
    prompts, continuations = feat.featurize(TEXTS[:3]), feat.featurize(TEXTS[2:])
    released = [
        cosine_similarity([p], [c])[0][0] for p, c in zip(prompts, continuations, strict=True)
    ]
    np.testing.assert_allclose(coherence(prompts, continuations), released, atol=1e-6)
    mean = np.mean(coherence(prompts, continuations))
    assert mean == pytest.approx(np.mean(released), abs=1e-6)


def test_weights_stored_in_half_precision_are_used_in_float32(bert_dir, tmp_path):
    from simcse import SimCSE
    from transformers import AutoModel, AutoTokenizer

    half = tmp_path / "half"
    AutoModel.from_pretrained(str(bert_dir)).half().save_pretrained(half)
    AutoTokenizer.from_pretrained(str(bert_dir)).save_pretrained(half)
    # transformers 5 keeps the stored dtype (transformers 4, the released code's, did not)
    assert SimCSE(str(half)).model.dtype == torch.float16
    feat = SimCSEFeaturizer(half)
    assert feat.model.dtype == torch.float32 and feat.encoder.model is feat.model
    assert feat.featurize(TEXTS[:2]).dtype == np.float32
