"""Checking a pre-training config before anything runs.

`validate(config)` builds every object the config describes (the pretext
task's input and objectives, the model size) and checks the remaining fields;
the first bad or missing field raises a ValueError that names it by its path
(``config.train.batch_size must be divisible by the 8 devices ...``; inside
the main job, ``config.pretrain.train.batch_size ...``). The fields are those
of ``experiments/configs/default.py``.
"""

from __future__ import annotations

import jax

from shuffle_learn import _checks
from shuffle_learn import models
from shuffle_learn import pretext as pretext_lib
from shuffle_learn.data import sources
from shuffle_learn.pretext import objectives
from shuffle_learn.pretext import sampling

# Fields a resumed run may change: the run length and how it is logged, read and saved.
RESUMABLE_FIELDS = frozenset({
    "train.num_steps", "train.num_epochs", "train.log_every", "train.eval_every", "train.checkpoint_every",
    "train.keep_checkpoints", "train.async_checkpoints", "train.progress", "data.num_threads", "data.worker_count",
    "data.prefetch",
})


def unread_fields(config) -> frozenset[str]:
  """The ``pretext.*`` fields the config's objective does not read (e.g. ``pretext.sigma`` for ``mse``).

  A permutation objective reads none of the peer objectives' fields
  (`sampling.FIELDS`), a peer objective none of the permutation objectives'
  nor the patch grid.
  """
  loss = config["pretext"]["loss"]
  if loss in sampling.LOSSES:
    return frozenset(f"pretext.{name}" for name in (*objectives.FIELDS, "n_rows", "n_cols"))
  read = objectives.OBJECTIVES[loss].fields
  return frozenset(f"pretext.{name}" for name in (*objectives.FIELDS, *sampling.FIELDS) if name not in read)


def _check_data(config, path: str) -> None:
  data = _checks.get(config, "data", path)
  with _checks.prefixed(f"{path}.data"):
    source = _checks.check_choice("source", data.get("source"), tuple(sources.SOURCES))
    sources.SOURCES[source].check(data)
    _checks.check_int("train_examples", _checks.get(data, "train_examples", ""), 0)
    _checks.check_int("num_threads", _checks.get(data, "num_threads", ""), 1)
    _checks.check_int("worker_count", _checks.get(data, "worker_count", ""), 0)
    _checks.check_int("prefetch", _checks.get(data, "prefetch", ""), 1)
  modality = sources.SOURCES[source].modality
  if config.pretext.modality != modality:
    raise ValueError(f"{path}.pretext.modality must be {modality!r} for {path}.data.source={source!r}, "
                     f"got {config.pretext.modality!r}.")


def _check_train(config, path: str) -> None:
  train = _checks.get(config, "train", path)
  section = f"{path}.train"
  get = lambda name: _checks.get(train, name, "")  # Named by `prefixed` below.
  with _checks.prefixed(section):
    batch_size = _checks.check_int("batch_size", get("batch_size"), 1)
    devices, processes = jax.device_count(), jax.process_count()
    if batch_size % devices or batch_size % processes:
      raise ValueError(f"batch_size must be divisible by the {devices} devices and {processes} processes, "
                       f"got {batch_size}.")
    _checks.check_number("learning_rate", get("learning_rate"), 0.0, strict=True)
    _checks.check_int("warmup_steps", get("warmup_steps"), 0)
    _checks.check_number("grad_clip_norm", get("grad_clip_norm"), 0.0)
    num_steps = _checks.check_int("num_steps", get("num_steps"), 1)
    num_epochs = _checks.check_number("num_epochs", get("num_epochs"), 0.0)
    if _checks.check_choice("schedule", get("schedule"), ("constant", "cosine")) == "cosine":
      if num_epochs:
        raise ValueError(f"schedule='cosine' decays over num_steps; set num_epochs=0, got {num_epochs!r}.")
      if num_steps <= get("warmup_steps"):
        raise ValueError(f"schedule='cosine' needs num_steps > warmup_steps, got {num_steps} and "
                         f"{get('warmup_steps')}.")
    for name in ("log_every", "eval_every", "checkpoint_every", "keep_checkpoints"):
      _checks.check_int(name, get(name), 1)
    _checks.check_int("eval_examples", get("eval_examples"), batch_size)
    for name in ("async_checkpoints", "progress"):
      _checks.check_bool(name, get(name))


def validate(config, path: str = "config") -> pretext_lib.Pretext:
  """Checks every field of a pre-training config; returns its pretext task.

  Args:
    config: a pre-training config (``experiments/configs/default.py``).
    path: how errors name the config (``"config.pretrain"`` inside the main job).

  Raises:
    ValueError: naming the first bad or missing field, its value and what it
      must be.
  """
  with _checks.prefixed(path):
    _checks.check_int("seed", _checks.get(config, "seed", ""), 0)
  pretext = pretext_lib.from_config(config, path)
  if isinstance(pretext, sampling.SamplingPretext):
    _check_data(config, path)
    _check_encoder(config, pretext, path)
  else:
    # Every objective's fields are checked, also those the chosen one ignores.
    for name, cls in objectives.OBJECTIVES.items():
      kwargs = {field: _checks.get(config, f"pretext.{field}", path) for field in cls.fields}
      with _checks.prefixed(f"{path}.pretext"):
        if name != "fixed_permutation" or config.pretext.loss == name:
          cls(num_patches=pretext.num_patches, **kwargs)
    _check_data(config, path)
    _check_cfn(config, pretext, path)
  _check_train(config, path)
  return pretext


def _check_cfn(config, pretext, path: str) -> None:
  model = _checks.get(config, "model", path)
  with _checks.prefixed(f"{path}.model"):
    size_name = _checks.check_choice("size", _checks.get(model, "size", ""), tuple(models.SIZES))
    _checks.check_bool("normalize_patches", _checks.get(model, "normalize_patches", ""))
  size = models.SIZES[size_name]
  height, width, _ = pretext.input.patch_shape
  if size.feature_map_shape(height, width) is None:
    grid = "pretext.n_rows/n_cols" if "n_rows" in pretext.input.config_fields else "the input's size"
    raise ValueError(
        f"{path}.{grid}: patches of {height} x {width} are too small for {path}.model.size={size_name!r}, "
        f"which needs at least {size.min_patch_shape()}.")


def _check_encoder(config, pretext, path: str) -> None:
  """The peer objectives' encoder (``model.size`` among `models.ENCODERS`) takes a segment."""
  with _checks.prefixed(f"{path}.model"):
    size_name = _checks.check_choice("size", _checks.get(config, "model.size", ""), tuple(models.ENCODERS))
  frames, bins = pretext.input.segment_frames, pretext.input.num_mel_bins
  low_frames, low_bins = models.sampling.min_input_shape(models.ENCODERS[size_name])
  if frames < low_frames or bins < low_bins:
    raise ValueError(
        f"{path}.pretext.segment_frames: segments of {frames} frames x {bins} mel bins are too small for "
        f"{path}.model.size={size_name!r}, which needs at least {low_frames} x {low_bins}.")
