"""Synthetic generator: determinism, Cityscapes layout, exact flow and dis-occlusion, sizes, CLI."""
import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from gsvnet_ros.cli.synth import main as synth_main
from gsvnet_ros.data.synth.render import build_scene, render_frame, visible_in_previous
from gsvnet_ros.data.synth.writer import (SynthConfigError, SynthJob, annotated_frame,
                                          generate_split, sequence_seed, snippet_paths)

W, H, FRAMES = 256, 128, 3


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    generate_split(SynthJob(str(root), "val", 2, FRAMES, W, H, flow=True), progress=False)
    return root


def test_same_seed_gives_byte_identical_files(small_root, tmp_path):
    again = tmp_path / "again"
    generate_split(SynthJob(str(again), "val", 2, FRAMES, W, H, flow=True), workers=2,
                   progress=False)
    first, second = _digest(small_root), _digest(again)
    assert len(first) == 2 * FRAMES * 3 + 2 + 1  # images, dense labels, flows, gtFine, manifest
    assert first == second


def test_other_split_uses_other_seeds_and_differs(small_root, tmp_path):
    generate_split(SynthJob(str(tmp_path), "test", 1, 2, W, H), progress=False)
    a = snippet_paths(small_root, "val", 0, 0)["image"].read_bytes()
    b = snippet_paths(tmp_path, "test", 0, 0)["image"].read_bytes()
    assert a != b
    assert sequence_seed("train", 3) == 3
    assert sequence_seed("val", 3) == 100_003
    assert sequence_seed("test", 0) == 200_000


def test_layout_names_sizes_and_types_follow_the_contract(small_root):
    keyed = annotated_frame(FRAMES)
    for seq in (0, 1):
        for frame in range(FRAMES):
            p = snippet_paths(small_root, "val", seq, frame)
            assert p["image"].name == f"synth_{seq:06d}_{frame:06d}_leftImg8bit.png"
            assert p["image"].parent == small_root / "leftImg8bit_sequence" / "val" / "synth"
            img = cv2.imread(str(p["image"]), cv2.IMREAD_UNCHANGED)
            lab = cv2.imread(str(p["dense_label"]), cv2.IMREAD_UNCHANGED)
            flow = np.load(p["flow"])
            assert img.shape == (H, W, 3) and img.dtype == np.uint8
            assert lab.shape == (H, W) and lab.dtype == np.uint8
            assert flow.shape == (H, W, 2) and flow.dtype == np.float16
            assert set(np.unique(lab)) <= {1, 7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26,
                                           27, 28, 31, 32, 33}
            assert p["gtfine_label"].exists() == (frame == keyed)
        gt = snippet_paths(small_root, "val", seq, keyed)
        np.testing.assert_array_equal(cv2.imread(str(gt["gtfine_label"]), cv2.IMREAD_UNCHANGED),
                                      cv2.imread(str(gt["dense_label"]), cv2.IMREAD_UNCHANGED))
    assert annotated_frame(30) == 19
    assert not list(small_root.rglob("*.tmp"))


def _flow_check(seed: int, frame: int):
    scene = build_scene(seed, W, H, frame + 1)
    prev = render_frame(scene, frame - 1)
    cur = render_frame(scene, frame, with_flow=True)
    vis = visible_in_previous(cur.flow, cur.prev_inv_depth, prev.inv_depth)
    gy, gx = np.mgrid[0:H, 0:W]
    xi = np.clip(np.rint(gx + cur.flow[..., 0]).astype(int), 0, W - 1)
    yi = np.clip(np.rint(gy + cur.flow[..., 1]).astype(int), 0, H - 1)
    warped = prev.label[yi, xi]
    return cur, prev, vis, warped


@pytest.mark.parametrize("seed,frame", [(100_000, 3), (7, 1)])
def test_true_flow_warps_previous_labels_onto_current_where_not_disoccluded(seed, frame):
    cur, prev, vis, warped = _flow_check(seed, frame)
    assert vis.mean() > 0.8  # most of the frame was already visible one step before
    agree = (warped == cur.label)[vis].mean()
    assert agree >= 0.95
    # The flow carries information: without it, the same pixels agree less.
    assert agree > (prev.label == cur.label)[vis].mean()


def test_disocclusion_flags_points_hidden_or_outside_in_previous_frame():
    flow = np.zeros((2, 3, 2), np.float32)
    flow[0, 0] = (-1.0, 0.0)  # lands outside the previous frame: entered the view
    prev_inv = np.full((2, 3), 0.1, np.float32)
    previous_zbuf = np.full((2, 3), 0.1, np.float32)
    previous_zbuf[1, 2] = 0.5  # something nearer covered this point at t-1: dis-occluded now
    vis = visible_in_previous(flow, prev_inv, previous_zbuf)
    np.testing.assert_array_equal(vis, [[False, True, True], [True, True, False]])


def test_written_flow_is_the_rendered_flow(small_root):
    scene = build_scene(sequence_seed("val", 1), W, H, FRAMES)
    out = render_frame(scene, 2, with_flow=True)
    stored = np.load(snippet_paths(small_root, "val", 1, 2)["flow"]).astype(np.float32)
    np.testing.assert_allclose(stored, out.flow, atol=0.02, rtol=2e-3)


@pytest.mark.parametrize("kwargs,match", [({"split": "dev"}, "split"), ({"width": 250}, "multiple of 32"),
                                          ({"frames": 1}, "frames"),
                                          ({"seed_offset": 99_999, "sequences": 5}, "below")])
def test_bad_job_options_raise_named_error(kwargs, match):
    args = {"root": "x", "split": "val", "sequences": 1, **kwargs}
    with pytest.raises(SynthConfigError, match=match):
        SynthJob(**args)


def test_cli_generates_and_draws_contact_sheet(tmp_path, capsys):
    root = tmp_path / "d"
    assert synth_main(["generate", "--root", str(root), "--split", "train", "--sequences", "1",
                       "--frames", "3", "--size", f"{W}x{H}", "--workers", "1", "--quiet"]) == 0
    assert "frames/s" in capsys.readouterr().out
    sheet = tmp_path / "sheet.png"
    assert synth_main(["contact-sheet", "--root", str(root), "--split", "train", "--frames", "0,2",
                       "--snippets", "1", "--out", str(sheet), "--width", "128"]) == 0
    img = cv2.imread(str(sheet))
    assert img is not None and img.shape[1] > 2 * 128
    assert synth_main(["generate", "--root", str(root), "--split", "train", "--sequences", "1",
                       "--size", "100x100"]) == 2
    assert "multiple of 32" in capsys.readouterr().err


@pytest.mark.slow
def test_full_size_2048x1024_generates(tmp_path):
    summary = generate_split(SynthJob(str(tmp_path), "val", 1, 2, 2048, 1024, flow=True),
                             progress=False)
    assert summary.frames == 2
    p = snippet_paths(tmp_path, "val", 0, 1)
    assert cv2.imread(str(p["image"])).shape == (1024, 2048, 3)
    assert cv2.imread(str(p["dense_label"]), cv2.IMREAD_UNCHANGED).shape == (1024, 2048)
    assert np.load(p["flow"]).shape == (1024, 2048, 2)


@pytest.mark.slow
def test_most_classes_appear_across_a_few_sequences():
    seen = set()
    for seed in range(100_000, 100_008):
        scene = build_scene(seed, 512, 256, 30)
        for frame in (0, 29):
            seen |= set(np.unique(render_frame(scene, frame).label).tolist())
    evaluated = {7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33}
    assert len(evaluated & seen) >= 17, sorted(evaluated - seen)
