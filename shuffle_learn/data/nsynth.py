"""NSynth through TFDS, as a random-access source of notes in the common schema.

Every note source of this package (this one and `gm_notes`) yields flat dicts:

  audio               float32 (64000,)  4 s at 16 kHz, mono
  pitch               int32             MIDI number
  velocity            int32             MIDI velocity
  instrument/label    int32             instrument index
  instrument/family   int32             NSynth family, in `FAMILIES` order
  instrument/source   int32             NSynth: acoustic/electronic/synthetic;
                                        gm_notes: the SoundFont's index

so that every experiment runs on either. Reading goes through
`tfds.data_source` (array_record, random access), which grain loads directly.
TFDS's `nsynth` builder imports TensorFlow, so this module needs the `tfds`
extra (`pip install shuffle_learn[tfds]`); the rest of the package does not.

NSynth's own splits keep test instruments out of train, so instrument
identification on `full` needs a re-split of the downstream examples.
"""

from __future__ import annotations

import numpy as np

FAMILIES = ("bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed", "string", "synth_lead",
            "vocal")
CONFIGS = ("full", "gansynth_subset")
SPLITS = ("train", "valid", "test")
NUM_SAMPLES = 64000
SAMPLE_RATE = 16000
INT_FEATURES = ("pitch", "velocity", "instrument/label", "instrument/family", "instrument/source")


def _flatten(example: dict, prefix: str = "") -> dict:
  flat = {}
  for key, value in example.items():
    if isinstance(value, dict):
      flat.update(_flatten(value, f"{prefix}{key}/"))
    else:
      flat[prefix + key] = value
  return flat


def to_note(example: dict) -> dict:
  """Converts a (possibly nested) NSynth-style example to the common schema.

  Raises:
    ValueError: if the audio is not 64000 finite samples or a label is missing.
  """
  flat = _flatten(example)
  missing = [k for k in ("audio",) + INT_FEATURES if k not in flat]
  if missing:
    raise ValueError(f"example lacks the features {missing}.")
  audio = np.asarray(flat["audio"], np.float32)
  if audio.shape != (NUM_SAMPLES,):
    raise ValueError(f"audio must have shape ({NUM_SAMPLES},) (4 s at {SAMPLE_RATE} Hz), got {audio.shape}.")
  if not np.all(np.isfinite(audio)):
    raise ValueError("audio contains NaN or infinite samples.")
  note = {"audio": audio}
  note.update({k: np.int32(flat[k]) for k in INT_FEATURES})
  return note


class NSynthSource:
  """grain-compatible random-access source over TFDS `nsynth`.

  Args:
    split: "train", "valid" or "test".
    config: "full" or "gansynth_subset".
    data_dir: where TFDS keeps the prepared dataset (TFDS's default if None).
  """

  def __init__(self, split: str = "train", *, config: str = "full", data_dir: str | None = None):
    if split not in SPLITS:
      raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    if config not in CONFIGS:
      raise ValueError(f"config must be one of {CONFIGS}, got {config!r}.")
    import tensorflow_datasets as tfds  # Imported here: it pulls in TensorFlow.

    self.split, self.config, self.data_dir = split, config, data_dir
    self._source = tfds.data_source(f"nsynth/{config}", split=split, data_dir=data_dir)

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int) -> dict:
    return to_note(self._source[index])

  def __repr__(self) -> str:
    return f"NSynthSource(split={self.split!r}, config={self.config!r}, data_dir={self.data_dir!r})"
