"""SIGTERM and SIGINT during `gsvnet-bag segment`: one line on stderr, 143 / 130, nothing left."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from gsvnet_ros.bag import BagWriter
from gsvnet_ros.bag.typestore import IMAGE, make_header, make_image
from gsvnet_ros.cli import bench, demo, evaluate, export, flow_oracle, synth, train
from gsvnet_ros.cli.common import (SIGINT_STATUS, SIGTERM_STATUS, Terminated, interrupted,
                                   interruptible, sigterm_as_interrupt)
from gsvnet_ros.codec import encode_image

from bag_helpers import REPO

FRAMES = 1500  # about 20 s of keyframes at 64 x 64 on one thread: far longer than the test waits


@pytest.fixture(scope="module")
def long_bag(tmp_path_factory):
    bag = tmp_path_factory.mktemp("signals") / "long"
    frame = encode_image(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8),
                         "rgb8")
    with BagWriter(bag) as writer:
        writer.add_topic("/cam/image", IMAGE)
        for i in range(FRAMES):
            stamp = 1_700_000_000_000_000_000 + i * 50_000_000
            writer.write("/cam/image", stamp,
                         make_image(writer.typestore, make_header(writer.typestore, stamp, "cam"), frame))
    return bag


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a child of a shell's background job ignores it


@pytest.mark.parametrize("signum,status,name", [(signal.SIGTERM, SIGTERM_STATUS, "SIGTERM"),
                                                (signal.SIGINT, SIGINT_STATUS, "SIGINT")])
def test_a_signal_during_segment_leaves_nothing_and_exits_with_one_line(long_bag, tmp_path, signum,
                                                                        status, name):
    out, report = tmp_path / "out", tmp_path / "report.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO))
    process = subprocess.Popen(
        [sys.executable, "-m", "gsvnet_ros.cli.bag", "segment", str(long_bag), str(out), "--quiet",
         "--backend", "torch", "--device", "cpu", "--keyframe-interval", "1", "--report", str(report)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
        preexec_fn=_default_sigint)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "out.partial").exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "segment never started writing"
            time.sleep(0.01)
        time.sleep(0.2)  # well inside the frame loop
        assert process.poll() is None, "segment finished before the signal: make the bag longer"
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == status, stderr
    assert "Traceback" not in stderr + stdout
    assert stderr == f"gsvnet-bag: interrupted ({name}); no output written\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no out, out.partial, report


def test_sigterm_raises_terminated_in_the_main_thread_and_the_handler_is_restored():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated):
        with sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # interrupted at once
    assert signal.getsignal(signal.SIGTERM) is before
    assert issubclass(Terminated, KeyboardInterrupt)


def test_interrupted_prints_one_line_and_returns_128_plus_the_signal(capsys):
    assert interrupted("tool", Terminated(), "note") == SIGTERM_STATUS == 143
    assert interrupted("tool", KeyboardInterrupt()) == SIGINT_STATUS == 130
    assert capsys.readouterr().err == "tool: interrupted (SIGTERM); note\ntool: interrupted (SIGINT)\n"


def test_interruptible_turns_sigterm_into_one_line_and_status_143(capsys):
    @interruptible("tool", "partial run kept")
    def main(argv=None):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        return 0
    assert main([]) == SIGTERM_STATUS
    assert capsys.readouterr().err == "tool: interrupted (SIGTERM); partial run kept\n"


@pytest.mark.parametrize("module", [bench, demo, evaluate, export, flow_oracle, synth, train])
def test_every_long_running_cli_main_is_interruptible(module):
    assert module.main.__code__ is interruptible("x")(lambda argv=None: 0).__code__
    assert module.main.__wrapped__.__module__ == module.__name__
