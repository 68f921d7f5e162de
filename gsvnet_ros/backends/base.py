"""The one small interface both inference backends implement: a keyframe step and a propagation step."""
from __future__ import annotations

import abc
import contextlib
from dataclasses import dataclass
from typing import Iterator, Optional

import torch

__all__ = ["Ahead", "Backend", "resolve_device", "torch_threads"]


@contextlib.contextmanager
def torch_threads(count: Optional[int]) -> Iterator[None]:
    """Run the block with torch's intra-op thread count at `count` for the calling thread (None or 0:
    unchanged), restored after. Costs well under a microsecond."""
    previous = torch.get_num_threads()
    if not count or count == previous:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def resolve_device(spec: str) -> torch.device:
    """Map a config device string ('auto', 'cpu', 'cuda', 'cuda:N') to a torch.device.

    'auto' picks the first CUDA device when one is present, else the CPU.
    """
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device '{spec}' was asked for but CUDA is not available; "
                           "expected 'auto' or 'cpu' on this machine")
    return device


@dataclass(frozen=True)
class Ahead:
    """Parts of a non-keyframe step computed before the previous frame's logits are known (None: not
    computed): the flow back to the previous frame and phi's intra logits, both at 1/8."""

    flow_1_8: Optional[torch.Tensor] = None
    intra_1_8: Optional[torch.Tensor] = None


class Backend(abc.ABC):
    """Runs GSVNet's two stateless steps; the stream owns every piece of temporal state.

    Tensors in and out live on ``self.device`` as float32: frames are RGB in [0, 1], shaped
    (1, 3, H, W) for keyframes and (1, 3, H/8, W/8) for propagation, with H and W multiples of 32;
    logits are (1, C, H/8, W/8).
    """

    name: str = "backend"
    model_name: str = ""
    num_classes: int = 0
    device: torch.device = torch.device("cpu")
    # torch intra-op threads for the stream's own tensor work around this backend's steps (None: as
    # configured). A backend whose networks run outside torch sets 1: see OnnxRuntimeBackend.
    glue_threads: Optional[int] = None

    @abc.abstractmethod
    def keyframe(self, frame: torch.Tensor) -> torch.Tensor:
        """Image network N on a full-resolution frame -> logits at 1/8 of the frame."""

    @abc.abstractmethod
    def propagate(self, frame_1_8: torch.Tensor, prev_frame_1_8: torch.Tensor,
                  prev_logits_1_8: torch.Tensor, ahead: Optional[Ahead] = None) -> torch.Tensor:
        """Flow, warp and guided spatially-varying convolution -> logits at 1/8 for this frame.

        `ahead`: what `ahead(frame_1_8, prev_frame_1_8)` computed beforehand (on another thread); what
        it lacks is computed here."""

    def ahead(self, frame_1_8: torch.Tensor, prev_frame_1_8: torch.Tensor, *, overlap: bool = True
              ) -> Optional[Ahead]:
        """The parts of a non-keyframe step that need no previous logits and that this backend can run
        before them (the host flow; ONNX Runtime also phi and the flow graph); None when there are none.
        `overlap`: the backend may run independent parts on a helper thread (False when the caller is
        itself a second thread, as in `VideoSegmenter.segment()`)."""
        return None

    @contextlib.contextmanager
    def pipelined(self) -> Iterator[None]:
        """The block runs this backend from two threads of the caller's own, as `VideoSegmenter.segment()`
        does (the next frame's `ahead` beside this frame's `propagate`); a backend may then run its steps
        on fewer threads of its own. Results are the same. Nothing changes by default."""
        yield

    def describe(self) -> str:
        """One line for logs: backend, keyframe network and device."""
        return f"{self.name} backend, {self.model_name}, {self.device}"
