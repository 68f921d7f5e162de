"""Live segmentation: the GSVNet node on a camera topic, optionally with RViz.

    ros2 launch gsvnet_ros segment.launch.py image_topic:=/camera/image_raw device:=cuda

Launch arguments left empty do not override the params file (config/gsvnet.yaml by default).
config_file defaults to the shipped SwiftNet-R18 model (config/swiftnet_r18.yaml: its weights, flow
and stream settings); config_file:=config/bisenet_r18.yaml's path picks the other net, and
config_file:='' leaves it to the params file.
Every process this file starts loads config/fastdds_large_images.xml, the Fast DDS profile under
which full-size frames arrive with best-effort QoS (README, docs/dds_delivery.md); the camera
driver should load it too. `fastdds_profile:=''` leaves Fast DDS on its own settings.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def _int_argument(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise RuntimeError(f"launch argument {name}:={text!r}: expected an integer") from None


# Fast DDS 2.x (Humble, Jazzy) reads only the first name, 3.x (Kilted and later) the second.
FASTDDS_PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")


def _fastdds_profile(context):
    """Point Fast DDS at the profile for the processes started after this, unless it is ''."""
    profile = LaunchConfiguration("fastdds_profile").perform(context)
    if not profile:
        return []
    return [SetEnvironmentVariable(name, profile) for name in FASTDDS_PROFILE_VARIABLES]


def _segmentation_node(context):
    """The node, with overrides only for the launch arguments that were given."""
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    overrides = {"use_sim_time": arg("use_sim_time") == "true"}
    if arg("config_file"):
        overrides["config_file"] = arg("config_file")
    if arg("device"):
        overrides["device"] = arg("device")
    if arg("keyframe_interval"):
        overrides["keyframe_interval"] = _int_argument("keyframe_interval",
                                                       arg("keyframe_interval"))
    if arg("warmup_size"):
        overrides["warmup_size"] = arg("warmup_size")
    image_topic = arg("image_topic")
    return [Node(
        package="gsvnet_ros",
        executable="segmentation_node",
        name="segmentation_node",
        namespace=arg("namespace"),
        output="screen",
        parameters=[arg("params_file"), overrides],
        remappings=[("image", image_topic), ("image/compressed", image_topic + "/compressed")],
    )]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("gsvnet_ros")
    return LaunchDescription([
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw",
                              description="sensor_msgs/Image topic to segment "
                                          "(<topic>/compressed when subscribe_compressed)"),
        DeclareLaunchArgument("params_file",
                              default_value=PathJoinSubstitution([share, "config", "gsvnet.yaml"]),
                              description="ROS parameters of the node (YAML)"),
        DeclareLaunchArgument("config_file",
                              default_value=PathJoinSubstitution([share, "config", "swiftnet_r18.yaml"]),
                              description="model config with the weights to load (default: the "
                                          "shipped SwiftNet-R18); '' = the params file's"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
        DeclareLaunchArgument("device", default_value="",
                              description="auto, cpu, cuda or cuda:N (empty: params file)"),
        DeclareLaunchArgument("keyframe_interval", default_value="",
                              description="run the image network every N frames (empty: params "
                                          "file)"),
        DeclareLaunchArgument("warmup_size", default_value="",
                              description="WIDTHxHEIGHT of a synthetic frame segmented before the first "
                                          "image, e.g. the camera's 1024x512 (empty: params file)"),
        DeclareLaunchArgument("use_sim_time", default_value="false", choices=["true", "false"],
                              description="use /clock (true when replaying a bag)"),
        DeclareLaunchArgument("rviz", default_value="false", choices=["true", "false"],
                              description="start RViz with config/gsvnet.rviz"),
        DeclareLaunchArgument("fastdds_profile",
                              default_value=PathJoinSubstitution([share, "config",
                                                                  "fastdds_large_images.xml"]),
                              description="Fast DDS XML profile for full-size images (set in "
                                          "FASTRTPS_/FASTDDS_DEFAULT_PROFILES_FILE); '' = none"),
        OpaqueFunction(function=_fastdds_profile),
        OpaqueFunction(function=_segmentation_node),
        Node(
            package="rviz2",
            executable="rviz2",
            name="rviz2",
            arguments=["-d", PathJoinSubstitution([share, "config", "gsvnet.rviz"])],
            parameters=[{"use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"),
                                                        value_type=bool)}],
            condition=IfCondition(LaunchConfiguration("rviz")),
            output="log",
        ),
    ])
