"""Fixtures shared by the tests."""

import zlib

import jax
import numpy as np
import pytest


@pytest.fixture
def rng(request):
  """A generator seeded by the test's name: reproducible across runs and workers."""
  return np.random.default_rng(zlib.crc32(request.node.name.encode()))


@pytest.fixture
def x64():
  """float64 for one test; the previous setting is restored after it."""
  with jax.enable_x64(True):
    yield
