"""Bad files and paths given to the command-line tools: one line on stderr, exit status 2."""
import numpy as np
import pytest
import torch

from gsvnet_ros.bag import BagWriter
from gsvnet_ros.bag.typestore import IMAGE, make_header, make_image

from gsvnet_ros.cli import bag as bag_cli
from gsvnet_ros.cli import bench as bench_cli
from gsvnet_ros.cli import evaluate as eval_cli
from gsvnet_ros.cli import export as export_cli
from gsvnet_ros.cli import train as train_cli
from gsvnet_ros.cli.common import prepare_dir
from gsvnet_ros.codec import encode_image

FORMAT = "gsvnet_ros.weights"


def _one_line(capsys, *needles):
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err + captured.out, \
        captured.err
    for needle in needles:
        assert needle in captured.err, captured.err
    return captured.err


@pytest.fixture
def bad_configs(tmp_path):
    """{name: config path}: not UTF-8, out of range, and pointing at broken or mismatched weights."""
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("stream:\n  keyframe_interval: 3  # intervalle réglé\n".encode("latin-1"))
    huge = tmp_path / "huge.yaml"
    huge.write_text("stream:\n  keyframe_interval: 100000000000000000000000\n")
    weights = tmp_path / "w.pt"
    torch.save({"format": FORMAT, "format_version": "1", "meta": {}, "state_dict": {}}, weights)
    version = tmp_path / "version.yaml"
    version.write_text(f"runtime:\n  keyframe_weights: {weights}\n")
    return {"latin1": (latin1, "is not UTF-8 text"),
            "huge": (huge, "'stream.keyframe_interval': expected an integer in 1..1000"),
            "version": (version, "has format_version '1'; expected an integer")}


@pytest.mark.parametrize("case", ["latin1", "huge", "version"])
def test_export_and_bench_report_a_bad_config_in_one_line(bad_configs, tmp_path, capsys, case):
    config, needle = bad_configs[case]
    assert export_cli.main(["--config", str(config), "--cache-dir", str(tmp_path / "c")]) == 2
    _one_line(capsys, needle)
    assert bench_cli.main(["--config", str(config), "--size", "64x64", "--frames", "12"]) == 2
    _one_line(capsys, needle)


def test_bag_segment_reports_a_bad_config_in_one_line(bad_configs, tmp_path, capsys):
    with BagWriter(tmp_path / "bag") as writer:
        writer.add_topic("/cam/image", IMAGE)
        frame = encode_image(np.zeros((8, 8, 3), np.uint8), "rgb8")
        writer.write("/cam/image", 1, make_image(writer.typestore, make_header(writer.typestore, 1, "c"),
                                                 frame))
    for config, needle in bad_configs.values():
        assert bag_cli.main(["segment", str(tmp_path / "bag"), str(tmp_path / "out"),
                             "--config", str(config)]) == 2
        _one_line(capsys, "gsvnet-bag: error: cannot build the segmenter", needle)
    assert not (tmp_path / "out").exists()


def test_output_folders_that_cannot_be_created_name_the_setting(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    blocked = tmp_path / "file" / "sub"
    assert prepare_dir(tmp_path / "ok" / "deeper", "--out") is None
    assert prepare_dir(blocked, "--out").startswith(f"--out {blocked}: cannot create the directory: ")
    assert eval_cli.main(["--out", str(blocked), "--models-dir", str(tmp_path)]) == 2
    _one_line(capsys, f"--out {blocked}: cannot create the directory", "Not a directory")
    assert export_cli.main(["--cache-dir", str(blocked)]) == 2
    _one_line(capsys, f"--cache-dir {blocked}: cannot create the directory")
    assert train_cli.main(["keyframe", "--data", str(tmp_path), "--out", str(blocked)]) == 2
    _one_line(capsys, f"--out {blocked}: cannot create the directory")
