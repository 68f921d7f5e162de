"""BiSeNet-R18 (TorchSeg variant): parameter count, stride-8 logits, training-only auxiliary heads."""
import pytest
import torch

from gsvnet_ros.models.bisenet import BiSeNetR18

# exact count for C=19 without the two auxiliary heads (MODEL_SPEC: about 12.9 M)
BISENET_R18_PARAMS = 12_894_163


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return BiSeNetR18(19).eval()


def test_parameter_count_without_aux_heads(net):
    total = sum(p.numel() for p in net.parameters())
    aux = sum(p.numel() for p in net.aux_heads.parameters())
    assert total - aux == BISENET_R18_PARAMS
    assert abs(total - aux - 12.9e6) / 12.9e6 < 0.01
    assert aux == 2 * (128 * 256 * 9 + 2 * 256 + 256 * 19 + 19)


def test_logits_at_stride_8(net):
    with torch.no_grad():
        out = net(torch.randn(1, 3, 64, 128))
    assert out.shape == (1, 19, 8, 16)
    assert torch.isfinite(out).all()


def test_forward_train_returns_main_and_two_aux_logits(net):
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        main, aux = net.forward_train(x)
        assert torch.allclose(main, net(x))
    assert len(aux) == 2 and all(a.shape == main.shape == (2, 19, 8, 8) for a in aux)


def test_parameter_groups_split_backbone_and_heads(net):
    backbone = {id(p) for p in net.backbone_parameters()}
    heads = {id(p) for p in net.head_parameters()}
    assert not backbone & heads
    assert backbone | heads == {id(p) for p in net.parameters()}
