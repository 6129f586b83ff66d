"""Tests of pre-training: end to end, data parallel, exact resume, bad configs."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from experiments.configs import default
from experiments.configs import paper
from experiments.configs import tiny
from shuffle_learn import checkpoints
from shuffle_learn import metrics
from shuffle_learn import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(**overrides):
  config = tiny.get_config()
  for field, value in overrides.items():
    parent, name = field.split("__")
    config[parent][name] = value
  return config


def params_of(workdir, step=None):
  return checkpoints.load_checkpoint(workdir, step)[1]


def assert_same_params(a, b):
  """The same tree structure, shapes and dtypes, and bit-identical values."""
  chex.assert_trees_all_equal_shapes_and_dtypes(a, b)
  chex.assert_trees_all_equal(a, b)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("tiny"))
  return workdir, train.train_and_evaluate(tiny_config(), workdir)


def test_tiny_run_learns_the_pretext_task_above_chance(tiny_run):
  workdir, summary = tiny_run
  config = tiny_config()
  assert summary["step"] == config.train.num_steps
  assert summary["chance"] == 1 / 4
  # 40 validation notes x 4 bands with fixed permutations: chance is 0.25 +- 0.04.
  assert summary["valid"]["partial_ranks_accuracy"] >= summary["chance"] + 0.08
  history = metrics.read_metrics(workdir)
  losses = [v for _, v in history["train/loss"]]
  # The perturbed F-Y loss tends to 0 only as the scores grow against sigma
  # (1.0 here): 60 steps take it down by about a third, not to 0.
  assert losses[-1] < 0.75 * losses[0]
  assert [s for s, _ in history["valid/partial_ranks_accuracy"]] == [20, 40, 60]
  assert summary["steps_per_second"] > 0 and summary["examples_per_second"] == pytest.approx(
      8 * summary["steps_per_second"])


def test_tiny_run_leaves_config_checkpoints_and_tensorboard(tiny_run):
  workdir, _ = tiny_run
  config, params, step = checkpoints.load_checkpoint(workdir)
  assert step == 60 and config.to_dict() == tiny_config().to_dict()
  assert sorted(os.listdir(os.path.join(workdir, checkpoints.CHECKPOINT_DIR))) == ["30", "60"]
  assert checkpoints.load_checkpoint(workdir, 30)[2] == 30
  with pytest.raises(FileNotFoundError, match="no checkpoint at step 7"):
    checkpoints.load_checkpoint(workdir, 7)
  events = os.listdir(os.path.join(workdir, "tensorboard"))
  assert any(name.startswith("events.out.tfevents") for name in events)
  # The parameters apply to the config's model.
  experiment = train.build(config)
  x = experiment.pretext.patches(experiment.pretext.input.dummy(2))
  assert experiment.model.apply(params, x, method=type(experiment.model).embed).shape == (2, 64)


def test_load_checkpoint_of_a_non_run(tmp_path):
  with pytest.raises(FileNotFoundError, match="not a training workdir"):
    checkpoints.load_checkpoint(str(tmp_path))


@pytest.mark.parametrize("loss", ["fast_soft_rank", "mse", "fixed_permutation"])
def test_every_objective_trains(tmp_path, loss):
  config = tiny_config(pretext__loss=loss, pretext__num_permutations=24, train__num_steps=10, train__eval_every=10)
  summary = train.train_and_evaluate(config, str(tmp_path))
  assert np.isfinite(summary["valid"]["loss"])
  assert 0 <= summary["valid"]["partial_ranks_accuracy"] <= 1
  losses = [v for _, v in metrics.read_metrics(str(tmp_path))["train/loss"]]
  assert all(np.isfinite(losses))


def test_interrupted_run_resumes_to_the_uninterrupted_parameters(tmp_path):
  # Stopped at step 7 (checkpoints at 5 and 7), then resumed to 12.
  config = tiny_config(train__num_steps=12, train__checkpoint_every=5, train__eval_every=6, train__log_every=3)
  whole, parts = str(tmp_path / "whole"), str(tmp_path / "parts")
  train.train_and_evaluate(config, whole)
  first = train.train_and_evaluate(config, parts, stop_after=7)
  assert first["step"] == 7
  assert sorted(os.listdir(os.path.join(parts, checkpoints.CHECKPOINT_DIR))) == ["5", "7"]
  second = train.train_and_evaluate(config, parts)
  assert second["step"] == 12
  assert_same_params(params_of(parts), params_of(whole))
  # Metrics: each step once; the stop adds a row at step 7; validation is as uninterrupted.
  resumed, uninterrupted = metrics.read_metrics(parts), metrics.read_metrics(whole)
  assert [s for s, _ in resumed["train/loss"]] == [3, 6, 7, 9, 12]
  assert resumed["train/loss"][:2] == uninterrupted["train/loss"][:2]
  assert resumed["train/loss"][-1] == uninterrupted["train/loss"][-1]
  assert resumed["valid/partial_ranks_accuracy"] == uninterrupted["valid/partial_ranks_accuracy"]
  assert resumed["valid/loss"] == uninterrupted["valid/loss"]


def test_killed_process_resumes_to_the_uninterrupted_parameters(tmp_path):
  """SIGKILL a training process after its checkpoint at step >= 10, restart it, compare with an uninterrupted run."""
  killed = str(tmp_path / "killed")
  overrides = ["--config.train.checkpoint_every=5", "--config.train.eval_every=1000", "--config.train.log_every=5"]
  command = [sys.executable, "-m", "shuffle_learn.train", "--config", "experiments/configs/tiny.py",
             "--workdir", killed, "--config.train.num_steps=100000"] + overrides
  process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  checkpoint_dir = os.path.join(killed, checkpoints.CHECKPOINT_DIR)
  deadline = time.time() + 240
  try:
    while time.time() < deadline and process.poll() is None:
      done = [int(d) for d in os.listdir(checkpoint_dir) if d.isdigit()] if os.path.isdir(checkpoint_dir) else []
      if done and max(done) >= 10:
        break
      time.sleep(0.05)
    assert process.poll() is None, "the training process ended before it was killed"
    process.send_signal(signal.SIGKILL)
  finally:
    process.kill()
    process.wait()
  latest = max(int(d) for d in os.listdir(checkpoint_dir) if d.isdigit())
  assert latest >= 10
  config = tiny_config(train__num_steps=latest + 6, train__checkpoint_every=5, train__eval_every=1000,
                       train__log_every=5)
  resumed = train.train_and_evaluate(config, killed)
  assert resumed["step"] == latest + 6
  whole = str(tmp_path / "whole")
  train.train_and_evaluate(config, whole)
  assert_same_params(params_of(killed), params_of(whole))


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_the_learning_rate_schedule_is_the_closed_form(schedule):
  # With a constant gradient every Adam update is -rate * (1 - eps-sized), so the updates read out the schedule.
  config = tiny_config(train__num_steps=40, train__warmup_steps=10, train__learning_rate=1e-2,
                       train__schedule=schedule)
  optimizer = train.make_optimizer(config)
  params = {"w": jnp.zeros(())}
  state = optimizer.init(params)
  rates = []
  for _ in range(40):
    updates, state = optimizer.update({"w": jnp.ones(())}, state, params)
    rates.append(-float(updates["w"]))
  t = np.arange(40)
  expected = np.where(t < 10, 1e-3 + (1e-2 - 1e-3) * t / 10, 1e-2)  # optax's warm-up from rate / warmup_steps.
  if schedule == "cosine":
    expected = np.where(t < 10, expected, 0.5 * 1e-2 * (1 + np.cos(np.pi * (t - 10) / 30)))
  np.testing.assert_allclose(rates, expected, rtol=1e-5, atol=1e-9)


def test_a_cosine_run_resumes_only_with_its_own_length(tmp_path):
  config = tiny_config(train__num_steps=6, train__eval_every=3, train__warmup_steps=2, train__schedule="cosine")
  train.train_and_evaluate(config, str(tmp_path))
  with pytest.raises(ValueError, match=r"config.train.num_steps: 6 -> 8.*new workdir"):
    train.train_and_evaluate(tiny_config(train__num_steps=8, train__eval_every=3, train__warmup_steps=2,
                                         train__schedule="cosine"), str(tmp_path))


def test_a_workdir_refuses_another_config(tmp_path):
  config = tiny_config(train__num_steps=2, train__eval_every=2)
  train.train_and_evaluate(config, str(tmp_path))
  other = tiny_config(train__num_steps=2, train__eval_every=2, pretext__loss="mse")
  with pytest.raises(ValueError, match=r"config.pretext.loss: 'perturbed_fy' -> 'mse'.*new workdir"):
    train.train_and_evaluate(other, str(tmp_path))
  # More steps is a continuation, not another run.
  assert train.train_and_evaluate(tiny_config(train__num_steps=3, train__eval_every=2), str(tmp_path))["step"] == 3
  # perturbed_fy reads sigma; fast_soft_rank does not, so its run may be reused under another sigma.
  with pytest.raises(ValueError, match=r"config.pretext.sigma: [0-9.]+ -> 0.25"):
    train.train_and_evaluate(tiny_config(train__num_steps=3, train__eval_every=2, pretext__sigma=0.25), str(tmp_path))
  soft = str(tmp_path / "soft")
  config = tiny_config(train__num_steps=2, train__eval_every=2, pretext__loss="fast_soft_rank")
  train.train_and_evaluate(config, soft)
  assert train.train_and_evaluate(tiny_config(train__num_steps=2, train__eval_every=2, pretext__loss="fast_soft_rank",
                                              pretext__sigma=0.25), soft)["step"] == 2
  with pytest.raises(ValueError, match=r"config.pretext.regularization_strength: 1.0 -> 0.5"):
    train.train_and_evaluate(tiny_config(train__num_steps=2, train__eval_every=2, pretext__loss="fast_soft_rank",
                                         pretext__regularization_strength=0.5), soft)


BAD_VALUES = [
    ("train__batch_size", 0, "config.train.batch_size must be an integer >= 1"),
    ("train__batch_size", 7.5, "config.train.batch_size must be an integer"),
    ("train__learning_rate", -1e-3, "config.train.learning_rate must be a finite number > 0"),
    ("train__learning_rate", float("nan"), "config.train.learning_rate must be a finite number"),
    ("train__num_steps", 0, "config.train.num_steps"),
    ("train__eval_examples", 4, "config.train.eval_examples must be an integer >= 8"),
    ("pretext__loss", "ranknet", "config.pretext.loss must be one of"),
    ("train__num_epochs", -1.0, "config.train.num_epochs must be a finite number >= 0"),
    ("pretext__sigma", 0.0, "config.pretext.sigma"),
    ("pretext__num_perturbations", 0, "config.pretext.num_perturbations must be an integer >= 1"),
    ("pretext__regularization_strength", -1.0, "config.pretext.regularization_strength"),
    ("pretext__modality", "smell", "config.pretext.modality must be one of"),
    ("pretext__modality", "image", "config.image.height is missing"),
    ("pretext__n_rows", 1, "config.pretext.n_rows times n_cols must be at least 2"),
    ("pretext__n_rows", 40, "config.pretext.n_rows must be at most the spectrogram's 32 bins"),
    ("pretext__n_rows", 16, "patches of 2 x 48 .* too small for config.model.size='tiny'"),
    ("pretext__num_permutations", 25, r"config.pretext.num_permutations must be an integer in \[2, 24\]"),
    ("features__kind", "mfcc", "config.features.kind must be one of"),
    ("features__seconds", 5.0, "config.features.seconds must be at most the notes' 4 s"),
    ("features__seconds", 0, "config.features.seconds must be a finite number > 0"),
    ("features__normalization", "global", "config.features.normalization"),
    ("model__size", "huge", "config.model.size must be one of"),
    ("model__normalize_patches", "yes", "config.model.normalize_patches must be a bool"),
    ("data__source", "librispeech", "config.data.source must be one of"),
    ("data__programs", (0, 200), r"config.data.programs must be a non-empty tuple of integers in \[0, 127\]"),
    ("data__num_threads", 0, "config.data.num_threads must be an integer >= 1"),
    ("data__velocities", (), "config.data.velocities"),
    ("data__soundfonts", None, "config.data.soundfonts must be a string"),
    ("train__schedule", "linear", "config.train.schedule must be one of"),
    ("train__num_epochs", 2.0, "config.train.schedule='cosine' decays over num_steps; set num_epochs=0"),
    ("train__warmup_steps", 10**6, "config.train.schedule='cosine' needs num_steps > warmup_steps"),
]


@pytest.mark.parametrize("field,value,message", BAD_VALUES, ids=[f"{f}={v!r}" for f, v, _ in BAD_VALUES])
def test_bad_config_values_fail_at_start_naming_the_field(field, value, message):
  # Rebuilt from a dict, so that values of any type get through, as from a hand-written config file.
  values = tiny_config().to_dict()
  if field == "pretext__num_permutations":
    values["pretext"]["loss"] = "fixed_permutation"
  if "cosine" in message:
    values["train"]["schedule"] = "cosine"
  parent, name = field.split("__")
  values[parent][name] = value
  with pytest.raises(ValueError, match=message):
    train.build(ml_collections.ConfigDict(values))


@pytest.mark.parametrize("section,field", [("train", "warmup_steps"), ("data", "soundfonts"), ("data", "prefetch"),
                                           ("features", "kind"), ("pretext", "sigma"), ("model", "size")])
def test_missing_config_field_is_named(section, field):
  config = tiny_config()
  del config[section][field]
  with pytest.raises(ValueError, match=f"^config\\.{section}\\.{field} is missing\\.$"):
    train.build(config)


@pytest.mark.parametrize("module", [default, paper, tiny])
def test_shipped_configs_are_valid(module):
  experiment = train.build(module.get_config())
  assert experiment.pretext.num_patches >= 4


def test_paper_config_has_the_paper_settings():
  config = paper.get_config()
  assert (config.train.learning_rate, config.train.batch_size, config.pretext.n_rows) == (1e-6, 32, 10)
  assert (config.pretext.loss, config.pretext.sigma, config.pretext.num_perturbations) == ("perturbed_fy", 0.1, 10)
  assert config.features.kind == "log_spectrogram" and config.features.seconds == 4.0


class _Sized:
  def __init__(self, n):
    self.n = n

  def __len__(self):
    return self.n


@pytest.mark.parametrize("notes,train_examples,expected", [
    (37_235, 0, 1_163_594),  # TimGM6mb + FluidR3_GM: ceil(1000 * 37235 / 32).
    (9_000, 0, 281_250),     # One SoundFont's worth.
    (9_000, 640, 20_000),    # data.train_examples caps an epoch.
])
def test_paper_steps_are_1000_epochs_of_the_source(notes, train_examples, expected):
  config = paper.get_config()
  config.data.train_examples = train_examples
  assert train.num_steps(config, _Sized(notes)) == expected
  config.train.num_epochs = 0.0  # num_steps then counts.
  assert train.num_steps(config, _Sized(notes)) == config.train.num_steps


def test_module_defaults_agree_with_the_default_config():
  """The dataclasses' defaults are the default config's values."""
  from shuffle_learn import pretext as pretext_lib
  config = default.get_config()
  assert pretext_lib.from_config(config).input == pretext_lib.AudioInput()
  assert pretext_lib.from_config(config).objective == pretext_lib.OBJECTIVES["perturbed_fy"](num_patches=10)


DATA_PARALLEL = textwrap.dedent("""
    import sys
    import jax
    import numpy as np
    from experiments.configs import tiny
    from shuffle_learn import parallel
    from shuffle_learn import train

    loss_name, out = sys.argv[1], sys.argv[2]
    config = tiny.get_config()
    config.pretext.loss = loss_name
    config.pretext.num_permutations = 24
    experiment = train.build(config)
    state = experiment.init(0)
    step = experiment.jit_train_step()
    rng = np.random.default_rng(0)
    t = np.arange(experiment.pretext.input.num_samples) / 16000
    losses = []
    for i in range(4):
      # Chirps at random pitches and levels, one per example.
      f0 = rng.uniform(100, 2000, (8, 1))
      audio = (rng.uniform(0.05, 0.5, (8, 1)) * np.sin(2 * np.pi * f0 * t * (1 + t))).astype(np.float32)
      batch = parallel.device_batch(experiment.pretext.input, experiment.mesh, {"audio": audio})
      state, metrics = step(state, batch, jax.random.key(i))
      losses.append(float(metrics["loss"]))
    leaves = [np.asarray(x) for x in jax.tree.leaves(state.params)]
    np.savez(out, devices=jax.device_count(), losses=np.array(losses), *leaves)
""")


@pytest.mark.parametrize("loss", ["perturbed_fy", "fixed_permutation"])
def test_eight_devices_match_one(tmp_path, loss):
  """The same 4 steps on 8 simulated CPU devices (batch 8 split 1 per device) and on 1."""
  results = {}
  for devices in (1, 8):
    out = str(tmp_path / f"{devices}.npz")
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
    subprocess.run([sys.executable, "-c", DATA_PARALLEL, loss, out], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    results[devices] = np.load(out)
  one, eight = results[1], results[8]
  assert (int(one["devices"]), int(eight["devices"])) == (1, 8)
  # Only the order of floating-point sums differs (the gradient all-reduce).
  np.testing.assert_allclose(eight["losses"], one["losses"], rtol=1e-5)
  leaves = [k for k in one.files if k.startswith("arr_")]
  assert leaves
  for name in leaves:
    np.testing.assert_allclose(eight[name], one[name], rtol=1e-4, atol=1e-6)
