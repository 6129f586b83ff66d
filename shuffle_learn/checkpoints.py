"""A run's directory: its written config, its Orbax checkpoints, and the rule for resuming it.

A training workdir holds ``config.json`` (the run's config), ``checkpoints/<step>``
(Orbax: the train state and the grain iterator's position, `DataSave`) and the
metrics. A checkpoint restores with any number of processes.
`load_checkpoint` gives the config and parameters of a run to the evaluators
and `shuffle_learn.embed` without importing the trainer.

Damaged checkpoints: Orbax writes a step to a temporary directory and renames
it when complete, so a crash during a write leaves no step behind. A step
whose files were damaged later (a full disk, a truncated copy) fails to
restore: `restore` then logs which step directory is unreadable and why, and
falls back to the next older step; a training run moves the damaged step to
``damaged_checkpoints/<step>`` (nothing is deleted) so that it writes that step
afresh. With no intact step left, the error names every step directory.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from typing import Any, Callable, Mapping

import grain
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from shuffle_learn import config as config_lib

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
DAMAGED_DIR = "damaged_checkpoints"
# An exported model (`export`): config.json, the parameters and their step, without Orbax or the optimiser.
PARAMS_FILE = "params.msgpack"
STEP_FILE = "step.json"

_log = logging.getLogger(__name__)


class _DataHandler(grain.checkpoint.CheckpointHandler):
  """grain's handler of an iterator's position, which a run of another number of processes restores too.

  grain writes one ``process_<i>-of-<n>.json`` per process; every process of a
  run stands at the same global batch (`shuffle_learn.data.loader`), so any
  one of these files is the position of every process of any run.
  """

  def restore(self, directory, item=None, args=None):
    own = directory / f"process_{jax.process_index()}-of-{jax.process_count()}.json"
    saved = sorted(directory.glob("process_*-of-*.json"))
    if own.exists() or not saved:
      return super().restore(directory, item, args)
    item = item or args.item
    item.set_state(json.loads(saved[0].read_text()))
    item.start_prefetch()
    return item


@ocp.args.register_with_handler(_DataHandler, for_save=True)
@dataclasses.dataclass
class DataSave(ocp.args.CheckpointArgs):
  """Saves a grain iterator's position (the ``data`` item of a training checkpoint)."""
  item: Any


@ocp.args.register_with_handler(_DataHandler, for_restore=True)
@dataclasses.dataclass
class DataRestore(ocp.args.CheckpointArgs):
  """Restores a grain iterator's position, saved with any number of processes."""
  item: Any


def flat(config) -> dict[str, Any]:
  """``{"train.batch_size": 32, ...}``; tuples as lists (as JSON has them)."""
  def walk(node, prefix):
    for key, value in node.items():
      if isinstance(value, Mapping):
        yield from walk(value, f"{prefix}{key}.")
      else:
        yield f"{prefix}{key}", list(value) if isinstance(value, tuple) else value
  return dict(walk(config.to_dict() if hasattr(config, "to_dict") else config, ""))


def check_resumable(workdir: str, config) -> None:
  """A workdir holds one run: its saved config must equal ``config`` but for `config.RESUMABLE_FIELDS`.

  Fields the run's objective does not read may differ too (a ``fast_soft_rank``
  run is the same run whatever ``pretext.sigma`` says).

  Raises:
    ValueError: naming every field that differs.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return
  saved_config = read_config(workdir)
  saved, current = flat(saved_config), flat(config)
  unread = set()
  if saved.get("pretext.loss") == current.get("pretext.loss"):
    unread = config_lib.unread_fields(saved_config)
  resumable = config_lib.RESUMABLE_FIELDS
  if saved.get("train.schedule") == "cosine":  # The schedule decays over num_steps.
    resumable = resumable - {"train.num_steps"}
  changed = sorted(k for k in saved.keys() | current.keys()
                   if k not in resumable | unread and saved.get(k) != current.get(k))
  if changed:
    details = ", ".join(f"config.{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in changed)
    raise ValueError(f"{workdir} holds a run with another config ({details}); use a new workdir.")


def write_config(workdir: str, config) -> None:
  """``workdir/config.json``, written atomically by process 0."""
  if jax.process_index() == 0:
    tmp = os.path.join(workdir, CONFIG_FILE + ".tmp")
    with open(tmp, "w") as f:
      json.dump(config.to_dict(), f, indent=2, sort_keys=True)
    os.replace(tmp, os.path.join(workdir, CONFIG_FILE))


def read_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a run wrote, with tuples where the configs have them.

  Raises:
    FileNotFoundError: ``workdir`` is not a training workdir.
    ValueError: its config file is not readable JSON.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} does not exist: {workdir} is not a training workdir.")
  try:
    with open(path) as f:
      values = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ValueError(f"{path} is not a readable config ({e}).") from None

  def tuples(node):  # JSON has no tuples; configs hold tuples, not lists.
    return {k: tuples(v) if isinstance(v, dict) else tuple(v) if isinstance(v, list) else v
            for k, v in node.items()}

  return ml_collections.ConfigDict(tuples(values))


def manager(workdir: str, config=None) -> ocp.CheckpointManager:
  """The run's `ocp.CheckpointManager`; read-only without a config."""
  options = ocp.CheckpointManagerOptions(
      max_to_keep=config.train.keep_checkpoints if config is not None else None,
      enable_async_checkpointing=bool(config.train.async_checkpoints) if config is not None else False,
      create=config is not None)
  return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, CHECKPOINT_DIR)), options=options,
                               item_names=("state", "data"))


def step_dir(workdir: str, step: int) -> str:
  return os.path.join(workdir, CHECKPOINT_DIR, str(step))


def restore(checkpoints: ocp.CheckpointManager, workdir: str, args: Callable[[], ocp.args.Composite], *,
            step: int | None = None, set_aside: bool = False) -> tuple[int, Any] | None:
  """The newest intact checkpoint (or ``step``'s), restored with ``args()``.

  Args:
    checkpoints: the run's manager.
    workdir: the run's directory.
    args: makes the Orbax restore arguments.
    step: restore this step only; None for the newest intact one.
    set_aside: move damaged steps to ``workdir/damaged_checkpoints`` (a
      training run, which will write those steps again).

  Returns:
    ``(step, restored)``, or None when the run has no checkpoint.

  Raises:
    ValueError: ``step`` is damaged, or no step is intact; the message names
      the step directories and the errors.
  """
  steps = sorted(checkpoints.all_steps(), reverse=True)
  if step is not None:
    steps = [step]
  failures = []
  for candidate in steps:
    try:
      restored = checkpoints.restore(candidate, args=args())
    except Exception as e:  # pylint: disable=broad-except  # Orbax and tensorstore raise many kinds.
      reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
      failures.append(f"{step_dir(workdir, candidate)} ({reason})")
      _log.warning("checkpoint %s is damaged and was not restored (%s).", step_dir(workdir, candidate), reason)
      if set_aside and jax.process_index() == 0:
        _set_aside(workdir, candidate)
      continue
    if failures:
      _log.warning("restored the newest intact checkpoint, %s, instead of %d damaged newer one(s).",
                   step_dir(workdir, candidate), len(failures))
    if set_aside and failures:
      checkpoints.reload()
    return candidate, restored
  if failures:
    raise ValueError("no intact checkpoint to restore: " + "; ".join(failures))
  return None


def _set_aside(workdir: str, step: int) -> None:
  target = os.path.join(workdir, DAMAGED_DIR, str(step))
  if os.path.exists(target):
    target += f".{len(os.listdir(os.path.dirname(target)))}"
  os.makedirs(os.path.dirname(target), exist_ok=True)
  shutil.move(step_dir(workdir, step), target)
  _log.warning("moved the damaged checkpoint %s to %s.", step_dir(workdir, step), target)


def load_checkpoint(workdir: str, step: int | None = None) -> tuple[ml_collections.ConfigDict, Any, int]:
  """The config, parameters and step of a run's checkpoint.

  Args:
    workdir: the run's directory.
    step: a checkpointed step; None for the newest intact one.

  Returns:
    ``(config, params, step)``: params as NumPy arrays, to apply with the
    model of ``shuffle_learn.models.from_config(config, ...)``.

  Raises:
    FileNotFoundError: no config or no checkpoint (at ``step``) in ``workdir``.
    ValueError: the checkpoint is damaged (naming its directory).
  """
  config = read_config(workdir)
  if os.path.exists(os.path.join(workdir, PARAMS_FILE)):
    return config, *_read_export(workdir, step)
  with manager(workdir) as checkpoints:
    steps = checkpoints.all_steps()
    if not steps or (step is not None and step not in steps):
      raise FileNotFoundError(f"no checkpoint{'' if step is None else f' at step {step}'} in {workdir} "
                              f"(checkpointed steps: {sorted(steps)}).")
    # On this process's first device where the devices that wrote it are not all here (another process count).
    fallback = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    step, restored = restore(checkpoints, workdir, lambda: ocp.args.Composite(
        state=ocp.args.StandardRestore(fallback_sharding=fallback)), step=step)
  params = jax.tree.map(np.asarray, restored["state"]["params"])
  return config, params, int(step)


def export(workdir: str, out_dir: str, step: int | None = None) -> int:
  """Writes a run's parameters at ``step`` (None: the newest intact) to ``out_dir``; returns the step.

  ``out_dir`` gets ``config.json``, ``params.msgpack`` (`flax.serialization`'s
  msgpack of the parameter tree) and ``step.json``: what `load_checkpoint`
  reads, with no optimiser state or Orbax files (the shipped model,
  `shuffle_learn.pretrained`, is one).
  """
  from flax import serialization  # pylint: disable=g-import-not-at-top
  config, params, step = load_checkpoint(workdir, step)
  os.makedirs(out_dir, exist_ok=True)
  shutil.copyfile(os.path.join(workdir, CONFIG_FILE), os.path.join(out_dir, CONFIG_FILE))
  with open(os.path.join(out_dir, PARAMS_FILE), "wb") as f:
    f.write(serialization.msgpack_serialize(params))
  with open(os.path.join(out_dir, STEP_FILE), "w") as f:
    json.dump({"step": step}, f)
  return step


def _read_export(directory: str, step: int | None) -> tuple[Any, int]:
  from flax import serialization  # pylint: disable=g-import-not-at-top
  path = os.path.join(directory, PARAMS_FILE)
  try:
    with open(os.path.join(directory, STEP_FILE)) as f:
      saved = int(json.load(f)["step"])
    with open(path, "rb") as f:
      params = serialization.msgpack_restore(f.read())
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise ValueError(f"{directory} holds a damaged exported model ({type(e).__name__}: {e}).") from None
  if step is not None and step != saved:
    raise FileNotFoundError(f"no checkpoint at step {step} in {directory} (an exported model of step {saved}).")
  return jax.tree.map(np.asarray, params), saved
