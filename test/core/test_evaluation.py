"""The evaluation protocol: keyframe placement per offset, pooling over offsets, per-frame baseline."""
import numpy as np
import pytest
import torch

from gsvnet_ros.backends.torch_backend import TorchBackend
from gsvnet_ros.config import ModelConfig, StreamConfig
from gsvnet_ros.evaluation import Snippet, interval_table, score_offsets, score_per_frame, segment_offsets
from gsvnet_ros.metrics import confusion_matrix, mean_iou
from gsvnet_ros.models.build import build_gsvnet
from gsvnet_ros.stream import VideoSegmenter


@pytest.fixture(scope="module")
def segmenter():
    torch.manual_seed(0)
    return VideoSegmenter(TorchBackend(build_gsvnet(ModelConfig()), torch.device("cpu")), StreamConfig())


def _snippet(seed: int, frames: int = 5, size=(64, 96)) -> Snippet:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (size[0] + frames, size[1] + frames, 3), dtype=np.uint8)
    clip = [np.ascontiguousarray(base[i:i + size[0], i:i + size[1]]) for i in range(frames)]
    label = rng.integers(0, 19, size).astype(np.uint8)
    label[:4] = 255
    return Snippet(f"s{seed}", clip, label)


def test_offset_i_keys_frame_19_minus_i_and_propagates_i_steps(segmenter):
    snippet = _snippet(0)
    predictions = segment_offsets(segmenter, snippet, 5)
    assert sorted(predictions) == [0, 1, 2, 3, 4]
    # Offset 0 is the image network on the annotated frame itself.
    segmenter.reset()
    segmenter.keyframe_interval = 1
    np.testing.assert_array_equal(predictions[0], segmenter.step(snippet.frames[-1], 0).labels)
    # Offset 2 equals streaming frames 17, 18, 19 from a fresh keyframe.
    fresh = VideoSegmenter(segmenter.backend, StreamConfig(keyframe_interval=100))
    for index, frame in enumerate(snippet.frames[-3:]):
        last = fresh.step(frame, index * 58_823_529)
    np.testing.assert_array_equal(predictions[2], last.labels)


def test_intervals_pool_offsets_and_minimum_is_the_farthest(segmenter):
    snippets = [_snippet(1), _snippet(2)]
    scores = score_offsets(segmenter, snippets, max_offset=5)
    table = interval_table(scores.confusion)
    manual = {d: sum(confusion_matrix(segment_offsets(segmenter, s, 5)[d], s.label) for s in snippets)
              for d in range(5)}
    for interval in (1, 3, 5):
        pooled = sum(manual[d] for d in range(interval))
        assert table[interval]["average_miou"] == pytest.approx(mean_iou(pooled))
        assert table[interval]["minimum_miou"] == pytest.approx(mean_iou(manual[interval - 1]))
    assert table[1]["average_miou"] == table[1]["minimum_miou"]


def test_per_frame_scores_only_the_annotated_frame(segmenter):
    snippets = [_snippet(3)]
    confusion = score_per_frame(segmenter, snippets)
    assert confusion.distances == (0,)
    offsets = score_offsets(segmenter, snippets, max_offset=1).confusion
    np.testing.assert_array_equal(confusion.at(0), offsets.at(0))


def test_too_short_snippet_is_an_error(segmenter):
    with pytest.raises(ValueError, match="need 5"):
        segment_offsets(segmenter, _snippet(4, frames=3), 5)
