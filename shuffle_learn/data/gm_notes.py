"""NSynth-style notes rendered from General-MIDI SoundFonts, as a grain data source.

NSynth (Engel et al. 2017) cannot be downloaded here, so `GMNotesSource` gives
notes in its format from General-MIDI SoundFonts: one note per (SoundFont,
program, pitch, velocity), rendered on demand by `soundfonts.render_note`'s
rule (16 kHz mono float32, note on for 3 s, note off, 1 s of release: 4 s, as
NSynth). Examples are flat dicts in the note schema of `schema`, so every
experiment runs on this source or on `nsynth.NSynthSource`:

  audio               float32 (NUM_SAMPLES,)  in [-1, 1]; (clip_seconds *
                                              sample_rate,) with `clip_seconds`
  pitch               int32                   MIDI key
  velocity            int32                   one of the selection's velocities
  instrument/label    int32                   one per SoundFont x program, in
                                              [0, num_instruments); its name is
                                              `instrument_names[label]`, e.g.
                                              "TimGM6mb:000 Piano 1"
  instrument/family   int32                   index into `schema.FAMILIES`
  instrument/source   int32                   the SoundFont's index in
                                              `soundfonts`; its name (file
                                              stem) is `source_names[source]`

Strings stay out of the examples (batches are arrays for the device);
`GMNotesSource.note` and `note_id` give a note's SoundFont name, program, pitch
and velocity, and an NSynth-style id, without rendering.

Which notes are kept (the selection and its silence check) and their splits
are `gm_index`'s; the General-MIDI program table is `gm_programs`'s. Notes are
rendered at ``gain_db`` = -6 dB, which keeps the default selection from
clipping; a note that still would is clipped to [-1, 1] and counted as
``clipped`` in `GMNotesSource.summary`. Why notes are rendered on demand rather
than written to disk, with the measurements: docs/data/gm_notes.md.

Example:
  >>> source = GMNotesSource("train", programs=(0, 40), pitches=(60, 64))
  >>> example = source[0]
  >>> example["audio"].shape, schema.FAMILIES[example["instrument/family"]]
  ((64000,), 'keyboard')

References:
  Engel et al., "Neural Audio Synthesis of Musical Notes with WaveNet
  Autoencoders", ICML 2017 (the NSynth dataset).
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from shuffle_learn import _checks
from shuffle_learn.data import gm_index
from shuffle_learn.data import gm_programs
from shuffle_learn.data import schema
from shuffle_learn.data import soundfonts as soundfonts_lib


def _source_names(paths: Sequence[str]) -> tuple[str, ...]:
  names = tuple(os.path.splitext(os.path.basename(p))[0] for p in paths)
  for name in names:
    if names.count(name) > 1:
      raise ValueError(f"soundfonts has two files named {name!r}: SoundFont names must be unique.")
  return names


def _cache_dir(cache_dir) -> str | None:
  if cache_dir is True:
    return gm_index.default_cache_dir()
  if cache_dir is False or cache_dir is None:
    return None
  if not isinstance(cache_dir, (str, os.PathLike)):
    raise ValueError(f"cache_dir must be a path, True or False/None, got {cache_dir!r}.")
  return os.fspath(cache_dir)


class GMNotesSource:
  """NSynth-style notes of General-MIDI SoundFonts, rendered on demand.

  A grain ``RandomAccessDataSource`` and a `schema.NoteSource`: `__len__` and
  `__getitem__`, deterministic (an index always gives the same example, bit for
  bit) and picklable (it keeps paths and index arrays; SoundFonts are loaded
  lazily in each process, and each note is rendered on a fresh copy of the
  SoundFont, see `soundfonts`). Building it checks every candidate note once
  for silence; the result is cached per SoundFont in `cache_dir` (see
  `gm_index` for the selection, the cache and the split rule).

  Attributes:
    split: "train", "valid" or "test".
    sample_rate: audio rate in Hz.
    soundfonts: the SoundFont paths, indexed by instrument/source.
    source_names: their names (file stems), indexed by instrument/source.
    instrument_names: indexed by instrument/label, "{source}:{program:03d}
      {preset name}".
    summary: per SoundFont and in total, notes rendered, kept, silent, clipped
      and missing programs; instruments; notes per split.
  """

  def __init__(
      self,
      split: str = "train",
      *,
      soundfonts: str | None = None,
      sample_rate: int = schema.SAMPLE_RATE,
      held_seconds: float = 3.0,
      release_seconds: float = 1.0,
      gain_db: float = -6.0,
      programs: Sequence[int] | None = None,
      pitches: Sequence[int] | None = None,
      velocities: Sequence[int] = gm_programs.VELOCITIES,
      silence_db: float = -60.0,
      cache_dir: str | bool | None = True,
      clip_seconds: float | None = None,
  ):
    """Selects and checks the notes and keeps those of `split`.

    Every argument and every SoundFont file is checked before any note is
    rendered or any cache is read or written.

    Args:
      split: "train", "valid" or "test".
      soundfonts: comma-separated .sf2/.sf3 paths or names of
        `soundfonts.known_soundfonts()` ("TimGM6mb", "FluidR3_GM"); by default
        `soundfonts.default_soundfonts()`.
      sample_rate: audio rate in Hz.
      held_seconds: note-on time.
      release_seconds: time rendered after note off.
      gain_db: gain on the synth output (-6 dB keeps the default selection of
        TimGM6mb and FluidR3_GM from clipping).
      programs: General-MIDI programs to use, each a key of
        `gm_programs.GM_PROGRAM_FAMILY`; by default all of them.
      pitches: MIDI pitches tried for every program; by default each program's
        `gm_programs.FAMILY_PITCHES` range.
      velocities: MIDI velocities, by default NSynth's.
      silence_db: a note whose peak is below this (dBFS) is left out.
      cache_dir: directory of the per-SoundFont index cache; True for
        `gm_index.default_cache_dir()`, False or None for none (kept in memory
        only).
      clip_seconds: render only the first ``clip_seconds`` of every note
        (exactly the first samples of the whole note: rendering is causal), for
        front ends that use only the onset; the selection, silence check and
        splits stay those of whole notes. None renders whole notes.

    Raises:
      FileNotFoundError: a SoundFont path does not exist (the message names it).
      ValueError: a bad argument, an unreadable, empty, truncated or
        non-SoundFont file (the message names it), an empty selection (no note
        audible), or an empty split.
    """
    self.split = _checks.check_choice("split", split, gm_index.SPLITS)
    if soundfonts is None:
      soundfonts = soundfonts_lib.default_soundfonts()
    _checks.check_string("soundfonts", soundfonts)
    paths = tuple(soundfonts_lib.resolve(p.strip()) for p in soundfonts.split(",") if p.strip())
    if not paths:
      raise ValueError(f"soundfonts names no file: {soundfonts!r}.")
    self.soundfonts = paths
    self.source_names = _source_names(paths)
    self._held, self._release = soundfonts_lib.note_lengths(sample_rate, held_seconds, release_seconds)
    if clip_seconds is not None:
      clip = int(round(_checks.check_number("clip_seconds", clip_seconds, 0.0, strict=True) * sample_rate))
      if clip < 1:
        raise ValueError(f"clip_seconds must be at least one sample, got {clip_seconds!r}.")
      self._clip_held = min(self._held, clip)
      self._clip_release = min(self._release, clip - self._clip_held)
    else:
      self._clip_held, self._clip_release = self._held, self._release
    self.sample_rate = int(sample_rate)
    self._gain = 10.0 ** (_checks.check_number("gain_db", gain_db) / 20.0)
    silence_db = _checks.check_number("silence_db", silence_db)
    if programs is None:
      programs = tuple(sorted(gm_programs.GM_PROGRAM_FAMILY))
    programs = _checks.check_ints("programs", programs, 0, 127, distinct=True)
    for program in programs:
      if program not in gm_programs.GM_PROGRAM_FAMILY:
        raise ValueError(
            f"programs: General-MIDI program {program} has no NSynth family (it is in EXCLUDED_PROGRAMS)."
        )
    if pitches is not None:
      pitches = _checks.check_ints("pitches", pitches, 0, 127, distinct=True)
    velocities = _checks.check_ints("velocities", velocities, 1, 127, distinct=True)
    cache_dir = _cache_dir(cache_dir)
    render = {
        "sample_rate": self.sample_rate,
        "held_seconds": float(held_seconds),
        "release_seconds": float(release_seconds),
        "gain_db": float(gain_db),
        "max_voices": soundfonts_lib.MAX_VOICES,
    }
    self._fingerprints = tuple(soundfonts_lib.fingerprint(p) for p in paths)
    for path in paths:
      soundfonts_lib.load_soundfont(path, sample_rate=self.sample_rate)  # Fails here, naming a bad file.
    index = gm_index.build_index(paths, self.source_names, gm_index.candidates(programs, pitches, velocities), render,
                                 silence_db, cache_dir)
    self.summary = index.summary
    self.instrument_names = index.instrument_names
    rows = np.flatnonzero(index.split == gm_index.SPLITS.index(self.split))
    if not rows.size:
      raise ValueError(
          f"split {self.split!r} is empty for this selection ({index.summary['splits']}): select more notes."
      )
    self._source = index.source[rows]
    self._notes = index.notes[rows]
    self._label = index.label[rows]
    self._repr = (
        f"GMNotesSource(split={self.split!r}, soundfonts={','.join(paths)!r}, sample_rate={self.sample_rate}, "
        f"held_seconds={held_seconds!r}, release_seconds={release_seconds!r}, gain_db={gain_db!r}, "
        f"programs={programs!r}, pitches={pitches!r}, velocities={velocities!r}, silence_db={silence_db!r}, "
        f"clip_seconds={clip_seconds!r}, len={len(rows)})"
    )

  @property
  def num_instruments(self) -> int:
    """Number of instrument labels (all splits)."""
    return len(self.instrument_names)

  @property
  def num_families(self) -> int:
    """``len(schema.FAMILIES)``."""
    return len(schema.FAMILIES)

  def note(self, index: int) -> tuple[str, int, int, int]:
    """(SoundFont name, program, pitch, velocity) of example `index`, without rendering."""
    i = self._check_index(index)
    program, pitch, velocity = (int(x) for x in self._notes[i])
    return self.source_names[self._source[i]], program, pitch, velocity

  def note_id(self, index: int) -> str:
    """NSynth-style id of example `index`: "{family}_{SoundFont}_{program}-{pitch}-{velocity}"."""
    source, program, pitch, velocity = self.note(index)
    return f"{gm_programs.GM_PROGRAM_FAMILY[program]}_{source}_{program:03d}-{pitch:03d}-{velocity:03d}"

  def _check_index(self, index) -> int:
    if not _checks.is_int(index):
      raise TypeError(f"index must be an integer, got {index!r}.")
    n = len(self)
    if not -n <= index < n:
      raise IndexError(f"index {index} is out of range for a source of {n} notes.")
    return int(index) % n

  def _synth_template(self, s: int):
    path = self.soundfonts[s]
    if soundfonts_lib.fingerprint(path) != self._fingerprints[s]:
      raise ValueError(f"SoundFont {path!r} changed since this source was built: rebuild it.")
    return soundfonts_lib.load_soundfont(path, sample_rate=self.sample_rate).soundfonts[0]

  def __len__(self) -> int:
    return len(self._label)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    i = self._check_index(index)
    s = int(self._source[i])
    program, pitch, velocity = (int(x) for x in self._notes[i])
    audio = soundfonts_lib._render_raw(  # pylint: disable=protected-access
        self._synth_template(s), 0, program, pitch, velocity, self._clip_held, self._clip_release, self._gain)
    np.clip(audio, -1.0, 1.0, out=audio)
    return {
        "audio": audio,
        "pitch": np.int32(pitch),
        "velocity": np.int32(velocity),
        "instrument/label": np.int32(self._label[i]),
        "instrument/family": np.int32(schema.FAMILIES.index(gm_programs.GM_PROGRAM_FAMILY[program])),
        "instrument/source": np.int32(s),
    }

  def __repr__(self) -> str:
    return self._repr
