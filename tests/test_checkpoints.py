"""Faults a long run meets: damaged checkpoints and configs, and the trace count of the steps."""

import logging
import os

import chex
import jax
import numpy as np
import pytest

from experiments.configs import tiny
from shuffle_learn import checkpoints
from shuffle_learn import parallel
from shuffle_learn import train


def tiny_config(num_steps=12):
  config = tiny.get_config()
  config.train.num_steps = num_steps
  config.train.checkpoint_every = 5
  config.train.eval_every = 6
  config.train.log_every = 3
  return config


def params_of(workdir, step=None):
  return checkpoints.load_checkpoint(workdir, step)[1]


def damage(workdir, step, how):
  """Damages every file of a checkpoint's state item: truncated to half, or overwritten with random bytes."""
  root = os.path.join(checkpoints.step_dir(workdir, step), "state")
  files = [os.path.join(d, f) for d, _, names in os.walk(root) for f in names]
  assert files
  for path in files:
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
      if how == "truncate":
        f.truncate(size // 2)
      else:
        f.write(np.random.default_rng(0).bytes(max(size, 16)))


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
  """An uninterrupted 12-step run: checkpoints at 5, 10 and 12."""
  workdir = str(tmp_path_factory.mktemp("whole"))
  train.train_and_evaluate(tiny_config(), workdir)
  return workdir


@pytest.mark.parametrize("how", ["truncate", "garbage"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_newest_intact_one(whole, tmp_path, caplog, how):
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(tiny_config(), workdir, stop_after=12)
  damage(workdir, 12, how)
  with caplog.at_level(logging.WARNING, logger="shuffle_learn.checkpoints"):
    summary = train.train_and_evaluate(tiny_config(), workdir)
  text = caplog.text
  assert f"checkpoint {checkpoints.step_dir(workdir, 12)} is damaged" in text
  assert f"restored the newest intact checkpoint, {checkpoints.step_dir(workdir, 10)}" in text
  # The damaged step is kept aside, and the run redid steps 11 and 12 exactly.
  assert os.path.isdir(os.path.join(workdir, checkpoints.DAMAGED_DIR, "12"))
  assert summary["step"] == 12
  chex.assert_trees_all_equal(params_of(workdir), params_of(whole))


def test_a_write_cut_short_by_a_crash_is_not_a_checkpoint(whole, tmp_path):
  """Orbax writes a step under a temporary name and renames it when complete: a crash leaves no step 12."""
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(tiny_config(num_steps=10), workdir)
  partial = os.path.join(workdir, checkpoints.CHECKPOINT_DIR, "12.orbax-checkpoint-tmp-1764892800")
  os.makedirs(os.path.join(partial, "state"))
  with open(os.path.join(partial, "state", "half_written"), "wb") as f:
    f.write(b"\0" * 100)
  assert checkpoints.load_checkpoint(workdir)[2] == 10
  assert train.train_and_evaluate(tiny_config(), workdir)["step"] == 12
  chex.assert_trees_all_equal(params_of(workdir), params_of(whole))


def test_loading_a_damaged_step_names_its_directory(tmp_path):
  workdir = str(tmp_path)
  train.train_and_evaluate(tiny_config(num_steps=10), workdir)
  damage(workdir, 10, "truncate")
  with pytest.raises(ValueError, match=f"{checkpoints.step_dir(workdir, 10)} "):
    checkpoints.load_checkpoint(workdir, 10)
  # The newest intact step serves a load without a step.
  assert checkpoints.load_checkpoint(workdir)[2] == 5


def test_no_intact_checkpoint_stops_the_run_naming_every_step(tmp_path):
  workdir = str(tmp_path)
  train.train_and_evaluate(tiny_config(num_steps=10), workdir)
  for step in (5, 10):
    damage(workdir, step, "garbage")
  with pytest.raises(ValueError, match="no intact checkpoint to restore") as error:
    train.train_and_evaluate(tiny_config(num_steps=10), workdir)
  for step in (5, 10):
    assert checkpoints.step_dir(workdir, step) in str(error.value)


def test_a_damaged_config_file_is_named(tmp_path):
  workdir = str(tmp_path)
  train.train_and_evaluate(tiny_config(num_steps=2), workdir)
  with open(os.path.join(workdir, checkpoints.CONFIG_FILE), "w") as f:
    f.write('{"seed": 0, "data": {')
  with pytest.raises(ValueError, match="config.json is not a readable config"):
    checkpoints.load_checkpoint(workdir)
  with pytest.raises(ValueError, match="config.json is not a readable config"):
    train.train_and_evaluate(tiny_config(num_steps=2), workdir)


def test_the_train_step_is_traced_once_and_a_retrace_fails():
  experiment = train.build(tiny.get_config())
  chex.clear_trace_counter()
  step = experiment.jit_train_step()
  state = experiment.init(0)
  batch = parallel.device_batch(experiment.pretext.input, experiment.mesh, {"audio": experiment.pretext.input.dummy(8)})
  for i in range(3):
    state, _ = step(state, batch, jax.random.key(i))
  bigger = parallel.device_batch(experiment.pretext.input, experiment.mesh,
                                 {"audio": experiment.pretext.input.dummy(16)})
  with pytest.raises(AssertionError, match="traced > 1 times"):
    step(state, bigger, jax.random.key(0))


def test_an_exported_model_loads_as_its_run(whole, tmp_path):
  out = str(tmp_path / "exported")
  assert checkpoints.export(whole, out) == 12
  assert sorted(os.listdir(out)) == ["config.json", "params.msgpack", "step.json"]
  config, params, step = checkpoints.load_checkpoint(whole)
  config_e, params_e, step_e = checkpoints.load_checkpoint(out)
  assert step_e == step and config_e == config
  chex.assert_trees_all_equal(params_e, params)
  assert all(isinstance(x, np.ndarray) for x in jax.tree.leaves(params_e))
  assert checkpoints.load_checkpoint(out, 12)[2] == 12
  with pytest.raises(FileNotFoundError, match="no checkpoint at step 10 .*exported model of step 12"):
    checkpoints.load_checkpoint(out, 10)
  with open(os.path.join(out, "params.msgpack"), "r+b") as f:
    f.truncate(100)
  with pytest.raises(ValueError, match="exported.*damaged exported model"):
    checkpoints.load_checkpoint(out)


def test_the_shipped_model_path_says_when_it_is_missing(tmp_path, monkeypatch):
  from shuffle_learn import pretrained  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(pretrained, "DIRECTORY", str(tmp_path))
  with pytest.raises(FileNotFoundError, match="shipped model is missing"):
    pretrained.path()
