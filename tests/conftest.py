"""Fixtures shared by the tests."""

import zlib

import jax
import numpy as np
import pytest


@pytest.fixture
def rng(request):
  """A generator seeded by the test's name: reproducible across runs and workers.

  The ranking path is left out of the name, so that every path gets the same data.
  """
  name = request.node.name
  if "ranking_path" in request.fixturenames:
    path = request.getfixturevalue("ranking_path")
    name = name.replace(f"[{path}-", "[").replace(f"[{path}]", "")
  return np.random.default_rng(zlib.crc32(name.encode()))


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


@pytest.fixture(scope="module", params=("dense", "cpu", "accelerator"))
def ranking_path(request):
  """Runs a test once on each path of the ranking ops, forced at every n.

  The paths (`shuffle_learn.ranking._paths`) are chosen by n, batch and backend
  inside the ops; forcing them runs on CPU the code that GPUs and TPUs run.
  Module-scoped, so pytest groups the tests of a path together and JAX's caches
  are cleared once per path.
  """
  from shuffle_learn.ranking import _paths  # pylint: disable=g-import-not-at-top
  with _paths.force_path(request.param):
    yield request.param
