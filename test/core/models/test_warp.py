"""backward_warp: identity, exact integer shifts, purity, gradients, caching, tracing and ONNX export."""
import io
import warnings

import pytest
import torch

from gsvnet_ros.models import warp
from gsvnet_ros.models.warp import backward_warp, base_grid


def test_zero_flow_is_identity():
    x = torch.randn(2, 5, 7, 9)
    assert torch.allclose(backward_warp(x, torch.zeros(2, 2, 7, 9)), x, atol=1e-5)


def test_integer_flow_is_an_exact_shift_in_the_interior():
    x = torch.randn(1, 3, 10, 12)
    flow = torch.zeros(1, 2, 10, 12)
    flow[:, 0] = 2.0   # u: sample from x + 2
    flow[:, 1] = -1.0  # v: sample from y - 1
    out = backward_warp(x, flow)
    assert torch.allclose(out[:, :, 1:, :-2], x[:, :, :-1, 2:], atol=1e-5)
    # samples from outside the map are zero
    assert torch.count_nonzero(out[:, :, 0, :].abs() > 1e-6) == 0
    assert torch.count_nonzero(out[:, :, :, -2:].abs() > 1e-6) == 0


def test_border_padding_repeats_the_edge_where_zeros_padding_gives_zeros():
    x = torch.randn(1, 3, 10, 12)
    flow = torch.zeros(1, 2, 10, 12)
    flow[:, 0] = 2.0  # the last two columns sample beyond the right edge
    out = backward_warp(x, flow, "border")
    assert torch.allclose(out[..., :-2], backward_warp(x, flow)[..., :-2], atol=1e-6)
    assert torch.allclose(out[..., -2:], x[..., -1:].expand(-1, -1, -1, 2), atol=1e-5)
    with pytest.raises(ValueError, match="'zeros' or 'border'"):
        backward_warp(x, flow, "reflection")


def test_the_model_warps_with_its_configured_padding(monkeypatch):
    from gsvnet_ros.config import ModelConfig
    from gsvnet_ros.models import gsvnet as gsvnet_module
    from gsvnet_ros.models.gsvnet import build_gsvnet

    used = []

    def spy(tensor, flow, padding="zeros"):
        used.append(padding)
        return backward_warp(tensor, flow, padding)

    monkeypatch.setattr(gsvnet_module, "backward_warp", spy)
    for padding in ("zeros", "border"):
        model = build_gsvnet(ModelConfig(warp_padding=padding)).eval()
        with torch.no_grad():
            model.propagate_forward(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8),
                                    torch.randn(1, 19, 8, 8))
    assert used == ["zeros", "border"]


def test_fractional_flow_interpolates_bilinearly():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    flow = torch.full((1, 2, 4, 4), 0.5)
    out = backward_warp(x, flow)
    assert torch.isclose(out[0, 0, 1, 1], (x[0, 0, 1, 1] + x[0, 0, 1, 2] + x[0, 0, 2, 1] + x[0, 0, 2, 2]) / 4)


def test_inputs_are_not_modified():
    x, flow = torch.randn(1, 4, 6, 8), torch.randn(1, 2, 6, 8)
    x0, flow0 = x.clone(), flow.clone()
    backward_warp(x, flow)
    assert torch.equal(x, x0) and torch.equal(flow, flow0)


def test_gradients_reach_flow_and_the_warped_tensor():
    x = torch.randn(1, 3, 6, 8, requires_grad=True)
    flow = (torch.rand(1, 2, 6, 8) * 2 - 1).requires_grad_()
    backward_warp(x, flow).pow(2).sum().backward()
    assert x.grad.abs().sum() > 0 and flow.grad.abs().sum() > 0


def test_base_grid_is_cached_per_size_device_and_dtype():
    warp.clear_grid_cache()
    a = base_grid(5, 6, torch.device("cpu"), torch.float32)
    assert base_grid(5, 6, torch.device("cpu"), torch.float32)[0] is a[0]
    assert base_grid(5, 6, torch.device("cpu"), torch.float64)[0] is not a[0]
    assert a[0].shape == (1, 5, 6, 2) and a[0][0, 0, 0].tolist() == [-1.0, -1.0]


def test_mismatched_shapes_are_rejected():
    with pytest.raises(ValueError, match="same h, w"):
        backward_warp(torch.randn(1, 3, 6, 8), torch.randn(1, 2, 6, 9))


class _Warp(torch.nn.Module):
    def __init__(self, padding="zeros"):
        super().__init__()
        self.padding = padding

    def forward(self, x, flow):
        return backward_warp(x, flow, self.padding)


def test_traced_warp_keeps_dynamic_size():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(_Warp(), (torch.randn(1, 3, 6, 8), torch.randn(1, 2, 6, 8)))
    x, flow = torch.randn(2, 3, 9, 5), torch.randn(2, 2, 9, 5) * 2
    assert torch.allclose(traced(x, flow), backward_warp(x, flow), atol=1e-5)


@pytest.mark.parametrize("padding", ["zeros", "border"])
def test_onnx_export_opset17_matches_eager(padding):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Warp(padding), (torch.randn(1, 3, 6, 8), torch.randn(1, 2, 6, 8)), buf, opset_version=17,
                          dynamo=False, input_names=["x", "flow"],
                          dynamic_axes={"x": {2: "h", 3: "w"}, "flow": {2: "h", 3: "w"}})
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    x, flow = torch.randn(1, 3, 10, 12), torch.randn(1, 2, 10, 12) * 3
    out = sess.run(None, {"x": x.numpy(), "flow": flow.numpy()})[0]
    assert torch.allclose(torch.from_numpy(out), backward_warp(x, flow, padding), atol=1e-4)


def test_grid_made_in_inference_mode_is_not_reused_for_training():
    from gsvnet_ros.models.warp import backward_warp, clear_grid_cache

    clear_grid_cache()
    logits = torch.randn(1, 3, 6, 10)
    with torch.inference_mode():
        backward_warp(logits, torch.zeros(1, 2, 6, 10))
    flow = torch.zeros(1, 2, 6, 10, requires_grad=True)
    backward_warp(logits, flow).sum().backward()  # must not hit the inference-mode grid
    assert flow.grad is not None
