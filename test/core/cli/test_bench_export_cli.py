"""gsvnet-bench and gsvnet-export end to end at a small size (random weights)."""
import dataclasses
import json

import pytest

from gsvnet_ros.evaluation import bench
from gsvnet_ros.evaluation.bench import fps_by_interval
from gsvnet_ros.cli.bench import main as bench_main, print_fp32_reference
from gsvnet_ros.cli.export import main as export_main

pytest.importorskip("onnxruntime")


def test_fps_by_interval_counts_one_keyframe_per_interval():
    fps = fps_by_interval(100.0, 10.0)
    assert fps[1] == pytest.approx(10.0) and fps[5] == pytest.approx(5000 / 140)
    assert list(fps.values()) == sorted(fps.values())


def test_bench_times_every_backend_and_writes_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "bench.json"
    assert bench_main(["--size", "128x64", "--frames", "12", "--repeats", "2", "--no-macs", "--device", "cpu",
                       "--backends", "torch,onnxruntime,onnxruntime:int8", "--output-1-8", "--stream-rounds", "3",
                       "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert set(figures["backends"]) == {"torch", "onnxruntime", "onnxruntime:int8"}
    assert "int8" in figures["backends"]["onnxruntime:int8"]["backend"]
    for fig in figures["backends"].values():
        key, non = fig["keyframe_ms"], fig["non_keyframe_ms"]
        assert key > 0 and non > 0 and fig["non_keyframe_share"] == pytest.approx(non / key)
        assert fig["fps_by_interval"]["4"] == pytest.approx(4000 / (key + 3 * non))
        assert fig["frames_timed"]["keyframes"] >= 1 and fig["frames_timed"]["non_keyframes"] >= 4
    assert figures["int8_per_frame_fps"] == pytest.approx(1e3 / figures["backends"]["onnxruntime:int8"]["keyframe_ms"])
    for name in ("onnxruntime", "onnxruntime:int8"):
        fig = figures["backends"][name]
        assert set(fig["propagation_graph_ms_by_threads"]) == {"1", "2"}
        assert all(ms > 0 for ms in fig["propagation_graph_ms_by_threads"].values())
        assert 0 < fig["output_1_8"]["non_keyframe_ms"]
    assert "propagation_graph_ms_by_threads" not in figures["backends"]["torch"]
    for fig in figures["backends"].values():  # measured on the stream, both ways, at l = 1 and 4
        assert set(fig["stream_fps"]) == {"step", "segment"}
        assert all(set(by_l) == {"1", "4"} and min(by_l.values()) > 0 for by_l in fig["stream_fps"].values())
        for mode, by_l in fig["stream_fps_rounds"].items():  # 3 rounds; the figure is their median
            assert all(len(rates) == 3 for rates in by_l.values())
            assert fig["stream_fps"][mode]["4"] == pytest.approx(sorted(by_l["4"])[1])
            ratios = [a / b for a, b in zip(by_l["4"], by_l["1"])]  # within each round
            assert fig["stream_speedup_rounds"][mode] == pytest.approx(ratios)
    int8_fps = figures["backends"]["onnxruntime:int8"]["stream_fps"]
    assert figures["int8_per_frame_stream_fps"] == {mode: int8_fps[mode]["1"] for mode in ("step", "segment")}
    printed = capsys.readouterr().out
    assert "onnxruntime:int8 vs torch: keyframe" in printed and "GSVNet l=4 vs per-frame" in printed
    assert "vs the int8 per-frame net" in printed and "non-keyframe graphs alone: 1 thread" in printed
    assert "labels at 1/8 (stream.output_resolution 1/8)" in printed
    assert "measured stream frames/s: step() l=1" in printed and "segment() l=1" in printed
    measured = {line.split(": measured")[0]: line for line in printed.splitlines() if ": measured on the stream, l=4 vs l=1 (median "
                "of 3 interleaved rounds, range): step()" in line}
    assert set(measured) == {"torch", "onnxruntime", "onnxruntime:int8"}
    assert "its l=1 runs the int8 keyframe graph on every frame" in measured["onnxruntime:int8"]
    assert all("vs the int8 per-frame net run the same way" in measured[name] for name in ("torch", "onnxruntime"))
    assert list((tmp_path / "cache" / "gsvnet_ros" / "onnx").glob("*_keyframe_int8_64x128_*.onnx"))


def test_op_profile_splits_each_onnx_graph_by_op_type(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "bench.json"
    assert bench_main(["--size", "128x64", "--frames", "12", "--repeats", "2", "--no-macs", "--device", "cpu",
                       "--backends", "torch,onnxruntime", "--op-profile", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert "graph_ms_by_op" not in figures["backends"]["torch"]
    by_op = figures["backends"]["onnxruntime"]["graph_ms_by_op"]
    assert set(by_op) == {"keyframe", "intra", "propagation", "flow"}  # random weights: the learned flow, phi
    assert by_op["keyframe"]["Conv"] > 0 and by_op["flow"]["Conv"] > 0 and by_op["intra"]["Conv"] > 0
    assert "GridSample" not in by_op["propagation"]  # the warp runs in torch
    for part in by_op.values():
        assert list(part.values()) == sorted(part.values(), reverse=True) and all(v >= 0 for v in part.values())
    assert figures["fp32_gemm_gmacs_per_s"] > 0
    printed = capsys.readouterr().out
    assert "keyframe graph kernels" in printed and "propagation graph kernels" in printed
    assert "fp32 reference: a 2048x2048 matrix product runs at" in printed


def test_gemm_rate_is_the_product_size_over_its_median_time(monkeypatch):
    monkeypatch.setattr(bench, "median_ms", lambda fn, repeats: 250.0)
    assert bench.gemm_gmacs_per_second(size=1000) == pytest.approx(4.0)  # 1 GMAC in 0.25 s


def test_fp32_reference_relates_conv_time_and_the_2x_target_to_a_gemm(capsys):
    figures = {"threads": 2, "fp32_gemm_gmacs_per_s": 100.0, "gmacs": {"keyframe": 14.0},
               "backends": {"torch": {"keyframe_ms": 280.0},
                            "onnxruntime": {"keyframe_ms": 150.0,
                                            "graph_ms_by_op": {"keyframe": {"Conv": 175.0}}}}}
    print_fp32_reference(figures)
    printed = capsys.readouterr().out
    assert "runs at 100 GMAC/s on 2 threads" in printed
    assert "the keyframe's 14.00 GMAC at that rate: 140.0 ms" in printed
    assert ("onnxruntime: keyframe Conv kernels 175.0 ms = 80 GMAC/s (80 % of the matrix product's rate)"
            in printed)
    assert "needs 100 GMAC/s end to end (100 % of the matrix product's rate)" in printed


def test_bench_rejects_too_few_frames_and_unknown_backends(capsys):
    assert bench_main(["--frames", "5"]) == 2
    assert "--frames must be at least 12" in capsys.readouterr().err
    assert bench_main(["--stream-rounds", "0"]) == 2
    assert "--stream-rounds must be at least 1, got 0" in capsys.readouterr().err
    assert bench_main(["--backends", "torch,onnxruntime:int4"]) == 2
    assert "--backends entry 'onnxruntime:int4' is not one of" in capsys.readouterr().err


def test_backend_entries_choose_each_graphs_precision_and_the_propagation_threads():
    from gsvnet_ros.cli.bench import parse_backends
    from gsvnet_ros.config import RuntimeConfig

    entries = {e.name: e for e in parse_backends("torch, onnxruntime:int8key,onnxruntime:int8@1")}
    assert list(entries) == ["torch", "onnxruntime:int8key", "onnxruntime:int8@1"]
    base = RuntimeConfig(onnx_precision="fp32", threads=2)
    old = entries["onnxruntime:int8key"].runtime(base)
    assert (old.backend, old.onnx_precision, old.onnx_propagation_precision) == ("onnxruntime", "int8", "fp32")
    new = entries["onnxruntime:int8@1"].runtime(base)
    assert (new.onnx_precision, new.onnx_propagation_precision, new.onnx_propagation_threads) == ("int8", "int8", 1)
    assert entries["torch"].runtime(base) == dataclasses.replace(base, backend="torch")
    for bad in ("torch@1", "torch:int8", "onnxruntime@0", "onnxruntime:int8@x", "onnxruntime:fp16"):
        with pytest.raises(ValueError, match=f"--backends entry '{bad}' is not one of"):
            parse_backends(bad)


def test_export_pads_to_32_and_quantizes_when_asked(tmp_path, capsys):
    assert export_main(["--size", "100x70", "--cache-dir", str(tmp_path), "--onnx-precision", "int8",
                        "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["keyframe", "128x96", "int8"]
    assert lines[1].split()[:3] == ["intra", "128x96", "int8"]  # phi's graph
    assert lines[2].split()[:3] == ["propagation", "128x96", "int8"]
    assert lines[3].split()[:3] == ["flow", "128x96", "int8"]  # the default config's learned flow
    assert len(list(tmp_path.glob("*.onnx"))) == 8  # each graph in fp32 (the quantization source) and int8


def test_stream_fps_interleaves_the_settings_round_by_round():
    class Recorder:  # the segmenter's interface stream_fps uses; records the order of the passes
        keyframe_interval = 1

        def __init__(self):
            self.passes = []

        def reset(self):
            self.passes.append([self.keyframe_interval])

        def step(self, frame, stamp):
            self.passes[-1].append("step")

        def segment(self, items):
            for _ in items:
                self.passes[-1].append("segment")
                yield None

    recorder = Recorder()
    rates = bench.stream_fps(recorder, [None] * 3, intervals=(1, 4), rounds=2)
    assert {mode: {l: len(r) for l, r in by_l.items()} for mode, by_l in rates.items()} == {
        "step": {1: 2, 4: 2}, "segment": {1: 2, 4: 2}}
    settings = [(p[0], p[1]) for p in recorder.passes]
    assert settings == [(1, "step"), (4, "step"), (1, "segment"), (4, "segment")] * 3  # warm-up + 2 rounds
    assert all(len(p) == 4 for p in recorder.passes)  # every pass streams every frame
    assert bench.round_ratios([4.0, 9.0], [2.0, 3.0]) == [2.0, 3.0]
