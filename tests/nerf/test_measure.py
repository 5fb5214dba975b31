"""measure_kernels runs end to end and reports every number bench prints (values are not asserted: no timing in tests)."""
import pytest

from engine.nerf.measure import ENCODERS, measure_kernels


@pytest.mark.usefixtures("taichi_cpu")
def test_reports_encoders_and_a_frame():
    report = measure_kernels("cpu", points=512, size=16, repeats=1, specialize=False)
    assert set(report["encoders"]) == set(ENCODERS)
    head = report["encoders"]["head_3x14x1"]
    assert head["out_dim"] == 42 and head["forward"]["median_ms"] > 0
    frame = report["march_composite"]
    assert frame["rays"] == 256 and frame["samples_per_frame"] > 0 and frame["min_ms"] > 0
