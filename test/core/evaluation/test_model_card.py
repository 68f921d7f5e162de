"""Model card: release copies weights with their sha256 checked; the card lists runs and lineage."""
import json

import pytest

from gsvnet_ros.cli.model_card import main as model_card_main
from gsvnet_ros.evaluation.model_card import card_checksums, sha256_of


def _run(tmp_path, name, weight, payload, accelerator=None, **config):
    run = tmp_path / name
    run.mkdir()
    (run / weight).write_bytes(payload)
    summary = {"mode": "keyframe", "iterations": 10, "wall_time_s": 120.0, "command_line":
               ["gsvnet-train", "keyframe", "--out", str(run)], "seed": 3, "threads": 2,
               "precision": "bfloat16", "torch": "2.13.0", "cpu_count": 2, "config": config,
               "accelerator": accelerator,
               "last_val": {"val_miou": 55.5}, "weights": [{"file": weight, "sha256": sha256_of(run / weight)}]}
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def test_release_writes_weights_card_and_lineage(tmp_path):
    old = _run(tmp_path, "old", "keyframe_swiftnet_r18.pt", b"old weights")
    new = _run(tmp_path, "new", "keyframe_swiftnet_r18.pt", b"new weights",
               init_weights="models/keyframe_swiftnet_r18.pt")
    models = tmp_path / "models"
    assert model_card_main([str(new), "--models-dir", str(models), "--lineage", str(old),
                            "--status", "**Status: test.**"]) == 0
    assert (models / "keyframe_swiftnet_r18.pt").read_bytes() == b"new weights"
    card = (models / "MODEL_CARD.md").read_text()
    assert card_checksums(models / "MODEL_CARD.md") == {
        "keyframe_swiftnet_r18.pt": (11, sha256_of(models / "keyframe_swiftnet_r18.pt"))}
    assert "**Status: test.**" in card and "val mIoU 55.5" in card
    assert "warm start from `models/keyframe_swiftnet_r18.pt`" in card
    lineage = card.split("## Earlier runs")[1]
    assert sha256_of(old / "keyframe_swiftnet_r18.pt") in lineage and "--out " + str(old) in lineage


def test_release_refuses_a_weight_file_that_differs_from_its_summary(tmp_path):
    run = _run(tmp_path, "run", "keyframe_swiftnet_r18.pt", b"weights")
    (run / "keyframe_swiftnet_r18.pt").write_bytes(b"tampered")
    with pytest.raises(RuntimeError, match="sha256 differs"):
        model_card_main([str(run), "--models-dir", str(tmp_path / "models")])
    assert list((tmp_path / "models").iterdir()) == []  # nothing half-released


def test_card_names_the_gpu_of_a_cuda_run_and_the_cpu_cores_of_a_cpu_run(tmp_path):
    cpu = _run(tmp_path, "cpu", "propagation_swiftnet_r18.pt", b"cpu")
    gpu = _run(tmp_path, "gpu", "keyframe_swiftnet_r18.pt", b"gpu", accelerator="NVIDIA H100 80GB HBM3")
    models = tmp_path / "models"
    assert model_card_main([str(gpu), str(cpu), "--models-dir", str(models)]) == 0
    card = (models / "MODEL_CARD.md").read_text()
    assert "wall time 2.0 min on 1 NVIDIA H100 80GB HBM3 GPU (bfloat16)" in card
    assert "wall time 2.0 min on 2 CPU cores (2 threads, bfloat16)" in card
