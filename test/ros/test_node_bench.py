"""The node-overhead benchmark over DDS and the memory soak (the long runs are marked slow)."""
import pytest

import bench_node_overhead as bench


def test_overhead_benchmark_reports_every_figure(tmp_path):
    r = bench.measure_overhead(width=128, height=64, frames=4, interval=2, workdir=tmp_path)
    for kind in ("keyframe", "non_keyframe"):
        assert r[f"overhead_{kind}_ms"]["count"] == 2
        assert r[f"model_{kind}_ms"]["median"] > 0.0
        # Publish-to-mask time includes the step: the overhead cannot exceed a generous bound
        # nor be negative beyond clock noise.
        assert -1.0 < r[f"overhead_{kind}_ms"]["median"] < 1000.0
    assert r["share_of_non_keyframe_step"]["non_keyframe"] > 0.0


@pytest.mark.slow
def test_overhead_at_1024x512_is_printed(tmp_path, capsys):
    r = bench.measure_overhead(width=1024, height=512, frames=20, interval=5, workdir=tmp_path)
    bench._print_overhead(r)
    assert "overhead median" in capsys.readouterr().out
    assert r["overhead_non_keyframe_ms"]["count"] == 16


@pytest.mark.slow
def test_soak_2000_frames_grows_resident_memory_by_less_than_50_mb(ros_info, backend):
    r = bench.soak(frames=2000, width=256, height=128, backend=backend, env=ros_info)
    assert r["processed"] == 2000 - r["decode_errors"] and r["decode_errors"] == 40
    assert r["outputs_received"]["class_mask"] == r["processed"]
    assert r["rss_growth_mb"] < 50.0, r
