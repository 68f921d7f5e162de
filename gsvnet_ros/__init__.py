"""gsvnet_ros: GSVNet fast video semantic segmentation, a ROS-free core plus a ROS 2 node."""
__version__ = "0.1.0"
