"""Texts for the real-text target: the embedded gensim corpora and local .jsonl / .txt files."""

from __future__ import annotations

import json
import logging

import pytest

from mixce.embedded import embedded_texts, load_texts, news_texts, wiki_paragraphs
from mixce.synthetic.target import words


@pytest.fixture(scope="module")
def embedded() -> list[str]:
    return embedded_texts()


def test_embedded_has_news_then_wikipedia(embedded: list[str]) -> None:
    news = news_texts()
    wiki = wiki_paragraphs()
    assert len(news) == 300
    assert len(wiki) > 1000
    assert embedded == news + wiki
    assert all(len(p.split()) >= 20 for p in wiki)


def test_embedded_is_real_english(embedded: list[str]) -> None:
    assert len(embedded) > 300
    tokens = [w for text in embedded for w in words(text)]
    assert len(tokens) > 200_000
    common = {"the", "of", "and", "in", "to", "a", "is", "was"}
    share = sum(w in common for w in tokens) / len(tokens)
    assert share > 0.15  # function words make up a large share of English running text
    assert len(set(tokens)) > 10_000
    # wiki markup is gone
    joined = "\n".join(embedded)
    assert "'''" not in joined and "[[" not in joined and "{{" not in joined


def test_embedded_is_deterministic(embedded: list[str]) -> None:
    assert load_texts("embedded", 500) == embedded[:500]
    assert load_texts("embedded", 500) == load_texts("embedded", 500)


def test_fewer_texts_than_asked_is_logged(
    embedded: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="mixce.embedded"):
        texts = load_texts("embedded", len(embedded) + 10)
    assert texts == embedded
    assert "fewer than" in caplog.text


def test_jsonl_source(tmp_path) -> None:
    path = tmp_path / "texts.jsonl"
    records = [{"text": "First text here."}, {"text": "  "}, {"text": "Second one.", "id": 2}]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n", encoding="utf-8")
    assert load_texts(str(path), 10) == ["First text here.", "Second one."]
    assert load_texts(str(path), 1) == ["First text here."]


def test_jsonl_bad_line(tmp_path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n{"body": "no text field"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.jsonl, line 2"):
        load_texts(str(path), 5)


def test_txt_source(tmp_path) -> None:
    path = tmp_path / "texts.txt"
    path.write_text("One document\nover two lines.\n\n\nAnother document.\n  \nThird.\n")
    assert load_texts(str(path), 10) == [
        "One document\nover two lines.",
        "Another document.",
        "Third.",
    ]


def test_missing_file_names_the_config_key(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"synthetic\.real_text\.source"):
        load_texts(str(tmp_path / "nope.jsonl"), 5)


def test_unsupported_source(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"synthetic\.real_text\.source"):
        load_texts(str(tmp_path / "texts.csv"), 5)
    with pytest.raises(ValueError, match="n_texts"):
        load_texts("embedded", 0)
