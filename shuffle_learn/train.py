"""Pre-training the CFN on the permutation pretext task.

    python -m shuffle_learn.train --config experiments/configs/default.py --workdir /tmp/cfn \\
        [--config.pretext.loss=fast_soft_rank ...]

The pieces, each usable alone:

- `validate_config`: every field checked before anything runs; a bad value
  raises a ValueError naming the field (``config.train.batch_size ...``).
- `Experiment` (`build`): model, optimizer, front end, pretext task and the
  device mesh of one config.
- `train_step(state, batch, key)`: pure; front end, patches, a permutation per
  example sampled from ``key``, forward, loss, Adam. `Experiment.jit_train_step`
  jits it with the state donated, the batch sharded along the mesh's ``data``
  axis and the state replicated (data parallel; XLA inserts the gradient
  all-reduce). The global batch and the per-step key are the same whatever the
  number of devices, so 1 and 8 devices compute the same step (up to the order
  of floating-point sums).
- `train_and_evaluate(config, workdir)`: the loop. Orbax checkpoints (async,
  the last ``keep_checkpoints``) hold the state (step, parameters, optimizer
  state, RNG) and the grain iterator's position, so a killed run restarted on
  the same workdir continues exactly where its last checkpoint left it: it
  reaches the parameters an uninterrupted run reaches. Validation
  partial-ranks accuracy on fixed notes with fixed permutations every
  ``eval_every`` steps; metrics go to ``workdir/metrics.csv`` and TensorBoard
  event files in ``workdir/tensorboard``.
- `load_checkpoint(workdir, step=None)`: the config and parameters of a run,
  for the evaluator.

Multi-host: when ``JAX_COORDINATOR_ADDRESS`` is set (with ``JAX_NUM_PROCESSES``
and ``JAX_PROCESS_ID``, or on a cluster JAX detects), `jax.distributed` is
initialised; each host reads its shard of every global batch
(`shuffle_learn.data.loader.note_batches`) and the batch is assembled with
`jax.make_array_from_process_local_data`.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import time
from typing import Any, Callable, Mapping

import flax
import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from shuffle_learn import pretext as pretext_lib
from shuffle_learn.data import loader
from shuffle_learn.models import cfn

SOURCES = ("gm_notes", "nsynth")
NUM_SAMPLES = 64000  # Every note source gives 4 s at 16 kHz.
SAMPLE_RATE = 16000
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
CHECKPOINT_DIR = "checkpoints"
# Config fields a resumed run may change; any other difference is an error.
RESUMABLE_FIELDS = frozenset({
    "train.num_steps", "train.log_every", "train.eval_every", "train.checkpoint_every", "train.keep_checkpoints",
    "train.async_checkpoints", "train.progress", "data.num_threads", "data.worker_count", "data.prefetch",
})
# Pretext fields only some losses read: a run of another loss may change them.
LOSS_FIELDS = {
    "pretext.num_samples": "perturbed_fy", "pretext.sigma": "perturbed_fy",
    "pretext.regularization_strength": "fast_soft_rank", "pretext.num_permutations": "fixed_permutation",
}


# ----------------------------------------------------------------------------
# Config.


def _fail(field: str, message: str, value) -> None:
  raise ValueError(f"config.{field} {message}, got {value!r}.")


def _check_int(config, field: str, minimum: int) -> None:
  value = _get(config, field)
  if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
    _fail(field, f"must be an integer >= {minimum}", value)


def _check_float(config, field: str, minimum: float, *, strict: bool) -> None:
  value = _get(config, field)
  ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
  if not ok or value < minimum or (strict and value == minimum):
    _fail(field, f"must be a finite number {'>' if strict else '>='} {minimum}", value)


def _check_choice(config, field: str, choices) -> None:
  value = _get(config, field)
  if value not in choices:
    _fail(field, f"must be one of {tuple(choices)}", value)


def _get(config, field: str):
  node = config
  for part in field.split("."):
    try:
      node = node[part]
    except (KeyError, AttributeError):
      raise ValueError(f"config.{field} is missing.") from None
  return node


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Checks every field before a run starts.

  Raises:
    ValueError: naming the first bad or missing field, its value and what it
      must be.
  """
  _check_int(config, "seed", 0)
  _check_choice(config, "data.source", SOURCES)
  for field in ("data.soundfonts", "data.tfds_config", "data.tfds_data_dir"):
    if not isinstance(_get(config, field), str):
      _fail(field, "must be a string", _get(config, field))
  for field, low, high in (("data.programs", 0, 127), ("data.pitches", 0, 127), ("data.velocities", 1, 127)):
    value = _get(config, field)
    if value is None and field != "data.velocities":
      continue
    if (not isinstance(value, (tuple, list)) or not value
        or not all(isinstance(v, int) and not isinstance(v, bool) and low <= v <= high for v in value)):
      _fail(field, f"must be a non-empty tuple of integers in [{low}, {high}]", value)
  _check_int(config, "data.train_examples", 0)
  _check_int(config, "data.num_threads", 1)
  _check_int(config, "data.worker_count", 0)
  _check_int(config, "data.prefetch", 1)
  _check_choice(config, "features.kind", pretext_lib.FRONTENDS)
  _check_float(config, "features.seconds", 0.0, strict=True)
  if config.features.seconds > NUM_SAMPLES / SAMPLE_RATE:
    _fail("features.seconds", f"must be at most the notes' {NUM_SAMPLES / SAMPLE_RATE:g} s", config.features.seconds)
  _check_int(config, "features.num_mel_bins", 1)
  _check_int(config, "features.fft_size", 400)  # At least the 25 ms window.
  _check_choice(config, "features.normalization", pretext_lib.NORMALIZATIONS)
  _check_choice(config, "pretext.loss", pretext_lib.LOSSES)
  _check_int(config, "pretext.n_rows", 1)
  _check_int(config, "pretext.n_cols", 1)
  if config.pretext.n_rows * config.pretext.n_cols < 2:
    _fail("pretext.n_rows", "times config.pretext.n_cols must be at least 2 patches",
          (config.pretext.n_rows, config.pretext.n_cols))
  _check_int(config, "pretext.num_samples", 1)
  _check_float(config, "pretext.sigma", 0.0, strict=True)
  _check_float(config, "pretext.regularization_strength", 0.0, strict=True)
  _check_int(config, "pretext.num_permutations", 2)
  n = config.pretext.n_rows * config.pretext.n_cols
  if config.pretext.loss == "fixed_permutation" and config.pretext.num_permutations > math.factorial(n):
    _fail("pretext.num_permutations", f"must be at most n! = {math.factorial(n)} for {n} patches",
          config.pretext.num_permutations)
  _check_choice(config, "model.size", tuple(cfn.SIZES))
  if not isinstance(config.model.normalize_patches, bool):
    _fail("model.normalize_patches", "must be a bool", config.model.normalize_patches)
  # The patch grid must fit the spectrogram and the backbone.
  features = _features(config)
  freq, frames = features.shape(NUM_SAMPLES)
  for field, count, size in (("pretext.n_rows", config.pretext.n_rows, freq),
                             ("pretext.n_cols", config.pretext.n_cols, frames)):
    if count > size:
      _fail(field, f"must be at most the spectrogram's {size} {'bins' if 'rows' in field else 'frames'}", count)
  size = cfn.SIZES[config.model.size]
  patch = (freq // config.pretext.n_rows, frames // config.pretext.n_cols)
  if size.feature_map_shape(*patch) is None:
    raise ValueError(
        f"config.pretext.n_rows/n_cols: patches of {patch[0]} x {patch[1]} (frequency x time) are too small for "
        f"config.model.size={config.model.size!r}, which needs at least {size.min_patch_shape()}.")
  _check_int(config, "train.batch_size", 1)
  devices, processes = jax.device_count(), jax.process_count()
  if config.train.batch_size % devices or config.train.batch_size % processes:
    _fail("train.batch_size", f"must be divisible by the {devices} devices and {processes} processes",
          config.train.batch_size)
  _check_float(config, "train.learning_rate", 0.0, strict=True)
  _check_int(config, "train.warmup_steps", 0)
  _check_float(config, "train.grad_clip_norm", 0.0, strict=False)
  _check_int(config, "train.num_steps", 1)
  for field in ("train.log_every", "train.eval_every", "train.checkpoint_every", "train.keep_checkpoints"):
    _check_int(config, field, 1)
  _check_int(config, "train.eval_examples", config.train.batch_size)
  for field in ("train.async_checkpoints", "train.progress"):
    if not isinstance(_get(config, field), bool):
      _fail(field, "must be a bool", _get(config, field))


def _features(config) -> pretext_lib.Features:
  seconds = float(config.features.seconds)
  num_samples = int(round(seconds * SAMPLE_RATE))
  return pretext_lib.Features(
      kind=config.features.kind,
      sample_rate=SAMPLE_RATE,
      num_samples=num_samples if num_samples < NUM_SAMPLES else None,
      num_mel_bins=config.features.num_mel_bins,
      fft_size=config.features.fft_size,
      normalization=config.features.normalization,
  )


# ----------------------------------------------------------------------------
# Model, optimizer, state and steps.


@flax.struct.dataclass
class TrainState:
  """Everything a step changes; a pytree of arrays (checkpointed as is).

  Attributes:
    step: int32 scalar, steps taken.
    params: the CFN's variables (``{"params": ...}``).
    opt_state: Adam's state.
    rng: uint32 key data of the run's base key; step ``s`` uses
      ``fold_in(rng, s)``.
  """

  step: jax.Array
  params: Any
  opt_state: Any
  rng: jax.Array


@dataclasses.dataclass(frozen=True)
class Experiment:
  """The static parts of a run: what `train_step` closes over.

  Attributes:
    config: the validated config.
    model: the CFN.
    optimizer: optax Adam (with warm-up and optional clipping).
    features: the front end.
    pretext: patches, permutations, loss and metric.
    permutation_set: ``(k, n)`` int32 for ``fixed_permutation``, else None.
    mesh: the device mesh, one axis ``"data"``.
  """

  config: ml_collections.ConfigDict
  model: cfn.CFN
  optimizer: optax.GradientTransformation
  features: pretext_lib.Features
  pretext: pretext_lib.Pretext
  permutation_set: jax.Array | None
  mesh: jax.sharding.Mesh

  @property
  def num_samples(self) -> int:
    """Audio samples per note fed to the device."""
    return self.features.num_samples or NUM_SAMPLES

  @property
  def replicated(self) -> NamedSharding:
    return NamedSharding(self.mesh, P())

  @property
  def batch_sharding(self) -> NamedSharding:
    return NamedSharding(self.mesh, P("data"))

  def inputs(self, audio: jax.Array) -> jax.Array:
    """Audio ``(batch, samples)`` -> unshuffled patches ``(batch, n, h, w)``."""
    return self.pretext.patches(self.features(audio))

  def init(self, seed: int) -> TrainState:
    """The initial state (jitted, replicated over the mesh)."""

    def init(key):
      params_key, rng = jax.random.split(key)
      x = jnp.zeros((1, self.num_samples), jnp.float32)
      params = self.model.init(params_key, self.inputs(x), train=False)
      return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=self.optimizer.init(params),
                        rng=jax.random.key_data(rng))

    return jax.jit(init, out_shardings=self.replicated)(jax.random.key(seed))

  def train_step(self, state: TrainState, batch: Mapping[str, jax.Array], key: jax.Array):
    """One pure step: a permutation per example from ``key``, loss, gradient, Adam.

    Args:
      state: the current state.
      batch: ``{"audio": (batch, samples)}``.
      key: this step's key.

    Returns:
      ``(new_state, metrics)``, metrics the batch means of ``loss`` and
      ``partial_ranks_accuracy``.
    """
    perm_key, loss_key, dropout_key = jax.random.split(key, 3)
    shuffled, labels = self.pretext.shuffle(perm_key, self.inputs(batch["audio"]), self.permutation_set)

    def loss_fn(params):
      outputs = self.model.apply(params, shuffled, train=True, rngs={"dropout": dropout_key})
      return jnp.mean(self.pretext.loss(loss_key, outputs, labels)), outputs

    (loss, outputs), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    accuracy = jnp.mean(self.pretext.accuracy(outputs, labels, self.permutation_set))
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
    return new_state, {"loss": loss, "partial_ranks_accuracy": accuracy}

  def eval_step(self, params, batch: Mapping[str, jax.Array], key: jax.Array) -> dict[str, jax.Array]:
    """Sums over the batch of the loss and partial-ranks accuracy, no dropout."""
    perm_key, loss_key = jax.random.split(key)
    shuffled, labels = self.pretext.shuffle(perm_key, self.inputs(batch["audio"]), self.permutation_set)
    outputs = self.model.apply(params, shuffled, train=False)
    return {"loss": jnp.sum(self.pretext.loss(loss_key, outputs, labels)),
            "partial_ranks_accuracy": jnp.sum(self.pretext.accuracy(outputs, labels, self.permutation_set))}

  def jit_train_step(self) -> Callable:
    """`train_step` jitted: state donated and replicated, batch sharded on ``data``."""
    return jax.jit(self.train_step, donate_argnums=0,
                   in_shardings=(self.replicated, self.batch_sharding, self.replicated),
                   out_shardings=(self.replicated, self.replicated))

  def jit_eval_step(self) -> Callable:
    return jax.jit(self.eval_step, in_shardings=(self.replicated, self.batch_sharding, self.replicated),
                   out_shardings=self.replicated)

  def device_batch(self, host_batch: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
    """This host's part of a batch -> the global batch, sharded over the mesh (audio only)."""
    audio = np.asarray(host_batch["audio"][:, :self.num_samples], np.float32)
    return {"audio": jax.make_array_from_process_local_data(self.batch_sharding, audio)}


def make_mesh() -> jax.sharding.Mesh:
  """All devices (of all hosts) on one ``data`` axis."""
  return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


def make_optimizer(config) -> optax.GradientTransformation:
  """Adam; the learning rate rises linearly over ``warmup_steps`` then stays constant.

  A constant rate (no decay tied to ``num_steps``) lets a finished run be
  extended by resuming it with a larger ``num_steps``.
  """
  rate = config.train.learning_rate
  if config.train.warmup_steps:
    rate = optax.linear_schedule(rate / config.train.warmup_steps, rate, config.train.warmup_steps)
  adam = optax.adam(rate)
  if config.train.grad_clip_norm:
    return optax.chain(optax.clip_by_global_norm(config.train.grad_clip_norm), adam)
  return adam


def build(config: ml_collections.ConfigDict) -> Experiment:
  """Validates the config and builds the static parts of its run."""
  validate_config(config)
  pretext = pretext_lib.Pretext(
      n_rows=config.pretext.n_rows,
      n_cols=config.pretext.n_cols,
      loss_name=config.pretext.loss,
      num_samples=config.pretext.num_samples,
      sigma=config.pretext.sigma,
      regularization_strength=config.pretext.regularization_strength,
      num_permutations=config.pretext.num_permutations,
      permutation_seed=config.seed,
  )
  permutation_set = None
  if config.pretext.loss == "fixed_permutation":
    permutation_set = jnp.asarray(pretext.permutation_set())
  model = cfn.CFN(cfn.SIZES[config.model.size], num_outputs=pretext.num_outputs,
                  normalize_patches=config.model.normalize_patches)
  return Experiment(config=config, model=model, optimizer=make_optimizer(config), features=_features(config),
                    pretext=pretext, permutation_set=permutation_set, mesh=make_mesh())


# ----------------------------------------------------------------------------
# Data.


def make_source(config, split: str):
  """The config's note source for ``split``: `GMNotesSource` or `NSynthSource`."""
  if config.data.source == "gm_notes":
    from shuffle_learn.data import gm_notes  # pylint: disable=g-import-not-at-top
    return gm_notes.GMNotesSource(
        split, soundfonts=config.data.soundfonts or None, programs=config.data.programs,
        pitches=config.data.pitches, velocities=tuple(config.data.velocities),
        clip_seconds=config.features.seconds)  # Renders only the audio the front end uses.
  from shuffle_learn.data import nsynth  # pylint: disable=g-import-not-at-top
  return nsynth.NSynthSource(split, config=config.data.tfds_config, data_dir=config.data.tfds_data_dir or None)


def train_batches(config, source) -> grain.DatasetIterator:
  """This host's shard of the training batches: shuffled every epoch, forever."""
  return iter(loader.note_batches(
      source, batch_size=config.train.batch_size // jax.process_count(), seed=config.seed,
      num_examples=config.data.train_examples or None, num_threads=config.data.num_threads,
      prefetch_buffer_size=config.data.prefetch, worker_count=config.data.worker_count))


def eval_batches(config, source) -> list[dict[str, np.ndarray]]:
  """The fixed validation batches (this host's shard), read once and kept in memory."""
  num_examples = min(config.train.eval_examples, len(source))
  num_examples -= num_examples % config.train.batch_size
  if num_examples == 0:
    raise ValueError(
        f"the validation split has {len(source)} notes, fewer than config.train.batch_size="
        f"{config.train.batch_size}.")
  batches = loader.note_batches(
      source, batch_size=config.train.batch_size // jax.process_count(), seed=config.seed, shuffle=False,
      num_epochs=1, num_examples=num_examples, num_threads=config.data.num_threads)
  return [{"audio": b["audio"]} for b in batches]


# ----------------------------------------------------------------------------
# Metrics.


class MetricWriter:
  """Scalars to ``metrics.csv`` (step, name, value) and TensorBoard, on process 0.

  On resume from step ``s``, rows after ``s`` (written after the checkpoint
  being resumed) are dropped from the CSV and purged from TensorBoard, so
  that each step appears once.
  """

  def __init__(self, workdir: str, start_step: int):
    self._enabled = jax.process_index() == 0
    if not self._enabled:
      return
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    path = os.path.join(workdir, METRICS_FILE)
    rows = []
    if os.path.exists(path):
      with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["step"]) <= start_step]
    self._file = open(path, "w", newline="")
    self._csv = csv.DictWriter(self._file, fieldnames=("step", "name", "value"))
    self._csv.writeheader()
    self._csv.writerows(rows)
    self._file.flush()
    self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"), purge_step=start_step + 1 if start_step else None)

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    if not self._enabled:
      return
    for name, value in scalars.items():
      self._csv.writerow({"step": step, "name": name, "value": repr(float(value))})
      self._tb.add_scalar(name, float(value), step)
    self._file.flush()

  def close(self) -> None:
    if self._enabled:
      self._file.close()
      self._tb.close()


def read_metrics(workdir: str) -> dict[str, list[tuple[int, float]]]:
  """``metrics.csv`` as ``{name: [(step, value), ...]}``."""
  metrics: dict[str, list[tuple[int, float]]] = {}
  with open(os.path.join(workdir, METRICS_FILE), newline="") as f:
    for row in csv.DictReader(f):
      metrics.setdefault(row["name"], []).append((int(row["step"]), float(row["value"])))
  return metrics


# ----------------------------------------------------------------------------
# Checkpoints.


def _flat(config) -> dict[str, Any]:
  def walk(node, prefix):
    for key, value in node.items():
      if isinstance(value, Mapping):
        yield from walk(value, f"{prefix}{key}.")
      else:
        yield f"{prefix}{key}", list(value) if isinstance(value, tuple) else value
  return dict(walk(config.to_dict() if hasattr(config, "to_dict") else config, ""))


def _check_resumable(workdir: str, config) -> None:
  """A workdir holds one run: its saved config must match except `RESUMABLE_FIELDS`.

  Fields of `LOSS_FIELDS` that the run's loss does not read may differ too
  (a ``fast_soft_rank`` run is the same run whatever ``pretext.sigma`` says).
  """
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return
  with open(path) as f:
    saved = _flat(json.load(f))
  current = _flat(config)
  unread = {k for k, loss in LOSS_FIELDS.items()
            if saved.get("pretext.loss") == current.get("pretext.loss") != loss}
  changed = sorted(k for k in saved.keys() | current.keys()
                   if k not in RESUMABLE_FIELDS | unread and saved.get(k) != current.get(k))
  if changed:
    details = ", ".join(f"config.{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in changed)
    raise ValueError(f"{workdir} holds a run with another config ({details}); use a new workdir.")


def _write_config(workdir: str, config) -> None:
  if jax.process_index() == 0:
    tmp = os.path.join(workdir, CONFIG_FILE + ".tmp")
    with open(tmp, "w") as f:
      json.dump(config.to_dict(), f, indent=2, sort_keys=True)
    os.replace(tmp, os.path.join(workdir, CONFIG_FILE))


def checkpoint_manager(workdir: str, config=None) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
      max_to_keep=config.train.keep_checkpoints if config is not None else None,
      enable_async_checkpointing=bool(config.train.async_checkpoints) if config is not None else False,
      create=config is not None)
  return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, CHECKPOINT_DIR)), options=options,
                               item_names=("state", "data"))


def load_checkpoint(workdir: str, step: int | None = None) -> tuple[ml_collections.ConfigDict, Any, int]:
  """The config, parameters and step of a run's checkpoint.

  Args:
    workdir: the run's directory.
    step: a checkpointed step; None for the latest.

  Returns:
    ``(config, params, step)``: params as NumPy arrays, to apply with
    ``build(config).model``.

  Raises:
    FileNotFoundError: no config or no checkpoint (at ``step``) in ``workdir``.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} does not exist: {workdir} is not a training workdir.")
  with open(path) as f:
    values = json.load(f)
  for name in ("programs", "pitches", "velocities"):  # JSON has no tuples.
    if isinstance(values["data"].get(name), list):
      values["data"][name] = tuple(values["data"][name])
  config = ml_collections.ConfigDict(values)
  with checkpoint_manager(workdir) as manager:
    steps = manager.all_steps()
    if not steps or (step is not None and step not in steps):
      raise FileNotFoundError(f"no checkpoint{'' if step is None else f' at step {step}'} in {workdir} "
                              f"(checkpointed steps: {sorted(steps)}).")
    step = max(steps) if step is None else step
    restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
  params = jax.tree.map(np.asarray, restored["state"]["params"])
  return config, params, int(step)


# ----------------------------------------------------------------------------
# The loop.


def maybe_initialize_distributed() -> None:
  """`jax.distributed.initialize` when ``JAX_COORDINATOR_ADDRESS`` is set (once)."""
  if not os.environ.get("JAX_COORDINATOR_ADDRESS") or jax.distributed.is_initialized():
    return
  kwargs = {}
  if "JAX_NUM_PROCESSES" in os.environ:
    kwargs["num_processes"] = int(os.environ["JAX_NUM_PROCESSES"])
  if "JAX_PROCESS_ID" in os.environ:
    kwargs["process_id"] = int(os.environ["JAX_PROCESS_ID"])
  jax.distributed.initialize(**kwargs)


def evaluate(experiment: Experiment, eval_step: Callable, params, batches) -> dict[str, float]:
  """Mean loss and partial-ranks accuracy over fixed batches with fixed permutations."""
  key = jax.random.key(experiment.config.seed + 1)
  totals = None
  count = 0
  for i, batch in enumerate(batches):
    sums = eval_step(params, experiment.device_batch(batch), jax.random.fold_in(key, i))
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    count += experiment.config.train.batch_size
  return {name: float(value) / count for name, value in totals.items()}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       stop_after: int | None = None) -> dict[str, Any]:
  """Pre-trains (or resumes pre-training) in ``workdir``.

  Args:
    config: see ``experiments/configs/default.py``.
    workdir: where the config, checkpoints and metrics go; a run found there is
      resumed from its latest checkpoint.
    stop_after: stop (after checkpointing) once this many steps have been
      taken in this call, as if interrupted; for tests.

  Returns:
    A summary: ``step``, ``chance`` (1/n), the last ``valid`` metrics,
    ``train_seconds``, ``steps_per_second`` and ``examples_per_second`` (this
    call's steps after its first, which compiles; reading the data included,
    evaluations and checkpoint saves excluded).
  """
  maybe_initialize_distributed()
  experiment = build(config)
  os.makedirs(workdir, exist_ok=True)
  _check_resumable(workdir, config)
  train_source = make_source(config, "train")
  valid_source = make_source(config, "valid")
  train_iter = train_batches(config, train_source)
  valid = eval_batches(config, valid_source)
  state = experiment.init(config.seed)
  manager = checkpoint_manager(workdir, config)
  start = manager.latest_step() or 0
  if start:
    restored = manager.restore(start, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(state), data=grain.checkpoint.CheckpointRestore(train_iter)))
    state, train_iter = restored["state"], restored["data"]
  _write_config(workdir, config)
  writer = MetricWriter(workdir, start)
  step_fn, eval_fn = experiment.jit_train_step(), experiment.jit_eval_step()
  rng = jax.random.wrap_key_data(np.asarray(state.rng))  # A copy: the state's buffers are donated.
  num_steps = config.train.num_steps
  last = min(num_steps, start + stop_after) if stop_after is not None else num_steps
  summary: dict[str, Any] = {"chance": 1.0 / experiment.pretext.num_patches, "valid": {}}
  history = []
  # Step time, after the first (compiling) step and without evaluations and
  # checkpoints: `window` since the last log, `total` over this call.
  timer = None
  window_seconds = window_steps = total_seconds = total_steps = 0

  def pause():
    nonlocal timer, window_seconds
    if timer is not None:
      jax.block_until_ready(state)
      window_seconds += time.perf_counter() - timer
      timer = None

  from tqdm import auto as tqdm  # pylint: disable=g-import-not-at-top
  progress = tqdm.tqdm(total=num_steps, initial=start, desc="pre-training", unit="step", dynamic_ncols=True,
                       disable=not config.train.progress or jax.process_index() != 0)
  step = start
  try:
    while step < last:
      batch = experiment.device_batch(next(train_iter))
      state, metrics = step_fn(state, batch, jax.random.fold_in(rng, step))
      history.append(metrics)
      if step == start:
        jax.block_until_ready(state)  # The first step compiles: not timed.
      else:
        window_steps += 1
      step += 1
      timer = timer or time.perf_counter()
      progress.update(1)
      if step % config.train.log_every == 0 or step == last:
        pause()
        means = {f"train/{k}": float(np.mean([float(m[k]) for m in history])) for k in history[0]}
        history = []
        if window_steps:
          means["train/steps_per_second"] = window_steps / window_seconds
          means["train/examples_per_second"] = window_steps * config.train.batch_size / window_seconds
        total_seconds, total_steps = total_seconds + window_seconds, total_steps + window_steps
        window_seconds = window_steps = 0
        writer.write(step, means)
        progress.set_postfix(loss=f"{means['train/loss']:.3f}",
                             acc=f"{means['train/partial_ranks_accuracy']:.3f}")
      if step % config.train.eval_every == 0 or step == num_steps:
        pause()
        summary["valid"] = evaluate(experiment, eval_fn, state.params, valid)
        writer.write(step, {f"valid/{k}": v for k, v in summary["valid"].items()})
      if step % config.train.checkpoint_every == 0 or step == last:
        pause()
        manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), data=grain.checkpoint.CheckpointSave(train_iter)))
  finally:
    progress.close()
    manager.wait_until_finished()
    manager.close()
    writer.close()
  summary.update(step=step, train_seconds=total_seconds)
  if total_steps:
    summary["steps_per_second"] = total_steps / total_seconds
    summary["examples_per_second"] = total_steps * config.train.batch_size / total_seconds
  return summary

def main(argv) -> None:
  del argv
  from absl import logging  # pylint: disable=g-import-not-at-top
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO.
  config = _CONFIG.value
  summary = train_and_evaluate(config, _WORKDIR.value)
  print(json.dumps(summary, indent=2))


if __name__ == "__main__":
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  _CONFIG = config_flags.DEFINE_config_file("config", "experiments/configs/default.py", "Training config.",
                                            lock_config=True)
  _WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (config, checkpoints, metrics).", required=True)
  app.run(main)
