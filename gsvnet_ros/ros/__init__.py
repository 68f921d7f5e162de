"""The ROS 2 layer: the only package that imports rclpy and ROS message packages.

`node` (SegmentationNode, console script `segmentation_node`), `evaluator` (replay evaluation),
`params` (the parameter table), `messages` (message builders); `stats` is pure Python.
Importing this package itself imports nothing from ROS.
"""
