"""The evaluation protocol: keyframe placement per offset, pooling over offsets, per-frame baseline."""
import numpy as np
import pytest
import torch

from gsvnet_ros.backends.torch_backend import TorchBackend
from gsvnet_ros.config import ModelConfig, StreamConfig
from gsvnet_ros.evaluation.protocol import Snippet, interval_table, score_offsets, score_per_frame, segment_offsets
from gsvnet_ros.metrics import confusion_matrix, mean_iou
from gsvnet_ros.models.gsvnet import build_gsvnet
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


def test_target_checks_compare_figures_from_one_run():
    from gsvnet_ros.evaluation.report import target_checks

    def row(scale, interval, miou, fps, variant=None, minimum=None):
        out = {"keyframe_net": "swiftnet_r18", "scale": scale, "interval": interval, "average_miou": miou,
               "fps": fps, "minimum_miou": minimum}
        if variant:
            out["variant"] = variant
        return out

    results = {"rows": [row(0.75, 1, 0.72, 6.0), row(0.5, 1, 0.66, 11.0),
                        row(0.75, 4, 0.70, 19.0, "GSVNet", 0.68), row(0.75, 5, 0.695, 21.0, "GSVNet", 0.665),
                        row(0.75, 5, 0.69, 21.5, "without intra features (Table 4)", 0.655)],
               "gsvnet": {"swiftnet_r18": {"non_keyframe_share": 0.09}}}
    met = {target.split(":")[0].split(" >=")[0]: ok for _, target, _, ok in target_checks(results)}
    assert met["per-frame mIoU at scale 0.75"] is True
    assert met["l=5 average mIoU"] is True and met["l=5 minimum mIoU"] is True
    assert met["intra features"] is False  # 1.0 point < 1.5
    assert met["non-keyframe time <= 8 % of a keyframe"] is False
    assert met["l=4 frames/s"] is True  # 19 / 6 = 3.17
    assert met["headline"] is True
    results["rows"] = results["rows"][:1]
    assert {ok for _, _, _, ok in target_checks(results)} >= {None}
