"""The protocol setting: one default for every point, single points overridden on their own."""

from __future__ import annotations

import pytest

from mixce.protocol import POINTS, point, points, resolve


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
