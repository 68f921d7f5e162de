"""model.flow: dis — OpenCV DIS on the host instead of the flow net, in torch and ONNX Runtime."""
import dataclasses

import cv2
import numpy as np
import pytest
import torch

from gsvnet_ros.config import ConfigError, load_config
from gsvnet_ros.models.gsvnet import build_gsvnet
from gsvnet_ros.models.dis_flow import dis_flow_1_8


def _texture(height, width, seed=0):
    rng = np.random.default_rng(seed)
    coarse = rng.random((height // 4, width // 4, 3)).astype(np.float32)
    return cv2.GaussianBlur(cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC), (0, 0), 1.5)


def _tensor(rgb):
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].clamp(0, 1)


def test_dis_flow_is_backward_and_batched():
    """frame(x) = prev(x + (3, -2)) on the 1/8 grid: DIS gives about (3, -2) inside, per sample."""
    prev = _texture(64, 96)
    frame = np.roll(prev, shift=(2, -3), axis=(0, 1))  # frame(y, x) = prev(y - 2, x + 3)
    frames = torch.cat([_tensor(frame), _tensor(prev)])
    prevs = torch.cat([_tensor(prev), _tensor(prev)])
    flow = dis_flow_1_8(frames, prevs, "medium")
    assert flow.shape == (2, 2, 64, 96) and flow.dtype == torch.float32
    inner = flow[0, :, 16:-16, 16:-16].reshape(2, -1).median(dim=1).values
    assert torch.allclose(inner, torch.tensor([3.0, -2.0]), atol=0.5)
    assert flow[1].abs().max() < 0.1  # identical frames: no motion
    with pytest.raises(ValueError, match="expected two"):
        dis_flow_1_8(frames, prevs[:1])


def test_grids_under_opencvs_minimum_are_padded_not_refused():
    """OpenCV DIS raises for an image with both sides under 12 px (a 64x64 frame at 1/8)."""
    torch.manual_seed(0)
    frame = torch.rand(2, 3, 8, 8)
    flow = dis_flow_1_8(frame, frame.roll(1, dims=-1))
    assert flow.shape == (2, 2, 8, 8) and torch.isfinite(flow).all()
    assert flow.is_contiguous()


def test_config_accepts_dis_and_names_the_choices_otherwise():
    cfg = load_config("config/swiftnet_r18.yaml", {"model": {"flow": "dis", "dis_preset": "ultrafast"}})
    assert (cfg.model.flow, cfg.model.dis_preset) == ("dis", "ultrafast")
    with pytest.raises(ConfigError, match=r"model\.flow.*'learned', 'dis'"):
        load_config(None, {"model": {"flow": "farneback"}})
    assert load_config(None).model.dis_finest_scale == 0
    with pytest.raises(ConfigError, match="model.dis_finest_scale"):
        load_config(None, {"model": {"dis_finest_scale": 9}})


def test_finest_scale_0_estimates_on_the_grid_itself():
    """The fast preset estimates at pyramid level 2 (a quarter of the 1/8 grid); level 0 resolves a
    small moving square there that level 2 smooths away."""
    prev = _texture(64, 96)
    frame = prev.copy()
    frame[24:40, 40:56] = prev[24:40, 42:58]  # only a 16x16 patch moves: frame(x) = prev(x + 2)
    frame, prev = _tensor(frame), _tensor(prev)
    fine = dis_flow_1_8(frame, prev, "fast", 0)[0, 0, 28:36, 44:52].median()
    coarse = dis_flow_1_8(frame, prev, "fast", None)[0, 0, 28:36, 44:52].median()
    assert abs(float(fine) - 2.0) < abs(float(coarse) - 2.0)


def _pair(flow, use_intra=True, learnable_kernels=False):
    torch.manual_seed(0)
    cfg = load_config("config/swiftnet_r18.yaml")
    return build_gsvnet(dataclasses.replace(cfg.model, flow=flow, use_intra=use_intra,
                                            learnable_kernels=learnable_kernels)).eval()


def test_dis_model_warps_with_the_host_flow_and_not_the_flow_net():
    model = _pair("dis")
    frame, prev = _tensor(np.roll(_texture(32, 64), 2, axis=1)), _tensor(_texture(32, 64))
    logits = torch.randn(1, 19, 32, 64)
    with torch.no_grad():
        model.flow_net.to_flow.bias.fill_(5.0)  # would move everything if the flow net were used
        out = model.propagate_forward(frame, prev, logits)
        expected = model.propagate_with_flow(frame, dis_flow_1_8(frame, prev), logits)
    assert torch.equal(out, expected)


@pytest.mark.parametrize("flow, use_intra, learnable", [("learned", True, False), ("dis", True, False),
                                                       ("dis", False, False), ("dis", True, True)])
def test_onnx_runtime_matches_torch(flow, use_intra, learnable, tmp_path):
    """Without phi a DIS graph never reads the frame (the exporter drops that input); a DIS graph gives
    Eq. 2's weights (and phi's logits) and the host sums them in torch, learned shift kernels too."""
    pytest.importorskip("onnxruntime")
    from gsvnet_ros.backends.onnxruntime_backend import OnnxRuntimeBackend

    model = _pair(flow, use_intra, learnable)
    frame, prev = _tensor(np.roll(_texture(32, 64), 2, axis=1)), _tensor(_texture(32, 64))
    logits = torch.randn(1, 19, 32, 64)
    with torch.no_grad():
        expected = model.propagate_forward(frame, prev, logits)
    backend = OnnxRuntimeBackend(model, threads=1, cache_dir=str(tmp_path))
    out = backend.propagate(frame, prev, logits)
    assert torch.allclose(out, expected, atol=1e-4)
    graph = backend.graph_path("propagation", 256, 512)
    import onnx

    names = [i.name for i in onnx.load(str(graph)).graph.input]
    # the flow (DIS, or the flow graph), phi (the intra graph), the warp and the warped logits' labels run
    # outside: the correction graph takes phi's logits (the guide's features; without phi, the warped
    # logits) and the labels (the edge map)
    assert names == (["intra_1_8", "labels_1_8"] if use_intra else ["warped_1_8", "labels_1_8"])
    parts = {part for part, _threads in backend._sessions[(256, 512)]}
    assert ("flow" in parts) == (flow == "learned") and ("intra" in parts) == use_intra


def test_dis_flow_does_not_depend_on_what_was_computed_before():
    """OpenCV's DIS object changes its results after a call on another size: one object per size."""
    import gsvnet_ros.models.dis_flow as dis_module

    big = _tensor(_texture(64, 128)), _tensor(np.roll(_texture(64, 128), 2, axis=1))
    small = _tensor(_texture(32, 64, 3)), _tensor(np.roll(_texture(32, 64, 3), 1, axis=0))
    dis_module._local.__dict__.clear()
    first = dis_flow_1_8(*big)
    dis_flow_1_8(*small)
    again = dis_flow_1_8(*big)
    assert torch.equal(first, again)
    fresh = dis_module.make_dis("fast").calc(dis_module._grey_u8(big[0])[0],
                                             dis_module._grey_u8(big[1])[0], None)
    assert torch.equal(first[0], torch.from_numpy(fresh).permute(2, 0, 1))
