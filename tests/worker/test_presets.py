"""Presets are configuration: the defaults, and parse_presets' errors naming what is wrong."""

from __future__ import annotations

import json

import pytest

from worker import presets
from worker.renditions import DEFAULT_PRESETS, Preset, parse_presets


def test_presets_defaults_are_four_square_webp_boxes() -> None:
    assert [(p.name, p.width, p.height, p.format, p.fit) for p in DEFAULT_PRESETS] == [
        ("thumb", 128, 128, "webp", "inside"),
        ("small", 320, 320, "webp", "inside"),
        ("medium", 640, 640, "webp", "inside"),
        ("large", 1280, 1280, "webp", "inside"),
    ]


def test_presets_parse_fills_defaults_and_keeps_order() -> None:
    text = json.dumps(
        [
            {"name": "avatar", "width": 96, "height": 96, "fit": "cover", "format": "avif"},
            {"name": "og-image", "width": 1200, "height": 630, "format": "jpeg", "quality": 85},
        ]
    )
    assert parse_presets(text) == (
        Preset("avatar", 96, 96, format="avif", quality=80, fit="cover"),
        Preset("og-image", 1200, 630, format="jpeg", quality=85, fit="inside"),
    )


def test_presets_parse_round_trips_the_defaults() -> None:
    text = json.dumps([p.__dict__ for p in DEFAULT_PRESETS])
    assert parse_presets(text) == DEFAULT_PRESETS


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not valid JSON"),
        ("{}", "non-empty JSON array"),
        ("[]", "non-empty JSON array"),
        ("[3]", "preset #0 must be a JSON object"),
        ('[{"name": "Big Thumb", "width": 1, "height": 1}]', "name must be"),
        ('[{"name": "a", "width": 0, "height": 1}]', "preset 'a': width must be an integer"),
        ('[{"name": "a", "width": 1, "height": 9000}]', "height must be an integer from 1"),
        ('[{"name": "a", "width": true, "height": 1}]', "width must be an integer"),
        ('[{"name": "a", "width": 1.5, "height": 1}]', "width must be an integer"),
        ('[{"name": "a", "width": 1, "height": 1, "quality": 101}]', "quality must be"),
        ('[{"name": "a", "width": 1, "height": 1, "format": "png"}]', "format must be one of"),
        ('[{"name": "a", "width": 1, "height": 1, "fit": "fill"}]', "fit must be one of"),
        ('[{"name": "a", "width": 1, "height": 1, "gravity": 1}]', "unknown fields ['gravity']"),
        ('[{"name": "a", "width": 1, "height": 1, "crop": "top"}]', "crop must be one of"),
        (
            '[{"name": "a", "width": 1, "height": 1, "crop": "attention"}]',
            "crop 'attention' needs fit 'cover'",
        ),
        (
            '[{"name": "a", "width": 1, "height": 1}, {"name": "a", "width": 2, "height": 2}]',
            "repeated: a",
        ),
    ],
)
def test_presets_parse_rejects_with_a_message_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_presets(text)


def test_preset_version_changes_with_every_setting_and_only_then() -> None:
    base = Preset("thumb", 128, 128)
    changed = [
        Preset("thumb", 129, 128),
        Preset("thumb", 128, 129),
        Preset("thumb", 128, 128, format="avif"),
        Preset("thumb", 128, 128, quality=81),
        Preset("thumb", 128, 128, fit="cover"),
        Preset("thumb", 128, 128, fit="cover", crop="attention"),
        Preset("thumb", 128, 128, fit="cover", crop="entropy"),
    ]

    assert Preset("thumb", 128, 128).version == base.version
    assert len({base.version, *(preset.version for preset in changed)}) == 1 + len(changed)


def test_preset_version_changes_with_the_render_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """New engine bytes land under new keys: a rendition URL never starts meaning other bytes."""
    before = [preset.version for preset in DEFAULT_PRESETS]
    assert presets.ENGINE.startswith(f"picforge-render/{presets.ENGINE_REVISION} libvips/8.")

    monkeypatch.setattr(presets, "ENGINE", presets.ENGINE.replace("libvips/", "libvips/9"))

    after = [preset.version for preset in DEFAULT_PRESETS]
    assert all(old != new for old, new in zip(before, after, strict=True))


def test_presets_parse_takes_a_crop_for_cover() -> None:
    text = json.dumps([{"name": "a", "width": 9, "height": 9, "fit": "cover", "crop": "entropy"}])
    assert parse_presets(text) == (Preset("a", 9, 9, fit="cover", crop="entropy"),)
