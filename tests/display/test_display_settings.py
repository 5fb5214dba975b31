"""DisplaySettings validation and derived values; configure_display; the plugin's resources."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.app import App
from engine.components import FrameImage
from engine.display import DisplaySettings, configure_display, display_plugin
from engine.display.sinks import ScreenshotRequests


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("size", (0, 10), "two positive integers"),
        ("fps", 0.0, "fps must be > 0"),
        ("background", "blue", "'color', 'chroma' or 'transparent'"),
        ("scale", "zoom", "'fit', 'fill' or 'stretch'"),
        ("overlay_key", "F9", "one of F1, TAB"),
        ("chroma_color", (0.0, 2.0, 0.0), r"3 floats in \[0, 1\]"),
    ],
)
def test_invalid_settings_name_the_field_and_the_fix(field, value, message):
    with pytest.raises(ValueError, match=message):
        DisplaySettings(**{field: value})


def test_defaults_and_derived_values():
    settings = DisplaySettings()
    assert settings.size == (512, 512) and settings.fps == 25.0 and settings.title == "SyncAnimation Engine"
    assert settings.clear_rgba == (0.0, 0.0, 0.0, 1.0) and settings.show_overlay
    assert DisplaySettings(background="chroma").clear_rgba == (0.0, 1.0, 0.0, 1.0)
    assert DisplaySettings(background="transparent").clear_rgba[3] == 0.0
    assert not DisplaySettings(kiosk=True).show_overlay


def test_configure_display_replaces_fields_before_or_after_the_plugin():
    app = App()
    configure_display(app, size=(640, 360))
    app.add_plugin(display_plugin)  # keeps the settings already there
    settings = configure_display(app, out=Path("take.mp4"), title="Presenter A")
    assert app.resource(DisplaySettings) is settings
    assert (settings.size, settings.out, settings.title) == ((640, 360), Path("take.mp4"), "Presenter A")
    assert app.world.has_resource(FrameImage) and app.world.has_resource(ScreenshotRequests)


def test_plugin_steps_without_a_runner():
    app = App()
    app.add_plugin(display_plugin)
    app.update()  # no GL target: present does nothing, nothing crashes
    assert app.resource(DisplaySettings) == DisplaySettings()


def test_sizes_are_written_width_x_height():
    from engine.display.settings import parse_size

    assert parse_size("640x360") == (640, 360)
    assert parse_size("512") == (512, 512)
    with pytest.raises(ValueError, match="WIDTHxHEIGHT.*'wide'"):
        parse_size("wide")
