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

from typing import Protocol, runtime_checkable

import numpy as np

SAMPLE_RATE = 16000
NOTE_SECONDS = 4.0
NUM_SAMPLES = 64000  # NOTE_SECONDS * SAMPLE_RATE.

# NSynth's instrument families, in the order of TFDS `nsynth` instrument/family.
FAMILIES = ("bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed", "string", "synth_lead",
            "vocal")
NOTE_LABELS = ("pitch", "velocity", "instrument/label", "instrument/family", "instrument/source")

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
