"""Fixtures for the rosbag2 tool tests."""
import pytest

from bag_helpers import write_sequence


@pytest.fixture
def dataset(tmp_path):
    """A Cityscapes-layout dataset root with 2 snippets of frames 17-19, dense and sparse labels."""
    root = tmp_path / "cityscapes"
    return root, write_sequence(root)
