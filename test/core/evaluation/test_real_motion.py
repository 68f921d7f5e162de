"""The real-motion measurements (gsvnet_ros/evaluation/real_motion.py): conventions on synthetic motion, then the
real files when present."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from gsvnet_ros.cli import real_motion as cli
from gsvnet_ros.labels import IGNORE_INDEX
from gsvnet_ros.evaluation.real_motion import (camvid_propagation, dis_flow, grid_1_8, kitti_errors,
                                    read_kitti_flow, zero_flow)

REAL_MOTION = Path(__file__).resolve().parents[4] / "shared" / "realdata" / "real-motion"


def _texture(height, width, seed=0):
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
    return cv2.GaussianBlur(cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC), (0, 0), 3)


def test_grid_is_one_eighth_rounded_to_multiples_of_4():
    assert grid_1_8(512, 1024) == (64, 128)
    assert grid_1_8(360, 480) == (44, 60)
    assert grid_1_8(375, 1242) == (48, 156)
    assert grid_1_8(8, 8) == (4, 4)


def test_kitti_flow_png_round_trip_and_errors(tmp_path):
    flow = np.stack([np.full((4, 6), 2.5), np.full((4, 6), -1.25)], -1).astype(np.float32)
    valid = np.ones((4, 6), bool)
    valid[0, 0] = False
    raw = np.dstack([flow * 64 + 2 ** 15, valid]).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "f.png"), raw[..., ::-1])
    read, read_valid = read_kitti_flow(tmp_path / "f.png")
    np.testing.assert_allclose(read, flow)
    assert (read_valid == valid).all()
    assert kitti_errors(read, flow, valid)["epe_px"] == 0.0
    off = kitti_errors(read + np.array([3.0, 4.0], np.float32), flow, valid)
    assert off["epe_px"] == 5.0 and off["outliers_pct"] == 100.0


@pytest.mark.parametrize("at_1_8", [True, False])
def test_dis_flow_is_backward_in_the_streams_sense(at_1_8):
    """a(x) = b(x + (16, -8)): the flow of (a, b) is about (+16, -8) everywhere inside."""
    b = _texture(320, 480)
    a = np.ascontiguousarray(np.roll(b, shift=(8, -16), axis=(0, 1)))  # a(y, x) = b(y - 8, x + 16)
    flow = dis_flow("medium", at_1_8=at_1_8)(a, b)
    assert flow.shape == (320, 480, 2)
    inner = flow[64:-64, 64:-64].reshape(-1, 2)
    np.testing.assert_allclose(np.median(inner, axis=0), [16.0, -8.0], atol=1.0)


def test_label_propagation_scores_carried_labels_against_the_target_frame():
    labels = np.zeros((64, 96), np.uint8)
    labels[:, 48:] = 3
    shifted = np.zeros_like(labels)  # the scene moves 8 px to the right (no wrap-around)
    shifted[:, 56:] = 3
    frames = [_texture(64, 96), _texture(64, 96, seed=1)]

    def exact(a, b):  # a(x) = b(x - 8): backward flow (-8, 0)
        return np.broadcast_to(np.array([-8.0, 0.0], np.float32), (*a.shape[:2], 2)).copy()

    moved = camvid_propagation(frames, [labels, shifted], exact, max_k=1)
    still = camvid_propagation(frames, [labels, shifted], zero_flow, max_k=1)
    assert moved == {"1": 100.0}
    assert still["1"] < 90.0
    void = np.full_like(labels, IGNORE_INDEX)
    assert camvid_propagation(frames, [void, shifted], zero_flow, max_k=1) == {"1": None}


def test_without_propagation_weights_the_command_says_so_in_one_line(capsys):
    assert cli.main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "runtime.propagation_weights" in err[0]


def test_a_dis_config_needs_a_learned_flow_file_named_in_one_line(capsys):
    """The shipped configs use DIS: their propagation files carry an untrained flow net."""
    assert cli.main(["--config", "config/swiftnet_r18.yaml", "--threads", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.flow: dis" in err[0] and "--propagation-weights" in err[0], err
    # a file trained on DIS flow is refused as the flow net's file, by the weights check
    assert cli.main(["--config", "config/swiftnet_r18.yaml", "--threads", "1", "--propagation-weights",
                     "models/propagation_swiftnet_r18_dis.pt", "--data", "/nonexistent"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dis" in err[0], err


@pytest.mark.skipif(not REAL_MOTION.is_dir(), reason=f"{REAL_MOTION} not found")
def test_on_the_real_files_dis_moves_labels_and_pixels_better_than_nothing(tmp_path, capsys):
    """Measured, not tuned: DIS at 1/8 against not moving, on the real KITTI / CamVid / dashcam files."""
    import json

    out = tmp_path / "real_motion.json"
    assert cli.main(["--config", "config/swiftnet_r18.yaml", "--propagation-weights",
                     "models/propagation_swiftnet_r18.pt", "--threads", "1", "--json", str(out)]) == 0
    table = json.loads(out.read_text())
    assert table["kitti"]["DIS fast s0 (1/8)"]["epe_px"] < table["kitti"]["no motion"]["epe_px"]
    assert table["kitti"]["DIS medium (full res)"]["epe_px"] < table["kitti"]["DIS fast s0 (1/8)"]["epe_px"]
    for k in "1234":
        assert table["camvid"]["DIS fast s0 (1/8)"][k] > table["camvid"]["no motion"][k]
    assert table["dashcam"]["mae"]["DIS fast s0 (1/8)"] < table["dashcam"]["mae"]["no motion"]
    assert table["dashcam"]["frames"] == 38
    assert "CamVid" in capsys.readouterr().out


def test_synthetic_epe_ranks_dis_above_no_motion_and_names_a_missing_split(tmp_path):
    from gsvnet_ros.cli import synth
    from gsvnet_ros.data.errors import DatasetLayoutError
    from gsvnet_ros.evaluation.real_motion import synthetic_flow_epe

    root = tmp_path / "synth"
    assert synth.main(["generate", "--root", str(root), "--split", "train", "--sequences", "1",
                       "--frames", "4", "--size", "512x256", "--seed-offset", "3000", "--flow"]) == 0
    table = synthetic_flow_epe(root, "train", {"none": zero_flow, "dis": dis_flow("fast", finest_scale=0)})
    assert set(table) == {"none", "dis"} and table["dis"] < table["none"]
    with pytest.raises(DatasetLayoutError):  # no such split
        synthetic_flow_epe(root, "val", {"none": zero_flow})
