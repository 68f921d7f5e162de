"""Full-size images between two processes over real Fast DDS, with the shipped profile.

With Fast DDS defaults a best-effort subscriber (the node's default input QoS) gets ~10 % of
2048x1024 rgb8 frames; config/fastdds_large_images.xml must get >= 90 % of them through, from a
best-effort and from a reliable publisher (docs/dds_delivery.md: 60 / 60 on a quiet machine). Two
processes per case, each ~10 s on the shared 2-core machine; late in the full suite they lose 4-7
frames in 100 (measured in `make test` runs), hence 90 % and not 99 %.
"""
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros
pytest.importorskip("rclpy")
pytest.importorskip("sensor_msgs.msg")

import delivery  # noqa: E402  (test/ros is on sys.path)

PROFILE = Path(__file__).resolve().parents[2] / "config" / "fastdds_large_images.xml"
NS = {"f": "http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"}
WIDTH, HEIGHT, RATE = 2048, 1024, 15.0
FRAMES = 100


@pytest.fixture
def domain_env(monkeypatch):
    """Children inherit a domain of this run (test/ros/conftest.py claims one) and localhost."""
    domain = os.environ.get("ROS_DOMAIN_ID") or str(os.getpid() % 90 + 10)
    monkeypatch.setenv("ROS_DOMAIN_ID", domain)
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def test_profile_is_the_default_participant_profile_with_a_large_shm_segment():
    root = ET.parse(PROFILE).getroot()
    descriptors = {d.findtext("f:transport_id", namespaces=NS): d
                   for d in root.iterfind("f:profiles/f:transport_descriptors/"
                                          "f:transport_descriptor", NS)}
    participants = root.findall("f:profiles/f:participant", NS)
    defaults = [p for p in participants if p.get("is_default_profile") == "true"]
    assert len(defaults) == 1
    rtps = defaults[0].find("f:rtps", NS)
    assert rtps.findtext("f:useBuiltinTransports", namespaces=NS) == "false"
    used = [t.text for t in rtps.iterfind("f:userTransports/f:transport_id", NS)]
    assert used and set(used) <= set(descriptors)
    kinds = {descriptors[t].findtext("f:type", namespaces=NS): descriptors[t] for t in used}
    assert set(kinds) == {"SHM", "UDPv4"}  # UDP stays: discovery, and peers without our /dev/shm
    # The writer's segment must hold a few full frames (the default 512 KiB holds none).
    segment = int(kinds["SHM"].findtext("f:segment_size", namespaces=NS))
    assert segment >= 4 * WIDTH * HEIGHT * 3


def test_child_environment_points_fast_dds_at_the_profile(monkeypatch):
    monkeypatch.setenv("FASTRTPS_DEFAULT_PROFILES_FILE", "/elsewhere.xml")
    env = delivery.child_environment(PROFILE)
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"] == str(PROFILE)
    if delivery._fastdds_major() != 3:
        # Fast DDS 2.14 (Jazzy) reads only this one: without it the profile is silently ignored.
        assert env["FASTRTPS_DEFAULT_PROFILES_FILE"] == str(PROFILE)
    else:
        assert "FASTRTPS_DEFAULT_PROFILES_FILE" not in env
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    none = delivery.child_environment("none")
    assert "FASTRTPS_DEFAULT_PROFILES_FILE" not in none
    assert "FASTDDS_DEFAULT_PROFILES_FILE" not in none


@pytest.mark.parametrize("publisher_reliability", ["best_effort", "reliable"])
def test_full_size_frames_reach_a_best_effort_subscriber(domain_env, publisher_reliability):
    result = delivery.measure(WIDTH, HEIGHT, RATE, FRAMES, publisher_reliability, PROFILE,
                              "best_effort")
    assert result["sent"] == FRAMES
    assert result["wrong_size"] == 0
    assert result["received"] >= 0.90 * FRAMES, result
