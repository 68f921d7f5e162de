"""The node-overhead benchmark and the memory soak (the long runs are marked slow)."""
import pytest

import bench_node_overhead as bench


def test_overhead_benchmark_reports_every_figure(ros_info, backend):
    r = bench.measure_overhead(width=64, height=32, frames=3, interval=2, backend=backend,
                               mods=ros_info.mods, outputs=("class_mask", "overlay", "info"))
    assert r["frames"] == 3
    assert r["outputs_received"] == {"class_mask": 4, "overlay": 4, "info": 4}
    assert r["model_mean_ms"] > 0 and r["node_overhead_ms"] > 0
    assert 0 < r["share_of_mean_step"] < 10


@pytest.mark.slow
def test_node_overhead_at_1024x512_is_at_most_5_percent_of_the_model_step(ros_info, backend):
    r = bench.measure_overhead(width=1024, height=512, frames=20, interval=5, backend=backend,
                               mods=ros_info.mods)
    assert r["share_of_mean_step"] <= 0.05, r


@pytest.mark.slow
def test_soak_2000_frames_grows_resident_memory_by_less_than_50_mb(ros_info, backend):
    r = bench.soak(frames=2000, width=256, height=128, backend=backend, mods=ros_info.mods)
    assert r["processed"] == 2000 - r["decode_errors"] and r["decode_errors"] == 40
    assert r["outputs_received"]["class_mask"] == r["processed"]
    assert r["rss_growth_mb"] < 50.0, r
