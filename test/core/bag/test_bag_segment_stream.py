"""segment with the real stream.VideoSegmenter (default config, random weights, tiny frames)."""
import json
import subprocess
import sys

import pytest

from gsvnet_ros.bag import BagReader, ConvertOptions, convert
from gsvnet_ros.bag.segment import SegmentOptions, build_segmenter, segment_bag
from gsvnet_ros.bag.typestore import stamp_to_ns
from gsvnet_ros.cli.bag import main
from gsvnet_ros.codec import decode_image
from gsvnet_ros.labels import label_ids_to_train_ids
from gsvnet_ros.metrics import DistanceConfusion

from bag_helpers import REPO, write_sequence

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny frames on a shared 2-core machine: one thread avoids oversubscription stalls."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_bag(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stream")
    made = write_sequence(tmp / "ds", snippets=2, frames=tuple(range(16, 20)), size=(128, 64))
    convert(tmp / "ds", tmp / "in", ConvertOptions(progress=False))
    return tmp / "in", made


def test_miou_per_distance_equals_running_the_segmenter_and_metrics_directly(tiny_bag, tmp_path):
    bag, made = tiny_bag
    segmenter = build_segmenter(keyframe_interval=3, device="cpu", backend="torch")
    result = segment_bag(bag, tmp_path / "out", lambda: segmenter, SegmentOptions(progress=False))
    with BagReader(tmp_path / "out") as reader:
        infos = [m.msg for m in reader.messages(["/segmentation_node/info"])]
    with BagReader(bag) as reader:
        frames = [(decode_image(m.msg), stamp_to_ns(m.msg.header.stamp))
                  for m in reader.messages(["/camera/image_raw"])]

    segmenter.reset()  # same weights, same keyframe placement from the first frame on
    direct = DistanceConfusion(num_classes=segmenter.num_classes)
    placement = []
    for (rgb, stamp), key in zip(frames, sorted(made)):
        out = segmenter.step(rgb, stamp)
        direct.update(out.labels, label_ids_to_train_ids(made[key][1]), out.frames_since_keyframe)
        placement.append((out.is_keyframe, out.frames_since_keyframe))
    # 2 snippets of 4 frames, interval 3: keyframes at 0, 3, at the second snippet's start (stamp
    # gap) and 3 frames later
    assert [(i.is_keyframe, i.frames_since_keyframe) for i in infos] == placement
    reasons = [i.keyframe_reason for i in infos if i.is_keyframe]
    assert reasons == ["first", "interval", "gap", "interval"]
    expected = direct.summary()
    acc = result.report["accuracy"]
    assert acc["per_distance_miou"] == {str(d): v for d, v in expected["per_distance_miou"].items()}
    assert acc["average_miou"] == expected["average_miou"]
    assert set(acc["per_distance_miou"]) == {"0", "1", "2"}
    assert result.report["keyframes"] == 4 and result.report["model_name"] == segmenter.model_name


def test_cli_segment_end_to_end_writes_bag_report_and_strip(tiny_bag, tmp_path, capsys):
    bag, _ = tiny_bag
    config = tmp_path / "model.yaml"
    config.write_text("runtime:\n  backend: torch\n  device: cpu\nstream:\n  keyframe_interval: 7\n")
    code = main(["segment", str(bag), str(tmp_path / "out"), "--keyframe-interval", "3",
                 "--config", str(config), "--storage", "mcap", "--report", str(tmp_path / "r.json"),
                 "--overlay", str(tmp_path / "s.png"), "--overlay-frames", "3", "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "speed-up over per-frame" in captured.out and "distance from keyframe" in captured.out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["keyframe_interval"] == 3 and report["frames"] == 8  # flag beats the config
    assert report["backend"] == "torch"
    assert set(report["accuracy"]["per_distance_miou"]) == {"0", "1", "2"}
    assert (tmp_path / "s.png").is_file() and (tmp_path / "out" / "metadata.yaml").is_file()
    assert main(["segment", str(bag), str(tmp_path / "x"), "--keyframe-interval", "0"]) == 2
    assert "keyframe_interval" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_info_and_convert_never_import_torch_or_rclpy(tiny_bag, tmp_path):
    bag, _ = tiny_bag
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['rclpy'] = None\n"
        "from gsvnet_ros.cli.bag import main\n"
        "import gsvnet_ros.bag, gsvnet_ros.bag.segment, gsvnet_ros.codec\n"
        f"assert main(['info', {str(bag)!r}]) == 0\n"
        f"assert main(['convert', {str(bag.parent / 'ds')!r}, {str(tmp_path / 'b')!r}, '--quiet',"
        " '--limit', '2']) == 0\n"
        f"assert main(['segment', {str(bag)!r}, {str(tmp_path / 'o')!r}, '--topic', '/nope']) == 2\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "b" / "metadata.yaml").is_file()
