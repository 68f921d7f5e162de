"""ResNet-18 encoder: torchvision state_dict names, stage shapes, pre-/post-ReLU outputs."""
import torch
import torch.nn.functional as F

from gsvnet_ros.models.resnet import STAGE_CHANNELS, ResNet18


def test_state_dict_keys_follow_torchvision_naming():
    keys = set(ResNet18().state_dict())
    for key in ("conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer1.1.bn2.bias",
                "layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_var",
                "layer3.1.bn2.running_var", "layer4.1.conv2.weight", "layer4.0.bn1.num_batches_tracked"):
        assert key in keys
    assert not any(k.startswith("fc.") for k in keys)
    assert "layer1.0.downsample.0.weight" not in keys  # layer1 keeps 64 channels at stride 1


def test_parameter_count_is_resnet18_without_classifier():
    assert sum(p.numel() for p in ResNet18().parameters()) == 11_689_512 - 513_000


def test_stages_have_strides_4_8_16_32_and_pre_relu_outputs():
    net = ResNet18().eval()
    with torch.no_grad():
        stages = net.forward_stages(torch.randn(2, 3, 64, 96))
    for i, (post, pre, ch) in enumerate(zip(stages.post, stages.pre, STAGE_CHANNELS)):
        stride = 4 * 2 ** i
        assert post.shape == (2, ch, 64 // stride, 96 // stride)
        assert torch.equal(post, F.relu(pre))
        assert pre.min() < 0  # really before the ReLU
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(net(torch.zeros(1, 3, 32, 32)),
                                                     net.forward_stages(torch.zeros(1, 3, 32, 32)).post))
