"""Guided spatially-varying convolution (paper Sec. 3.4): shifts, intra net, edge map, guide, fusion."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["shift_offsets", "ideal_delay_kernels", "ShiftKernels", "IntraNet", "GuidingNet", "edge_map",
           "GuidedSpatiallyVaryingConv"]

_EPS = 1e-6  # unit-gain normalisation; representable in fp16 (the weights are normalised in fp32)


def shift_offsets(kernel_size: int) -> list[tuple[int, int]]:
    """(dy, dx) of each ideal-delay kernel; candidate d is S(c, y + dy, x + dx).

    3: identity + the 8 one-pixel neighbours (D = 9). 5: identity + the 8 one-pixel neighbours + the
    8 two-pixel ones along the same 8 directions (D = 17 of the 25 patterns, appendix B.2; the same
    order as the authors' initialisation). Neighbours are listed row-major.
    """
    ring1 = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    if kernel_size == 3:
        return [(0, 0)] + ring1
    if kernel_size == 5:
        return [(0, 0)] + ring1 + [(2 * dy, 2 * dx) for dy, dx in ring1]
    raise ValueError(f"ideal-delay kernel size must be 3 or 5, got {kernel_size}")


def ideal_delay_kernels(kernel_size: int) -> torch.Tensor:
    """One-hot kernels (D, 1, k, k) such that conv2d (cross-correlation) with kernel d shifts by offset d."""
    offsets = shift_offsets(kernel_size)
    kernels = torch.zeros(len(offsets), 1, kernel_size, kernel_size)
    r = kernel_size // 2
    for d, (dy, dx) in enumerate(offsets):
        kernels[d, 0, r + dy, r + dx] = 1.0
    return kernels


class ShiftKernels(nn.Module):
    """The D ideal-delay kernels, applied identically to every class channel with zero padding.

    Fixed kernels are a non-persistent buffer and run as pad + slicing (no arithmetic); learnable ones
    (Table A5) are an nn.Parameter initialised one-hot and run as a grouped-by-class conv.
    """

    def __init__(self, kernel_size: int = 3, learnable: bool = False) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.learnable = learnable
        self.offsets = shift_offsets(kernel_size)
        kernels = ideal_delay_kernels(kernel_size)
        if learnable:
            self.kernels = nn.Parameter(kernels)
        else:
            self.register_buffer("kernels", kernels, persistent=False)

    @property
    def num_kernels(self) -> int:
        return len(self.offsets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """All shifted copies, (B, C, h, w) -> (B, D, C, h, w)."""
        batch, classes = x.shape[0], x.shape[1]
        if self.learnable:
            out = F.conv2d(x.reshape(-1, 1, *x.shape[-2:]), self.kernels, padding=self.kernel_size // 2)
            return out.reshape(batch, classes, -1, *x.shape[-2:]).transpose(1, 2)
        padded = self._pad(x)
        return torch.stack([self._slice(padded, dy, dx) for dy, dx in self.offsets], dim=1)

    def weighted_sum(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """sum_d weights[:, d] * shift_d(x): (B, C, h, w), (B, D, h, w) -> (B, C, h, w)."""
        if self.learnable:
            return (self.forward(x) * weights.unsqueeze(2)).sum(dim=1)
        padded = self._pad(x)
        out = x * weights[:, :1]
        for d, (dy, dx) in enumerate(self.offsets[1:], start=1):
            # mul + add, not addcmul: the ONNX exporter writes addcmul as three ops (an extra x 1)
            out = out + weights[:, d:d + 1] * self._slice(padded, dy, dx)
        return out

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        r = self.kernel_size // 2
        return F.pad(x, (r, r, r, r))

    def _slice(self, padded: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
        # static slice bounds only, so traced graphs keep dynamic h, w
        r = self.kernel_size // 2
        y_end = dy - r if dy - r < 0 else None
        x_end = dx - r if dx - r < 0 else None
        return padded[:, :, r + dy:y_end, r + dx:x_end]


class IntraNet(nn.Module):
    """phi: 3x3 3->32 BN ReLU, 3x3 32->32 BN ReLU, 3x3 32->C; every conv with bias (15,763 for C=19)."""

    def __init__(self, num_classes: int, width: int = 32) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, num_classes, 3, padding=1))

    def forward(self, frame_1_8: torch.Tensor) -> torch.Tensor:
        return self.layers(frame_1_8)


def _conv_bn_relu(in_ch: int, out_ch: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, stride, 1), nn.BatchNorm2d(out_ch), nn.ReLU())


class GuidingNet(nn.Module):
    """G: a = 3x3 ->32; b = two 3x3 stride-2 (64, 128); c = up, 3x3 ->64, up, 3x3 ->32; d = 3x3 (a + c) ->K,
    BN, ReLU (non-negative). Every conv has a bias; 194,241 parameters for C=19, K=11."""

    def __init__(self, in_ch: int, num_weights: int, width: int = 32) -> None:
        super().__init__()
        self.a = _conv_bn_relu(in_ch, width)
        self.b = nn.Sequential(_conv_bn_relu(width, 2 * width, 2), _conv_bn_relu(2 * width, 4 * width, 2))
        self.c1 = _conv_bn_relu(4 * width, 2 * width)
        self.c2 = _conv_bn_relu(2 * width, width)
        self.d = _conv_bn_relu(width, num_weights)

    @staticmethod
    def _up2(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.a(x)
        c = self.c2(self._up2(self.c1(self._up2(self.b(a)))))
        return self.d(a + c)


def edge_map(warped: torch.Tensor, laplacian: torch.Tensor, mode: str = "binary",
             labels: torch.Tensor | None = None) -> torch.Tensor:
    """E (Sec. 3.4.3): Laplacian of argmax(S^-) as a float map (zero padding); binary (E != 0) or sigmoid.

    No gradient flows through it. laplacian: (1, 1, 3, 3). labels: argmax(S^-) as (B, 1, h, w) floats when
    the caller has them (the ONNX backend computes them on the host, `labels_kernel`).
    """
    if labels is None:
        labels = warped.detach().argmax(dim=1, keepdim=True)
    labels = labels.to(warped.dtype)
    response = F.conv2d(labels, laplacian.to(warped.dtype), padding=1)
    if mode == "binary":
        return (response != 0).to(warped.dtype)
    if mode == "sigmoid":
        return torch.sigmoid(response)
    raise ValueError(f"edge mode must be 'binary' or 'sigmoid', got {mode!r}")


class GuidedSpatiallyVaryingConv(nn.Module):
    """S(c, x, y) = sum_k w_k(x, y) cand_k(c, x, y) (Eq. 2), one per-pixel 1x1 kernel shared by all classes.

    Candidates, in weight order: the D shifted copies of S^- (identity first), an all-zero map when
    fusion == "code" (lets the gain drop below 1), then the intra prediction f_i = phi(I_t) when
    use_intra. Without intra (Table 4) there is no phi: the guide sees cat(S^-, E) instead of
    cat(f_i, E) (same C + 1 input width) and f_i is not a candidate, so K = D (+ 1 for "code").
    """

    def __init__(self, num_classes: int, kernel_size: int = 3, learnable_kernels: bool = False,
                 fusion: str = "code", edge: str = "binary", use_intra: bool = True) -> None:
        super().__init__()
        if fusion not in ("paper", "code"):
            raise ValueError(f"fusion must be 'paper' or 'code', got {fusion!r}")
        if edge not in ("binary", "sigmoid"):
            raise ValueError(f"edge must be 'binary' or 'sigmoid', got {edge!r}")
        self.fusion, self.edge_mode, self.use_intra = fusion, edge, use_intra
        self.shifts = ShiftKernels(kernel_size, learnable_kernels)
        self.num_weights = self.shifts.num_kernels + (fusion == "code") + use_intra
        self.intra = IntraNet(num_classes) if use_intra else None
        self.guide = GuidingNet(num_classes + 1, self.num_weights)
        laplacian = torch.ones(1, 1, 3, 3)
        laplacian[0, 0, 1, 1] = -8.0
        self.register_buffer("laplacian", laplacian, persistent=False)
        for m in self.modules():  # the authors' init: xavier-normal conv weights
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_normal_(m.weight)

    def guide_weights(self, warped: torch.Tensor, guide_features: torch.Tensor,
                      labels: torch.Tensor | None = None) -> torch.Tensor:
        """Unit-gain per-pixel weights w = d / (sum_k d_k + eps), (B, K, h, w); not a softmax. labels: the
        edge map's argmax(S^-), when already computed."""
        edges = edge_map(warped, self.laplacian, self.edge_mode, labels)
        raw = self.guide(torch.cat((guide_features, edges), dim=1)).float()
        return (raw / (raw.sum(dim=1, keepdim=True) + _EPS)).to(warped.dtype)

    def fuse(self, warped: torch.Tensor, weights: torch.Tensor, intra: torch.Tensor | None) -> torch.Tensor:
        """Eq. 2 over the candidate list; the all-zero candidate adds nothing but takes weight."""
        out = self.shifts.weighted_sum(warped, weights[:, :self.shifts.num_kernels])
        if intra is not None:
            out = out + weights[:, -1:] * intra
        return out

    def fuse_inference(self, warped: torch.Tensor, weights: torch.Tensor, intra: torch.Tensor | None
                       ) -> torch.Tensor:
        """`fuse` for inference outside autograd (the ONNX Runtime backend's host sum): one in-place
        multiply-add (addcmul_) per candidate instead of a multiply, an add and a temporary; 0.25 instead
        of 0.42 ms at 1024x512 on one thread. The kernel may fuse each multiply-add, so it can round
        differently from `fuse` (6e-6 on logits of magnitude ~10)."""
        if self.shifts.learnable:
            return self.fuse(warped, weights, intra)
        padded = self.shifts._pad(warped)
        out = warped * weights[:, :1]
        for d, (dy, dx) in enumerate(self.shifts.offsets[1:], start=1):
            out.addcmul_(weights[:, d:d + 1], self.shifts._slice(padded, dy, dx))
        if intra is not None:
            out.addcmul_(weights[:, -1:], intra)
        return out

    def forward(self, warped: torch.Tensor, frame_1_8: torch.Tensor) -> torch.Tensor:
        """warped: S^- (B, C, h, w) logits; frame_1_8: normalised I_t (B, 3, h, w). Returns S_t."""
        intra = self.intra(frame_1_8) if self.intra is not None else None
        weights = self.guide_weights(warped, intra if intra is not None else warped)
        return self.fuse(warped, weights, intra)
