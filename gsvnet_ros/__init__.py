"""gsvnet_ros: GSVNet fast video semantic segmentation, a ROS-free core plus a ROS 2 node."""
import os as _os

__version__ = "0.1.0"

# torch's OpenMP workers (GNU libgomp) keep spinning for a long while after each parallel region,
# and in the stream they then hold the cores that ONNX Runtime's threads need for the next graph.
# A short spin still covers the gap between two consecutive torch ops. Measured at 1024x512 on the
# 2-core dev CPU (gsvnet-bench, ONNX Runtime fp32, 2 threads): non-keyframe 18.1 -> 16.0 ms,
# keyframe 146.5 -> 144.0 ms; training speed unchanged.
# libgomp reads this when torch is first imported, so it only applies where gsvnet_ros comes first
# (every gsvnet-* command and the ROS node); a value the user has set is kept.
_os.environ.setdefault("GOMP_SPINCOUNT", "10000")
