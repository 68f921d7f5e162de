"""GSVNet: keyframe and propagation shapes, size rules, parameter split, statelessness, import boundary."""
import dataclasses
import io
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from gsvnet_ros.config import ModelConfig
from gsvnet_ros.models import GSVNet, build_gsvnet, build_keyframe_net
from gsvnet_ros.models.preprocess import (IMAGENET_MEAN, IMAGENET_STD, downsample_1_8, normalize,
                                          resize_to_scale, scaled_size)
from gsvnet_ros.models.bisenet import BiSeNetR18
from gsvnet_ros.models.swiftnet import SwiftNetR18

MODELS_DIR = Path(__file__).resolve().parents[3] / "gsvnet_ros" / "models"


@pytest.fixture(scope="module")
def swift():
    torch.manual_seed(0)
    return build_gsvnet(ModelConfig()).eval()


@pytest.mark.parametrize("name,cls", [("swiftnet_r18", SwiftNetR18), ("bisenet_r18", BiSeNetR18)])
def test_keyframe_logits_at_one_eighth_of_the_full_frame(name, cls):
    net = build_gsvnet(ModelConfig(keyframe_net=name, num_classes=5)).eval()
    assert isinstance(net.keyframe_net, cls)
    with torch.no_grad():
        out = net.keyframe_forward(torch.rand(2, 3, 64, 128))
    assert out.shape == (2, 5, 8, 16) and torch.isfinite(out).all()


def test_keyframe_output_size_does_not_depend_on_the_scale():
    net = build_gsvnet(ModelConfig(num_classes=3)).eval()
    seen = []
    net.keyframe_net.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape[-2:])))
    for scale in (1.0, 0.75, 0.6, 0.5):
        net.cfg = dataclasses.replace(net.cfg, keyframe_scale=scale)
        with torch.no_grad():
            assert net.keyframe_forward(torch.rand(1, 3, 96, 160)).shape == (1, 3, 12, 20)
    assert seen == [(96, 160), (72, 120), (56, 96), (48, 80)]  # 0.6: nearest multiples of 8


def test_propagation_shapes_and_finite(swift):
    frame, prev = torch.rand(1, 3, 8, 16), torch.rand(1, 3, 8, 16)
    with torch.no_grad():
        logits = swift.keyframe_forward(torch.rand(1, 3, 64, 128))
        out = swift.propagate_forward(frame, prev, logits)
    assert out.shape == logits.shape == (1, 19, 8, 16) and torch.isfinite(out).all()


@pytest.mark.parametrize("kw", [dict(fusion="paper", edge="sigmoid"), dict(use_intra=False),
                                dict(kernel_size=5, learnable_kernels=True)])
def test_propagation_variants(kw):
    net = GSVNet(ModelConfig(num_classes=4, **kw), keyframe_net=torch.nn.Identity()).eval()
    with torch.no_grad():
        out = net.propagate_forward(torch.rand(2, 3, 4, 8), torch.rand(2, 3, 4, 8), torch.randn(2, 4, 4, 8))
    assert out.shape == (2, 4, 4, 8) and torch.isfinite(out).all()


def test_untrained_flow_is_zero_so_the_warp_is_the_identity(swift):
    with torch.no_grad():
        assert torch.count_nonzero(swift.flow(torch.randn(1, 3, 8, 16), torch.randn(1, 3, 8, 16))) == 0


def test_forwards_are_stateless(swift):
    frame, prev, logits = torch.rand(1, 3, 8, 16), torch.rand(1, 3, 8, 16), torch.randn(1, 19, 8, 16)
    inputs = [t.clone() for t in (frame, prev, logits)]
    with torch.no_grad():
        a = swift.propagate_forward(frame, prev, logits)
        swift.propagate_forward(torch.rand(1, 3, 8, 16), prev, logits)
        b = swift.propagate_forward(frame, prev, logits)
    assert torch.equal(a, b)
    assert all(torch.equal(x, y) for x, y in zip(inputs, (frame, prev, logits)))


@pytest.mark.parametrize("size", [(60, 128), (64, 100), (0, 64)])
def test_keyframe_rejects_sizes_not_multiple_of_32(swift, size):
    with pytest.raises(ValueError, match=rf"{size[0]}x{size[1]}.*multiples of 32"):
        swift.keyframe_forward(torch.rand(1, 3, *size))


def test_propagation_rejects_bad_sizes_and_shapes(swift):
    with pytest.raises(ValueError, match=r"6x16.*multiples of 4"):
        swift.propagate_forward(torch.rand(1, 3, 6, 16), torch.rand(1, 3, 6, 16), torch.randn(1, 19, 6, 16))
    with pytest.raises(ValueError, match="share h, w"):
        swift.propagate_forward(torch.rand(1, 3, 8, 16), torch.rand(1, 3, 8, 16), torch.randn(1, 19, 4, 8))
    with pytest.raises(ValueError, match=r"prev_logits_1_8.*\(B, 19, h, w\)"):
        swift.propagate_forward(torch.rand(1, 3, 8, 16), torch.rand(1, 3, 8, 16), torch.randn(1, 5, 8, 16))
    with pytest.raises(ValueError, match=r"frame.*\(B, 3, h, w\)"):
        swift.keyframe_forward(torch.rand(3, 64, 64))


def test_keyframe_and_propagation_parameters_split_the_model(swift):
    key = {id(p) for p in swift.keyframe_parameters()}
    prop = list(swift.propagation_parameters())
    assert not key & {id(p) for p in prop}
    assert key | {id(p) for p in prop} == {id(p) for p in swift.parameters()}
    assert sum(p.numel() for p in prop) == 186_402 + 15_763 + 194_241  # about 396 k (MODEL_SPEC)
    learned = GSVNet(ModelConfig(learnable_kernels=True), keyframe_net=torch.nn.Identity())
    assert sum(p.numel() for p in learned.propagation_parameters()) == 396_406 + 9 * 9


def test_unknown_keyframe_net_is_rejected():
    with pytest.raises(ValueError, match="unknown keyframe net 'resnet50'.*bisenet_r18, swiftnet_r18"):
        build_keyframe_net("resnet50", 19)


def test_propagation_exports_to_onnx_with_dynamic_size(swift):
    ort = pytest.importorskip("onnxruntime")

    class Step(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, frame, prev, logits):
            return self.net.propagate_forward(frame, prev, logits)

    names = ["frame", "prev", "logits"]
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Step(swift).eval(), (torch.rand(1, 3, 8, 16), torch.rand(1, 3, 8, 16),
                                               torch.randn(1, 19, 8, 16)), buf, opset_version=17,
                          dynamo=False, input_names=names,
                          dynamic_axes={n: {2: "h", 3: "w"} for n in names})
    inputs = (torch.rand(1, 3, 12, 20), torch.rand(1, 3, 12, 20), torch.randn(1, 19, 12, 20))
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    out = sess.run(None, {n: t.numpy() for n, t in zip(names, inputs)})[0]
    with torch.no_grad():
        assert torch.allclose(torch.from_numpy(out), swift.propagate_forward(*inputs), atol=1e-4)


def test_models_never_import_higher_layers():
    code = ("import sys; import gsvnet_ros.models; "
            "print('\\n'.join(m for m in sys.modules if m.startswith('gsvnet_ros') or m.split('.')[0] in "
            "('rclpy', 'cv2', 'rosbags')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    allowed = re.compile(r"^gsvnet_ros(\.config|\.labels|\.models(\..+)?)?$")
    loaded = out.split()
    assert "gsvnet_ros.models" in loaded
    assert [m for m in loaded if not allowed.match(m)] == []


def test_no_device_literals_in_model_code():
    for path in MODELS_DIR.glob("*.py"):
        text = path.read_text()
        assert ".cuda(" not in text and "'cuda" not in text and '"cuda' not in text, path.name


def test_preprocess_normalize_downsample_and_scaled_size():
    x = torch.rand(2, 3, 16, 24)
    out = normalize(x)
    assert torch.allclose(out[:, 1], (x[:, 1] - IMAGENET_MEAN[1]) / IMAGENET_STD[1])
    assert not torch.equal(out, x)
    small = downsample_1_8(x)
    assert small.shape == (2, 3, 2, 3) and torch.isclose(small[1, 2, 1, 2], x[1, 2, 8:16, 16:24].mean())
    assert scaled_size(1024, 2048, 0.75) == (768, 1536)
    assert scaled_size(512, 1024, 0.5) == (256, 512)
    assert scaled_size(1024, 2048, 0.6) == (616, 1232)
    assert scaled_size(32, 32, 0.1) == (8, 8)
    assert resize_to_scale(x, 1.0) is x
    assert resize_to_scale(torch.rand(1, 3, 64, 96), 0.75).shape == (1, 3, 48, 72)
