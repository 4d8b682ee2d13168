"""The protocol setting: one default for every point, single points overridden on their own."""

from __future__ import annotations

import pytest

from mixce.gpt2.protocol import POINTS, point, points, resolve


def test_default_is_official_for_every_point() -> None:
    assert set(resolve({}).values()) == {"official"}
    assert set(resolve({"protocol": "clean"}).values()) == {"clean"}


def test_one_point_overrides_the_default_and_nothing_else() -> None:
    config = {"protocol": "official", "protocol_points": {"diversity": "clean", "newlines": None}}
    resolved = resolve(config)
    assert resolved["diversity"] == "clean"
    assert resolved["newlines"] == "official"  # null follows `protocol`
    assert [name for name, v in resolved.items() if v == "clean"] == ["diversity"]
    assert point(config, "diversity") == "clean"
    assert points(config, "grad_clip", "diversity") == {
        "grad_clip": "official",
        "diversity": "clean",
    }


@pytest.mark.parametrize(
    "config, message",
    [
        ({"protocol": "paper"}, "protocol: 'paper'"),
        ({"protocol_points": {"diversity": "exact"}}, "protocol_points.diversity"),
        ({"protocol_points": {"diversty": "clean"}}, "unknown point(s) diversty"),
    ],
)
def test_bad_settings_name_the_key(config: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve(config)


def test_every_point_is_a_config_key_and_documented() -> None:
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    schema = yaml.safe_load((root / "schemas" / "config.schema.yaml").read_text())
    assert set(schema["properties"]["protocol_points"]["properties"]) == set(POINTS)
    protocol_doc = (root / "docs" / "PROTOCOL.md").read_text()
    for name in POINTS:
        assert f"`{name}`" in protocol_doc, f"docs/PROTOCOL.md does not describe point {name}"


def test_loader_texts_keep_a_line_break_on_all_but_the_last() -> None:
    from mixce.gpt2.tokenizer import loader_texts

    texts = ["One text.", "Two texts.", "Three."]
    assert loader_texts(texts, "clean") == texts
    assert loader_texts(texts, "official") == ["One text.\n", "Two texts.\n", "Three."]
    assert loader_texts([], "official") == []
    with pytest.raises(ValueError, match="newlines"):
        loader_texts(texts, "paper")


def test_official_newlines_reach_tokens_and_sampling_lengths(tmp_path) -> None:
    import json

    from mixce.gpt2.sample import read_token_ids
    from mixce.gpt2.tokenizer import build_tokenizer, encode_texts, loader_texts

    tok = build_tokenizer("package")
    newline = tok("\n", add_special_tokens=False)["input_ids"]
    assert len(newline) == 1
    eos = tok.eos_token_id
    texts = ["The cat sat.", "It slept."]
    clean = encode_texts(tok, loader_texts(texts, "clean"), 512)
    official = encode_texts(tok, loader_texts(texts, "official"), 512)
    # the first text gains the line break token before its EOS, the last does not
    assert official[0] == clean[0][:-1] + newline + [eos]
    assert official[1] == clean[1]
    path = tmp_path / "split.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    # one prompt asked for: it is not the file's last text, so it keeps its line break
    (first,) = read_token_ids(path, tokenizer=tok, n=1, newlines="official")
    assert first == clean[0][:-1] + newline
    assert read_token_ids(path, tokenizer=tok, newlines="clean") == [c[:-1] for c in clean]
