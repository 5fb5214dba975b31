"""DisplaySettings parsing from the command line."""
import pytest


def test_sizes_are_written_width_x_height():
    from engine.display.settings import parse_size

    assert parse_size("640x360") == (640, 360)
    assert parse_size("512") == (512, 512)
    with pytest.raises(ValueError, match="WIDTHxHEIGHT.*'wide'"):
        parse_size("wide")
