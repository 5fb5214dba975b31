"""The renderer's bench report: one entry per size with frame times, for a trained avatar and the stand-in."""
import pytest

from engine.nerf.bench import measure_render, stand_in_renderer

pytestmark = pytest.mark.usefixtures("taichi_cpu")


def test_report_has_a_frame_time_per_size(tiny_avatar):
    report = measure_render(tiny_avatar, sizes=(8, 12), repeats=2)
    assert set(report["sizes"]) == {"8", "12"}
    for row in report["sizes"].values():
        assert row["min_ms"] > 0 and row["fps"] > 0 and row["median_ms"] >= row["min_ms"]


def test_stand_in_has_a_head_sized_grid():
    renderer = stand_in_renderer(size=64)
    assert 0.01 < renderer.model.grid.occupied_fraction() < 0.5
    assert renderer.spec.dims.head_levels == 14  # the paper's encoder


def test_report_names_the_settings_it_ran(tiny_avatar):
    from engine.nerf.render import resolve_precision
    from engine.nerf.settings import NerfRenderSettings

    engine_default = measure_render(tiny_avatar, sizes=(8,), repeats=1)
    assert engine_default["precision"] == resolve_precision("auto", "cpu")  # the engine's 'auto', resolved
    assert engine_default["sizes"]["8"]["head_rays"] == [8, 8]
    half = measure_render(tiny_avatar, sizes=(12,), repeats=1,
                          settings=NerfRenderSettings(precision="float32", head_scale=0.5))
    assert half["precision"] == "float32" and half["sizes"]["12"]["head_rays"] == [6, 6]
