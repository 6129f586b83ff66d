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


@pytest.fixture(scope="module")
def tiny_experiment():
  """The tiny config's CFN, its initial parameters and its input (4 bands of 8 mel bins over 0.5 s)."""
  from experiments.configs import tiny  # pylint: disable=g-import-not-at-top
  from shuffle_learn import pretext as pretext_lib  # pylint: disable=g-import-not-at-top
  config = tiny.get_config()
  pretext = pretext_lib.from_config(config)
  model = pretext.make_model(config)
  params = model.init(jax.random.key(0), pretext.patches(pretext.input.dummy()), train=False)
  return model, params, pretext.input


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
  """The workdir of a 2-step run of the tiny config (a checkpoint at step 2)."""
  from experiments.configs import tiny  # pylint: disable=g-import-not-at-top
  from shuffle_learn import train  # pylint: disable=g-import-not-at-top
  workdir = str(tmp_path_factory.mktemp("tiny_run"))
  config = tiny.get_config()
  config.train.num_steps = 2
  config.train.eval_every = 2
  train.train_and_evaluate(config, workdir)
  return workdir
