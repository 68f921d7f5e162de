"""HFFB flow net O: exact parameter count, 1/8-grid output, zero flow before training."""
import torch

from gsvnet_ros.models.flownet import FlowNetHFFB


def test_exact_parameter_count():
    assert sum(p.numel() for p in FlowNetHFFB().parameters()) == 186_402


def test_every_conv_has_a_bias_and_every_hidden_conv_a_bn():
    net = FlowNetHFFB()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 8 and all(c.bias is not None for c in convs)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == 7
    assert [c.dilation[0] for c in net.dilated.modules() if isinstance(c, torch.nn.Conv2d)] == [1, 2, 4, 8]


def test_output_is_2_channels_at_input_size_from_a_quarter_size_prediction():
    net = FlowNetHFFB().eval()
    pair = torch.randn(2, 6, 32, 64)
    with torch.no_grad():
        assert net.forward_coarse(pair).shape == (2, 2, 8, 16)
        assert net(pair).shape == (2, 2, 32, 64)


def test_untrained_net_returns_zero_flow_but_can_learn():
    net = FlowNetHFFB()
    pair = torch.randn(2, 6, 16, 32)
    flow = net(pair)
    assert torch.count_nonzero(flow) == 0
    (flow * torch.randn_like(flow)).sum().backward()
    assert net.to_flow.weight.grad.abs().sum() > 0
