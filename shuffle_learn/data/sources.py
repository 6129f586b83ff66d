"""Data sources by config name, and the batches the trainer and evaluators read from them.

`SOURCES` maps ``config.data.source`` to the modality it serves and a builder
``(config, split) -> source``; every source is a grain random-access source of
flat example dicts (`shuffle_learn.data.schema`). Nothing here imports the
trainer: evaluators, `shuffle_learn.embed` and the benchmarks read data
through this module.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import grain
import jax
import numpy as np

from shuffle_learn import _checks
from shuffle_learn.data import loader
from shuffle_learn.data import schema


def _gm_notes(config, split: str):
  from shuffle_learn.data import gm_notes  # pylint: disable=g-import-not-at-top
  return gm_notes.GMNotesSource(
      split, soundfonts=config.data.soundfonts or None, programs=config.data.programs,
      pitches=config.data.pitches, velocities=tuple(config.data.velocities),
      clip_seconds=config.features.seconds)  # Renders only the audio the front end uses.


def _nsynth(config, split: str):
  from shuffle_learn.data import nsynth  # pylint: disable=g-import-not-at-top
  return nsynth.NSynthSource(split, config=config.data.tfds_config, data_dir=config.data.tfds_data_dir or None)


def _check_notes(data) -> None:
  """The fields of ``config.data`` the note sources read (messages start with the field's name)."""
  for name in ("soundfonts", "tfds_config", "tfds_data_dir"):
    _checks.check_string(name, _checks.get(data, name, "data"))
  for name, low, high in (("programs", 0, 127), ("pitches", 0, 127), ("velocities", 1, 127)):
    value = _checks.get(data, name, "data")
    if value is not None or name == "velocities":
      _checks.check_ints(name, value, low, high)


class Source(NamedTuple):
  """A source by config name: the modality it serves, its builder ``(config, split)``, its field check."""

  modality: str
  build: Callable
  check: Callable


SOURCES = {"gm_notes": Source("audio", _gm_notes, _check_notes), "nsynth": Source("audio", _nsynth, _check_notes)}


def make_source(config, split: str):
  """The config's source for ``split`` ("train", "valid" or "test")."""
  return SOURCES[config.data.source].build(config, split)


def raw_key(config) -> str:
  """The batch field the config's modality reads ("audio", "image" or "video")."""
  return schema.RAW_KEYS[config.pretext.modality]


def train_batches(config, source) -> grain.DatasetIterator:
  """This host's shard of the training batches: shuffled every epoch, forever."""
  return iter(loader.note_batches(
      source, batch_size=config.train.batch_size // jax.process_count(), seed=config.seed,
      num_examples=config.data.train_examples or None, num_threads=config.data.num_threads,
      prefetch_buffer_size=config.data.prefetch, worker_count=config.data.worker_count))


def num_train_examples(config, source) -> int:
  """Examples one training epoch reads (all hosts together)."""
  return min(config.data.train_examples or len(source), len(source))


def eval_batches(config, source) -> list[dict[str, np.ndarray]]:
  """The fixed validation batches (this host's shard, the raw input only), read once and kept in memory."""
  num_examples = min(config.train.eval_examples, len(source))
  num_examples -= num_examples % config.train.batch_size
  if num_examples == 0:
    raise ValueError(
        f"the validation split has {len(source)} examples, fewer than config.train.batch_size="
        f"{config.train.batch_size}.")
  batches = loader.note_batches(
      source, batch_size=config.train.batch_size // jax.process_count(), seed=config.seed, shuffle=False,
      num_epochs=1, num_examples=num_examples, num_threads=config.data.num_threads)
  key = raw_key(config)
  return [{key: b[key]} for b in batches]
