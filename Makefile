# Two commands on a fresh clone: `make test` and `make demo` (README.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ROS_STAMP := $(VENV)/.ros-installed
ROS_REQUIREMENTS := test/requirements/ros-jazzy.txt

.PHONY: test test-all test-cuda demo bench setup clean

setup: $(STAMP)

# torch is pinned to the CPU build on this machine's disk (DEVELOPERS.md); install it first so the
# package's torch range is already satisfied and pip never pulls a multi-GB CUDA build.
$(STAMP): setup.py setup.cfg
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "torch==2.13.0"
	$(PY) -m pip install -q --disable-pip-version-check -e ".[test,batch]"
	touch $(STAMP)

# Test-only: real ROS 2 Jazzy wheels for the ROS-layer tests, listed in $(ROS_REQUIREMENTS):
# ros-jazzy-rclpy[fastrtps] (rclpy over Fast DDS), ros-jazzy-sensor-msgs, ros-jazzy-std-msgs,
# ros-jazzy-std-srvs, ros-jazzy-diagnostic-msgs, ros-jazzy-rcl-interfaces, ros-jazzy-rosgraph-msgs,
# and the colcon / ament / rosidl wheels that build the test interface packages.
$(ROS_STAMP): $(STAMP) $(ROS_REQUIREMENTS)
	$(PY) -m pip install -q --disable-pip-version-check -r $(ROS_REQUIREMENTS)
	touch $(ROS_STAMP)

test: $(STAMP) $(ROS_STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP) $(ROS_STAMP)
	$(PY) -m pytest -q -m "not cuda"

# The GPU paths against the CPU (test/cuda), on a machine with a CUDA GPU. The venv holds the CPU build of
# torch, so this runs CUDA_PYTHON, an interpreter with a CUDA build of torch and the package's
# dependencies, on this checkout. test/cuda/gpu_check.sh adds the bench on the GPU and the demo.
CUDA_PYTHON ?= python3
test-cuda:
	PYTHONPATH=$(CURDIR) $(CUDA_PYTHON) -m pytest -q -s -m cuda test/cuda -p no:cacheprovider

bench: $(STAMP)
	$(VENV)/bin/gsvnet-bench

demo: $(STAMP)
	$(PY) -m gsvnet_ros.cli.demo

clean:
	rm -rf $(VENV) build *.egg-info out
