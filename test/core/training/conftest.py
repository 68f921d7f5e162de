"""Fixtures of the training tests: a tiny fake dataset; global torch/RNG state restored after each test."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from training_helpers import write_fake_cityscapes


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    return write_fake_cityscapes(tmp_path / "data", {"train": 2, "val": 1})


@pytest.fixture(autouse=True)
def _restore_global_state():
    """Trainers set the torch thread count and seed every RNG; later test modules must not notice."""
    threads, torch_rng = torch.get_num_threads(), torch.get_rng_state()
    numpy_rng, python_rng = np.random.get_state(), random.getstate()
    yield
    torch.set_num_threads(threads)
    torch.set_rng_state(torch_rng)
    np.random.set_state(numpy_rng)
    random.setstate(python_rng)
