"""Flow oracle: label warping follows the stored flow's convention; the rows agree at the keyframe."""
from pathlib import Path

import numpy as np
import pytest
import torch

from gsvnet_ros.cli.flow_oracle import main as oracle_main
from gsvnet_ros.config import ModelConfig
from gsvnet_ros.data import cityscapes
from gsvnet_ros.data.synth.writer import SynthJob, generate_split
from gsvnet_ros.evaluation.flow_oracle import ROWS, VARIANTS, flow_oracle, flow_to_1_8, warp_labels
from gsvnet_ros.metrics import DistanceConfusion
from gsvnet_ros.models.gsvnet import build_gsvnet


@pytest.fixture(scope="module")
def flow_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("flow_oracle")
    generate_split(SynthJob(str(root), "val", 1, 20, 256, 128, flow=True), progress=False)
    return root


def test_warp_labels_reads_each_pixel_at_its_flow_target():
    labels = np.zeros((8, 16), np.uint8)
    labels[:, 6] = 7
    flow = np.zeros((8, 16, 2), np.float32)
    flow[..., 0] = 2.0  # frame t at x <-> frame t-1 at x + 2: the stripe moves 2 pixels left
    moved = warp_labels(labels, [flow])
    assert (moved[:, 4] == 7).all() and (moved[:, 6] == 0).all()
    assert (warp_labels(labels, [np.zeros_like(flow)]) == labels).all()


def test_flow_to_1_8_averages_and_rescales():
    flow = np.zeros((16, 32, 2), np.float32)
    flow[..., 0], flow[..., 1] = 8.0, -16.0
    small = flow_to_1_8(flow)
    assert small.shape == (1, 2, 2, 4)
    assert torch.allclose(small[0, 0], torch.ones(2, 4))
    assert torch.allclose(small[0, 1], torch.full((2, 4), -2.0))


def _train_ids(root, item, frame):
    return cityscapes.read_train_ids(cityscapes.label_path(root, "val", item, frame, "gtFine_sequence"))


def test_exact_flow_carries_labels_better_than_the_reversed_flow(flow_root):
    item = cityscapes.list_snippets(flow_root, "val")[0]
    flows = [cityscapes.read_flow(cityscapes.flow_path(flow_root, "val", item, n)) for n in range(16, 20)]
    key, target = _train_ids(flow_root, item, 15), _train_ids(flow_root, item, 19)
    scores = {}
    for name, sign in (("exact", 1.0), ("reversed", -1.0)):
        conf = DistanceConfusion()
        carried = warp_labels(key, [sign * f for f in flows])
        conf.update(carried, np.where(carried == 255, 255, target), 4)
        scores[name] = conf.summary()["minimum_miou"]
    assert scores["exact"] > scores["reversed"]


def test_rows_agree_at_the_keyframe_and_the_cli_prints_them(flow_root, capsys):
    torch.manual_seed(0)
    model = build_gsvnet(ModelConfig()).eval()
    table = flow_oracle(model, flow_root, "val", max_distance=4)
    assert set(table) == set(ROWS)
    assert len({table[variant]["0"] for variant in VARIANTS}) == 1
    assert table["label_warp_full_res"]["0"] == 100.0
    assert all(0.0 <= v <= 100.0 for row in table.values() for v in row.values() if v is not None)
    assert oracle_main(["--data", str(flow_root), "--threads", "1", "--max-distance", "2"]) == 0
    out = capsys.readouterr().out
    assert "label_warp_full_res" in out and "true_flow_gsv" in out


def test_missing_data_or_flow_is_a_one_line_error(tmp_path, capsys):
    assert oracle_main(["--data", str(tmp_path), "--threads", "1"]) != 0
    assert "expected the folder" in capsys.readouterr().err
    generate_split(SynthJob(str(tmp_path), "val", 1, 20, 256, 128), progress=False)  # no --flow
    assert oracle_main(["--data", str(tmp_path), "--threads", "1"]) != 0
    err = capsys.readouterr().err
    assert "expected a flow .npy file" in err and len(err.strip().splitlines()) == 1
