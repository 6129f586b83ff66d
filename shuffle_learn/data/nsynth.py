"""NSynth through TFDS, as a random-access source of notes in the common schema.

NSynth (Engel et al. 2017) notes are read with `tfds.data_source`
(array_record, random access), which grain loads directly, and flattened to the
note schema of `schema` (the one `gm_notes.GMNotesSource` also gives), so that
every experiment runs on either. TFDS's `nsynth` builder imports TensorFlow, so
this module needs the `tfds` extra (`pip install shuffle_learn[tfds]`); the rest
of the package does not.

NSynth's own splits keep test instruments out of train, so instrument
identification on `full` needs a re-split of the downstream examples.

References:
  Engel et al., "Neural Audio Synthesis of Musical Notes with WaveNet
  Autoencoders", ICML 2017 (the NSynth dataset).
"""

from __future__ import annotations

import numpy as np

from shuffle_learn import _checks
from shuffle_learn.data import schema
from shuffle_learn.data import tfds_source

CONFIGS = ("full", "gansynth_subset")
SPLITS = ("train", "valid", "test")


def _flatten(example: dict, prefix: str = "") -> dict:
  flat = {}
  for key, value in example.items():
    if isinstance(value, dict):
      flat.update(_flatten(value, f"{prefix}{key}/"))
    else:
      flat[prefix + key] = value
  return flat


def to_note(example: dict) -> dict[str, np.ndarray]:
  """Converts a (possibly nested) NSynth-style example to the common schema.

  Raises:
    ValueError: if the audio is not NUM_SAMPLES finite samples or a label is
      missing.
  """
  flat = _flatten(example)
  missing = [k for k in ("audio",) + schema.NOTE_LABELS if k not in flat]
  if missing:
    raise ValueError(f"example lacks the features {missing}.")
  audio = np.asarray(flat["audio"], np.float32)
  if audio.shape != (schema.NUM_SAMPLES,):
    raise ValueError(f"audio must have shape ({schema.NUM_SAMPLES},) ({schema.NOTE_SECONDS:g} s at "
                     f"{schema.SAMPLE_RATE} Hz), got {audio.shape}.")
  if not np.all(np.isfinite(audio)):
    raise ValueError("audio contains NaN or infinite samples.")
  note = {"audio": audio}
  note.update({k: np.int32(flat[k]) for k in schema.NOTE_LABELS})
  return note


class NSynthSource(tfds_source.TFDSSource):
  """grain-compatible random-access source over TFDS `nsynth`, a `schema.NoteSource`.

  Args:
    split: "train", "valid" or "test".
    config: "full" or "gansynth_subset".
    data_dir: where TFDS keeps the prepared dataset (TFDS's default if None).

  Raises:
    ValueError: a bad argument, or a dataset whose instrument families are not
      `schema.FAMILIES`.
  """

  def __init__(self, split: str = "train", *, config: str = "full", data_dir: str | None = None):
    _checks.check_choice("split", split, SPLITS)
    _checks.check_choice("config", config, CONFIGS)

    self.split, self.config, self.data_dir = split, config, data_dir
    instrument = self._open(f"nsynth/{config}", split, data_dir)["instrument"]
    if tuple(instrument["family"].names) != schema.FAMILIES:
      raise ValueError(f"nsynth/{config}'s instrument families {instrument['family'].names} are not "
                       f"schema.FAMILIES {schema.FAMILIES}.")
    self._num_instruments = int(instrument["label"].num_classes)

  @property
  def num_instruments(self) -> int:
    """Instrument labels in the TFDS dataset info (1006 for NSynth), over all splits."""
    return self._num_instruments

  @property
  def num_families(self) -> int:
    """``len(schema.FAMILIES)``."""
    return len(schema.FAMILIES)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    return to_note(self._source[index])

  def __repr__(self) -> str:
    return f"NSynthSource(split={self.split!r}, config={self.config!r}, data_dir={self.data_dir!r})"
