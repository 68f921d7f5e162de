"""Arithmetic cost (MACs = FlopCounterMode flops / 2), counted on the meta device so nothing is computed."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from gsvnet_ros.config import ModelConfig
from gsvnet_ros.models import GSVNet
from gsvnet_ros.models.flownet import FlowNetHFFB
from gsvnet_ros.models.swiftnet import SwiftNetR18

META = torch.device("meta")


def _gmacs(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 2 / 1e9


def test_swiftnet_r18_at_768x1536_is_about_58_5_gmac():
    with META:
        net = SwiftNetR18(19).eval()
        gmacs = _gmacs(lambda: net(torch.empty(1, 3, 768, 1536)))
    assert gmacs == pytest.approx(58.5, rel=0.03)


def test_flow_net_at_128x256_is_0_39_gmac():
    with META:
        net = FlowNetHFFB().eval()
        gmacs = _gmacs(lambda: net(torch.empty(1, 6, 128, 256)))
    assert gmacs == pytest.approx(0.39, rel=0.01)


def test_whole_non_keyframe_path_at_128x256_is_about_2_76_gmac():
    with META:
        net = GSVNet(ModelConfig(), keyframe_net=torch.nn.Identity()).eval()
        frame, logits = torch.empty(1, 3, 128, 256), torch.empty(1, 19, 128, 256)
        gmacs = _gmacs(lambda: net.propagate_forward(frame, frame, logits))
    assert gmacs == pytest.approx(2.76, rel=0.05)
