"""Replay a rosbag2 through the node: `ros2 bag play --clock`, the node, RViz, optional evaluation.

    ros2 launch gsvnet_ros replay.launch.py bag:=/data/seq_bag evaluate:=true report_path:=r.json

Everything runs on the bag's clock (use_sim_time). When the bag has been played, launch waits
`shutdown_delay_s` for the last frames, then shuts everything down; the evaluator writes its
report on shutdown (and after idle_timeout_s without messages).
"""
from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription,
                            LogInfo, OpaqueFunction, RegisterEventHandler, SetEnvironmentVariable,
                            Shutdown, TimerAction)
from launch.event_handlers import OnProcessExit
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node, SetParameter
from launch_ros.substitutions import FindPackageShare


# Fast DDS 2.x (Humble, Jazzy) reads only the first name, 3.x (Kilted and later) the second.
FASTDDS_PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")


def _fastdds_profile(context):
    """The bag player publishes the images: it needs the large-image profile most of all."""
    profile = LaunchConfiguration("fastdds_profile").perform(context)
    if not profile:
        return []
    return [SetEnvironmentVariable(name, profile) for name in FASTDDS_PROFILE_VARIABLES]


def _evaluator(context):
    """The evaluator node when evaluate:=true."""
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    if arg("evaluate") != "true":
        return []
    parameters = {"report_path": arg("report_path")}
    if arg("keyframe_interval"):  # used only without gsvnet_ros_msgs (distance from schedule)
        parameters["keyframe_interval"] = int(arg("keyframe_interval"))
    return [Node(
        package="gsvnet_ros",
        executable="segmentation_evaluator",
        name="segmentation_evaluator",
        output="screen",
        parameters=[parameters],
        remappings=[("camera/labels", arg("labels_topic"))],
    )]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("gsvnet_ros")
    # --clock takes an optional rate, so it must not come right before the bag path.
    bag_play = ExecuteProcess(
        cmd=["ros2", "bag", "play", LaunchConfiguration("bag"), "--rate",
             LaunchConfiguration("rate"), "--clock", "100", "--disable-keyboard-controls"],
        name="bag_play",
        output="screen",
    )
    return LaunchDescription([
        DeclareLaunchArgument("bag", description="rosbag2 folder to play (gsvnet-bag convert "
                                                 "writes one)"),
        DeclareLaunchArgument("rate", default_value="1.0", description="playback rate"),
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw",
                              description="image topic in the bag"),
        DeclareLaunchArgument("labels_topic", default_value="/camera/labels",
                              description="ground-truth trainIds (mono8) topic in the bag"),
        DeclareLaunchArgument("params_file",
                              default_value=PathJoinSubstitution([share, "config", "gsvnet.yaml"]),
                              description="ROS parameters of the node (YAML)"),
        DeclareLaunchArgument("config_file",
                              default_value=PathJoinSubstitution([share, "config", "swiftnet_r18.yaml"]),
                              description="model config with the weights to load (default: the "
                                          "shipped SwiftNet-R18); '' = the params file's"),
        DeclareLaunchArgument("device", default_value="",
                              description="auto, cpu, cuda or cuda:N (empty: params file)"),
        DeclareLaunchArgument("keyframe_interval", default_value="",
                              description="run the image network every N frames (empty: params "
                                          "file)"),
        DeclareLaunchArgument("rviz", default_value="true", choices=["true", "false"],
                              description="start RViz with config/gsvnet.rviz"),
        DeclareLaunchArgument("evaluate", default_value="false", choices=["true", "false"],
                              description="also run the evaluator (mIoU by keyframe distance)"),
        DeclareLaunchArgument("report_path", default_value="gsvnet_ros_eval.json",
                              description="where the evaluator writes its JSON report"),
        DeclareLaunchArgument("shutdown_delay_s", default_value="3.0",
                              description="seconds between the end of the bag and the shutdown"),
        DeclareLaunchArgument("fastdds_profile",
                              default_value=PathJoinSubstitution([share, "config",
                                                                  "fastdds_large_images.xml"]),
                              description="Fast DDS XML profile for full-size images (every "
                                          "process, the bag player first); '' = none"),
        OpaqueFunction(function=_fastdds_profile),
        SetParameter(name="use_sim_time", value=True),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch",
                                                                "segment.launch.py"])),
            launch_arguments={
                "image_topic": LaunchConfiguration("image_topic"),
                "params_file": LaunchConfiguration("params_file"),
                "config_file": LaunchConfiguration("config_file"),
                "device": LaunchConfiguration("device"),
                "keyframe_interval": LaunchConfiguration("keyframe_interval"),
                "use_sim_time": "true",
                "rviz": LaunchConfiguration("rviz"),
                "fastdds_profile": LaunchConfiguration("fastdds_profile"),
            }.items(),
        ),
        OpaqueFunction(function=_evaluator),
        bag_play,
        RegisterEventHandler(OnProcessExit(
            target_action=bag_play,
            on_exit=[
                LogInfo(msg="bag finished: shutting down after shutdown_delay_s"),
                TimerAction(period=LaunchConfiguration("shutdown_delay_s"),
                            actions=[Shutdown(reason="bag playback finished")]),
            ],
        )),
    ])
