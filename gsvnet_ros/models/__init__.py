"""GSVNet model core (torch only): image nets, flow net, warp, guided spatially-varying conv, weights I/O."""
from .bisenet import BiSeNetR18
from .flownet import FlowNetHFFB
from .gsv import GuidedSpatiallyVaryingConv
from .gsvnet import GSVNet, build_gsvnet, check_frame_size
from .keyframe_nets import KEYFRAME_NETS, build_keyframe_net
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, downsample_1_8, normalize, resize_to_scale, scaled_size
from .resnet import ResNet18
from .swiftnet import SwiftNetR18
from .warp import backward_warp
from .weights import (WeightsCorruptError, WeightsError, WeightsMismatchError, WeightsNotFoundError,
                      load_weights, part_state_dict, read_weights, save_weights, weights_meta)

__all__ = [
    "BiSeNetR18", "FlowNetHFFB", "GSVNet", "GuidedSpatiallyVaryingConv", "IMAGENET_MEAN", "IMAGENET_STD",
    "KEYFRAME_NETS", "ResNet18", "SwiftNetR18", "WeightsCorruptError", "WeightsError", "WeightsMismatchError",
    "WeightsNotFoundError", "backward_warp", "build_gsvnet", "build_keyframe_net", "check_frame_size",
    "downsample_1_8", "load_weights", "normalize", "part_state_dict", "read_weights", "resize_to_scale",
    "save_weights", "scaled_size", "weights_meta",
]
