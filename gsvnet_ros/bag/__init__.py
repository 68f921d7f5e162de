"""rosbag2 tools without ROS: read/write bags with `rosbags`, convert sequences, segment bags offline.

Nothing here imports torch at import time; bag.segment.build_segmenter() loads it on demand.
bag.batch (`gsvnet-bag batch`) imports Ray, the optional extra, only when a batch runs.
"""
from .convert import ConvertOptions, ConvertSummary, convert, find_sequence_frames
from .errors import (BagCorruptError, BagError, BagImageError, BagMetadataError, BagNotFoundError,
                     BatchError, MsgDefinitionError, NoImageTopicError, OutputExistsError,
                     OutputPathError, SegmenterError, SourceError, TopicError)
from .info import BagInfo, bag_info, format_info
from .reader import BagMessage, BagReader, TopicSummary
from .segment import SegmentOptions, SegmentResult, build_segmenter, segment_bag
from .typestore import SEGMENTATION_INFO, build_typestore, find_msg_dir
from .writer import BagWriter, StagedPath

__all__ = [
    "BagCorruptError",
    "BagError",
    "BagImageError",
    "BagInfo",
    "BagMessage",
    "BagMetadataError",
    "BagNotFoundError",
    "BagReader",
    "BagWriter",
    "BatchError",
    "ConvertOptions",
    "ConvertSummary",
    "MsgDefinitionError",
    "NoImageTopicError",
    "OutputExistsError",
    "OutputPathError",
    "SEGMENTATION_INFO",
    "SegmentOptions",
    "SegmentResult",
    "SegmenterError",
    "SourceError",
    "StagedPath",
    "TopicError",
    "TopicSummary",
    "bag_info",
    "build_segmenter",
    "build_typestore",
    "convert",
    "find_msg_dir",
    "find_sequence_frames",
    "format_info",
    "segment_bag",
]
