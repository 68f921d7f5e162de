"""The `segmentation_node` console script as a process, started as segment.launch.py starts it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import launch_stand_in
from conftest import FASTDDS_PROFILE_VARIABLES, msgs_environment

STARTUP_S = 120.0  # first start imports torch and builds the model on a loaded 2-core machine


def start_node(tmp_path: Path, arguments: dict[str, str], params: dict) -> subprocess.Popen:
    """segmentation_node with the --ros-args and environment segment.launch.py gives it for
    these launch arguments, with `params` as its params_file; output on stdout (text)."""
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))
    node = launch_stand_in.node_process("segment.launch.py",
                                        {"params_file": str(params_file), **arguments}, tmp_path)
    env = msgs_environment()
    for name in FASTDDS_PROFILE_VARIABLES:  # what the node gets is what the launch file sets
        env.pop(name, None)
    env.update(node.env)
    env["PYTHONUNBUFFERED"] = "1"
    command = [str(Path(sys.executable).parent / node.executable), *node.ros_args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def stop(process: subprocess.Popen, sig: int) -> tuple[int, str]:
    """Send `sig`, wait (60 s at most); (exit code, everything the process printed)."""
    if process.poll() is None:
        process.send_signal(sig)
    try:
        out, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
        pytest.fail(f"the node did not exit within 60 s of signal {sig}:\n{out}")
    return process.returncode, out
