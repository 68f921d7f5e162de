"""Named errors of the rosbag2 tools; the CLI prints each as one line and exits with status 2."""
from __future__ import annotations

__all__ = [
    "BagError",
    "BagNotFoundError",
    "BagMetadataError",
    "BagCorruptError",
    "TopicError",
    "NoImageTopicError",
    "BagImageError",
    "SourceError",
    "OutputExistsError",
    "OutputPathError",
    "MsgDefinitionError",
    "SegmenterError",
    "BatchError",
]


class BagError(Exception):
    """Base class: a bag, a source or an output path is not what the tools expect."""


class BagNotFoundError(BagError):
    """The bag path does not exist."""


class BagMetadataError(BagError):
    """metadata.yaml is missing, unreadable, or describes something the reader cannot open."""


class BagCorruptError(BagError):
    """The storage file is truncated or corrupt (open, read or deserialisation failed)."""


class TopicError(BagError):
    """A topic asked for is absent, of the wrong type, or ambiguous."""


class NoImageTopicError(TopicError):
    """The bag holds no sensor_msgs/msg/Image or CompressedImage topic."""


class BagImageError(BagError):
    """An image message in the bag cannot be decoded (unknown encoding, bad size or data)."""


class SourceError(BagError):
    """The input of `convert` is not a Cityscapes-layout sequence, dataset root or video."""


class OutputExistsError(BagError):
    """An output path exists already and --overwrite was not given (or it is not ours to replace)."""


class OutputPathError(BagError):
    """An output path cannot be created or written (its folder is a file, read-only, ...)."""


class MsgDefinitionError(BagError):
    """msg/SegmentationInfo.msg cannot be found (neither in a source checkout nor installed)."""


class SegmenterError(BagError):
    """The segmenter cannot be built (config, weights, device) or failed on a frame."""


class BatchError(BagError):
    """`gsvnet-bag batch` cannot start: Ray is missing, the cluster cannot be reached, or its
    workers cannot be placed or built."""
