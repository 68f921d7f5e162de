"""gsvnet-eval end to end on a tiny Cityscapes-layout dataset with freshly saved (untrained) weights."""
import json
from pathlib import Path

import cv2
import numpy as np
import torch

from gsvnet_ros.cli.evaluate import main
from gsvnet_ros.config import ModelConfig
from gsvnet_ros.models.gsvnet import build_gsvnet
from gsvnet_ros.models.weights import part_state_dict, save_weights, weights_meta


def _dataset(root: Path, snippets: int = 2, size=(64, 128)) -> None:
    rng = np.random.default_rng(0)
    for seq in range(snippets):
        frames_dir = root / "leftImg8bit_sequence" / "val" / "tiny"
        labels_dir = root / "gtFine" / "val" / "tiny"
        frames_dir.mkdir(parents=True, exist_ok=True)
        labels_dir.mkdir(parents=True, exist_ok=True)
        for frame in range(15, 20):
            image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            cv2.imwrite(str(frames_dir / f"tiny_{seq:06d}_{frame:06d}_leftImg8bit.png"), image)
        label_ids = rng.choice([7, 8, 11, 21, 23, 26, 0], size=size).astype(np.uint8)
        cv2.imwrite(str(labels_dir / f"tiny_{seq:06d}_000019_gtFine_labelIds.png"), label_ids)


def _models(folder: Path) -> None:
    torch.manual_seed(0)
    for variant, changes in (("", {}), ("_nointra", {"use_intra": False})):
        model = build_gsvnet(ModelConfig(**changes))
        if not variant:
            save_weights(part_state_dict(model, "keyframe"), folder / "keyframe_swiftnet_r18.pt",
                         meta=weights_meta(model, "keyframe"))
        save_weights(part_state_dict(model, "propagation"), folder / f"propagation_swiftnet_r18{variant}.pt",
                     meta=weights_meta(model, "propagation"))


def test_eval_writes_tables_json_and_plot(tmp_path):
    _dataset(tmp_path / "data")
    _models(tmp_path / "models")
    out = tmp_path / "docs"
    code = main(["--data", str(tmp_path / "data"), "--models-dir", str(tmp_path / "models"),
                 "--out", str(out), "--quick", "--backend", "torch", "--threads", "1"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    methods = {(r["method"], r["scale"], r["interval"]) for r in results["rows"]}
    assert ("swiftnet_r18 per frame", 0.5, 1) in methods
    assert ("GSVNet-swiftnet_r18", 0.75, 5) in methods
    assert ("GSVNet-swiftnet_r18_nointra", 0.75, 5) in methods
    text = (out / "results.md").read_text()
    assert "Accuracy and throughput" in text and "without intra features" in text
    assert (out / "accuracy_throughput.png").stat().st_size > 1000


def test_eval_without_weights_is_a_one_line_error(tmp_path, capsys):
    assert main(["--models-dir", str(tmp_path)]) == 2
    assert "no weight files" in capsys.readouterr().err
