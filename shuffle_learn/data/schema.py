"""What an example is, per modality: defined once, read by every source and model input.

Audio notes (`NoteSource`: `gm_notes.GMNotesSource`, `nsynth.NSynthSource`)
are flat dicts of NumPy arrays, as NSynth's features flattened with ``/``:

  audio               float32 (NUM_SAMPLES,)  4 s at SAMPLE_RATE Hz, mono, in [-1, 1]
                      (shorter when a source renders only the start of a note)
  pitch               int32   MIDI number
  velocity            int32   MIDI velocity
  instrument/label    int32   instrument, in [0, num_instruments)
  instrument/family   int32   NSynth family, an index into FAMILIES
  instrument/source   int32   NSynth: acoustic, electronic, synthetic;
                              gm_notes: the SoundFont's index

Images are ``{"image": uint8 (H, W, C), "label": int32}`` and videos
``{"video": uint8 (T, H, W, C), "label": int32}``: channels last, as TFDS
gives them.
"""

from __future__ import annotations

import hashlib
from typing import Protocol, runtime_checkable

import numpy as np

SAMPLE_RATE = 16000
NOTE_SECONDS = 4.0
NUM_SAMPLES = 64000  # NOTE_SECONDS * SAMPLE_RATE.

# NSynth's instrument families, in the order of TFDS `nsynth` instrument/family.
FAMILIES = ("bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed", "string", "synth_lead",
            "vocal")
NOTE_LABELS = ("pitch", "velocity", "instrument/label", "instrument/family", "instrument/source")

# Every source's splits, and the rule that assigns an example to one: by a
# stable hash of its key (a note's name, a file's or group's name), u < 0.8
# train, u < 0.9 valid, else test; the same on every machine and run.
SPLITS = ("train", "valid", "test")
SPLIT_BOUNDS = (0.8, 0.9)  # Cumulative upper bounds of u for train and valid.


def unit_hash(key: str) -> float:
  """The first 8 bytes of sha256(key), big-endian, over 2**64: uniform in [0, 1)."""
  return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2.0**64


# The batch field that holds each modality's raw input.
RAW_KEYS = {"audio": "audio", "image": "image", "video": "video"}


@runtime_checkable
class NoteSource(Protocol):
  """A random-access source of notes in the schema above (grain's ``RandomAccessDataSource``)."""

  @property
  def num_instruments(self) -> int:
    """Instrument labels over all splits: ``instrument/label`` is in ``[0, num_instruments)``."""

  @property
  def num_families(self) -> int:
    """``len(FAMILIES)``."""

  def __len__(self) -> int:
    ...

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    ...
