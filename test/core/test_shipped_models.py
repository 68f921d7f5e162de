"""Shipped weights: the model card's sha256 list matches, and every file segments a generated clip."""
from pathlib import Path

import numpy as np
import pytest

from gsvnet_ros.evaluation.model_card import card_checksums, sha256_of

MODELS = Path(__file__).resolve().parents[2] / "models"
CARD = MODELS / "MODEL_CARD.md"
WEIGHTS = sorted(MODELS.glob("*.pt"))


def test_every_weight_file_is_in_the_card_with_its_sha256():
    if not WEIGHTS:
        pytest.skip("no weights shipped in models/ yet")
    listed = card_checksums(CARD)
    assert sorted(listed) == [p.name for p in WEIGHTS]
    for path in WEIGHTS:
        assert listed[path.name] == (path.stat().st_size, sha256_of(path)), path.name
        assert path.stat().st_size <= 32 * 1024 * 1024


@pytest.mark.parametrize("net", ["swiftnet_r18", "bisenet_r18"])
def test_shipped_config_segments_a_generated_clip(net):
    from gsvnet_ros.cli.demo import shipped_config
    from gsvnet_ros.config import load_config
    from gsvnet_ros.data.synth.render import build_scene, render_frame
    from gsvnet_ros.labels import label_ids_to_train_ids
    from gsvnet_ros.stream import VideoSegmenter

    config = shipped_config(net)
    if config is None:
        pytest.skip(f"no shipped {net} weights yet")
    cfg = load_config(config, {"runtime": {"device": "cpu", "backend": "torch"},
                               "stream": {"keyframe_interval": 3}})
    segmenter = VideoSegmenter.from_config(cfg)
    scene = build_scene(seed=100000, width=1024, height=512, frames=4)
    accuracy = []
    for index in range(4):
        frame = render_frame(scene, index)
        truth = label_ids_to_train_ids(frame.label)
        result = segmenter.step(frame.image, index * 58_823_529)
        assert result.labels.shape == (512, 1024)
        scored = truth != 255
        accuracy.append(float(np.mean(result.labels[scored] == truth[scored])))
    assert min(accuracy) > 0.6  # trained weights get most pixels right (untrained: about 1/19)
