"""SwiftNet-R18 single scale: exact parameter count, stride-4 logits, SPP pooling, pre-ReLU skips."""
import pytest
import torch
import torch.nn.functional as F

from gsvnet_ros.models.swiftnet import SpatialPyramidPooling, SwiftNetR18, adaptive_avg_pool


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return SwiftNetR18(19).eval()


def test_exact_parameter_count_for_19_classes(net):
    assert sum(p.numel() for p in net.parameters()) == 11_797_071


def test_logits_at_stride_4(net):
    with torch.no_grad():
        out = net(torch.randn(1, 3, 64, 128))
    assert out.shape == (1, 19, 16, 32)
    assert torch.isfinite(out).all()


def test_sizes_not_multiple_of_32_still_work(net):
    with torch.no_grad():
        assert net(torch.randn(1, 3, 72, 88)).shape == (1, 19, 18, 22)


def test_forward_train_has_no_aux_heads(net):
    with torch.no_grad():
        main, aux = net.forward_train(torch.randn(1, 3, 32, 32))
    assert main.shape == (1, 19, 8, 8) and aux == []


@pytest.mark.parametrize("size_in,size_out", [((12, 24), (8, 16)), ((9, 18), (4, 8)), ((5, 7), (2, 3)),
                                               ((3, 3), (8, 8))])
def test_matmul_pooling_equals_adaptive_avg_pool(size_in, size_out):
    x = torch.randn(2, 4, *size_in)
    assert torch.allclose(adaptive_avg_pool(x, size_out), F.adaptive_avg_pool2d(x, size_out), atol=1e-6)


def test_spp_grid_runs_along_the_short_side_keeping_aspect():
    spp = SpatialPyramidPooling()
    assert spp.grid_size(8, 12, 24) == (8, 16)
    assert spp.grid_size(8, 24, 12) == (16, 8)
    assert spp.grid_size(2, 12, 36) == (2, 6)
    assert sum(p.numel() for p in spp.fuse.parameters()) == 254 * 2 + 254 * 128


def test_lateral_skips_are_taken_before_the_relu(net):
    seen = []
    hook = net.upsample[2].register_forward_pre_hook(lambda m, args: seen.append(args[1]))
    with torch.no_grad():
        net(torch.randn(1, 3, 64, 64))
    hook.remove()
    assert seen[0].shape == (1, 64, 16, 16) and seen[0].min() < 0
