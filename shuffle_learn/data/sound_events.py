"""Sound event detection in the style of DCASE 2016 task 2: SoundFont events mixed on backgrounds with scaper.

`SoundEventsSource` gives mixtures of isolated sound events on a background,
with the events' onsets and offsets, for comparing audio embeddings on sound
event detection (SED), as in DCASE 2016 task 2 ("sound event detection in
synthetic audio", Mesaros et al. 2018). No recorded event set can be downloaded
here, so the events are General-MIDI notes rendered from the TimGM6mb
SoundFont (shipped in pretty_midi) with TinySoundFont, as in
`shuffle_learn.data.gm_notes`: the mixtures are synthetic mixtures of
synthesised instrument and drum sounds. Examples are flat dicts:

  audio         float32 (seconds * SAMPLE_RATE,)  a mono mixture at 16 kHz, in
                                                  [-1, 1]
  frame_labels  uint8 (num_frames, num_classes)   multi-hot: frame t covers
                                                  [t * frame_hop, (t + 1) *
                                                  frame_hop) seconds; see
                                                  `frame_labels`

and `SoundEventsSource.events` gives a mixture's events as (onset_s, offset_s,
class_name) tuples, the input of `evaluate`.

Classes (`EVENT_CLASSES`, 11 as in DCASE 2016 task 2): six of the General-MIDI
drum kit (bank 128: kick, snare, hi-hat, clap, tom, cymbal; each of its keys in
TimGM6mb's 8 kits, tuned -2 to +2 semitones in half-semitone steps, quarter
steps for clap, which has one key) and five melodic families (piano, guitar,
strings, brass, flute; 3 to 5 programs each, 13 pitches, notes held 0.25, 0.5
or 1 s). A class's variants are rendered once
to ``foreground/<class>/<preset>-<key>-t<tuning>-h<held>.wav`` (16-bit PCM,
peak at -6 dBFS), each trimmed to its audible extent: from the first to the
last 10 ms frame whose RMS is within 40 dB of the loudest frame's, so that a
file's start and end are the event's annotated onset and offset. Renders that
are silent (peak below -60 dBFS) are left out, and so is a render equal (up to
gain, within 1e-4 of peak) to one kept before it in the same class: TimGM6mb's
kits share many samples, and TinySoundFont's velocity is a pure gain, which is
why every file is rendered at one velocity (`VELOCITY`).

Splits: a file's split is `images.split_of` of its sound key,
``"sound_events/<class>/<preset>-<key>-t<tuning>"``: 80 / 10 / 10, and the held
lengths of one note share a split. Test mixtures use only test files, so they
hold event renders never seen in training (but of the same SoundFont, whose
samples are pitch-shifted across neighbouring keys and tunings).

Backgrounds (`BACKGROUNDS`): ``background/<name>/<split>-<k>.wav``, 10 s each,
`_BACKGROUND_FILES` per split and kind, each split its own files: "pink" and
"brown" noise (Gaussian noise shaped to 1/f and 1/f^2 power in the frequency
domain, above 20 Hz) and "pad", a sustained triad of GM program 89 (Warm Pad),
which is in no event class.

Mixtures: mixture ``index`` of a split draws from
``np.random.default_rng((seed, split, index))`` (split as its index in
`SPLITS`) its number of events (uniform in ``events_per_mixture``), its
background kind and file, each event's class (uniform) and file (uniform among
the split's files of the class), and the seed of a scaper ``Scaper``
(Salamon et al. 2017), which draws the background's start, each event's onset
(uniform such that the event ends by the end of the mixture; events longer
than the mixture are cut to it) and its SNR (uniform in ``snr_db``: the event's
loudness in LUFS over the background's, which scaper sets to `REF_DB` LUFS),
and mixes them (10 ms fades, no pitch shift, time stretch or reverb; a mixture
that would clip is scaled down by scaper). Events may overlap, also within a
class. The annotations are scaper's. So mixtures depend only on (seed, split,
index) and the arguments: two builds give the same bytes.

scaper and SoX: scaper 1.6.5 passes every file through a SoX transformer
(``soxbindings`` or ``sox``) to convert its rate and channels. Every file here
is already 16 kHz mono, so that conversion is the identity: it is done in
process by `_IdentityTransformer`, which needs neither the SoX binary nor
libsox (whose Python bindings have no wheel for this Python), and which raises
for anything else. scaper 1.6.5 also still uses ``np.Inf``, which NumPy 2
removed; its own module's ``np`` is given that alias (`_NumpyWithInf`).

Caches (under `default_cache_dir`, ``$SHUFFLE_LEARN_CACHE/sound_events``):
``events-<key>/`` holds the foreground and background files and their
``index.json``; ``mixtures/<split>-<key>.npz`` the split's audio (float32,
``(num_examples, samples)``, uncompressed, memory-mapped when read; 256 KB
per 4 s mixture) and ``mixtures/<split>-<key>.json`` its events, their files
and backgrounds. Keys hash everything the files depend on (the SoundFont's
path, size and mtime, the class and background specs, the arguments and
`_FORMAT_VERSION`). Both are written to a temporary name and renamed, so a
reader never sees half a cache; a JSON whose own key or counts do not match is
rebuilt, never trusted.

Scoring (`evaluate`, with sed_eval, Mesaros et al. 2016): DCASE 2016 task 2's
event-based F-measure on onsets only (t_collar 0.2 s; offsets ignored) and
segment-based F-measure on 1 s segments, both micro-averaged over all
events, plus their error rates.

Measurements and a baseline: docs/data/sound_events.md.

Example:
  >>> source = SoundEventsSource("train", num_examples=100)
  >>> example = source[0]
  >>> example["audio"].shape, example["frame_labels"].shape
  ((64000,), (40, 11))
  >>> reference = [source.events(i) for i in range(len(source))]
  >>> evaluate(reference, reference)["event_onset_f1"]
  1.0

References:
  Mesaros, Heittola, Benetos, Foster, Lagrange, Virtanen, Plumbley. Detection
  and Classification of Acoustic Scenes and Events: Outcome of the DCASE 2016
  Challenge. IEEE/ACM TASLP 26(2), 2018.
  Mesaros, Heittola, Virtanen. Metrics for Polyphonic Sound Event Detection.
  Applied Sciences 6(6):162, 2016 (sed_eval).
  Salamon, MacConnell, Cartwright, Li, Bello. Scaper: A library for soundscape
  synthesis and augmentation. WASPAA 2017.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import io
import json
import math
import os
import shutil
import struct
import sys
import tempfile
import threading
import time
import types
import warnings
import zipfile
from typing import Iterable, Sequence

import numpy as np

from shuffle_learn import _checks
from shuffle_learn.data import gm_index
from shuffle_learn.data import images
from shuffle_learn.data import schema
from shuffle_learn.data import soundfonts

SAMPLE_RATE = schema.SAMPLE_RATE
SPLITS = schema.SPLITS
_FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class EventClass:
  """One event class: every (preset, key, tuning, held) combination is a variant.

  Attributes:
    name: the class name, also its folder name.
    bank: SoundFont bank: 0 for melodic programs, 128 for drum kits.
    presets: General-MIDI programs (bank 0) or drum kits (bank 128).
    keys: MIDI pitches, or drum-kit keys (35 is the acoustic bass drum).
    tunings: channel tunings in semitones.
    held: note-on times in seconds.
    release: seconds rendered after note off.
  """

  name: str
  bank: int
  presets: tuple[int, ...]
  keys: tuple[int, ...]
  tunings: tuple[float, ...] = (0.0,)
  held: tuple[float, ...] = (0.25, 0.5, 1.0)
  release: float = 0.5


_KITS = (0, 8, 16, 24, 25, 32, 40, 48)  # TimGM6mb: Standard, Room, Power, Electronic, TR 808, Jazz, Brush, Orchestra.


def _tunings(step: float) -> tuple[float, ...]:
  return tuple(round(-2.0 + i * step, 2) for i in range(int(round(4.0 / step)) + 1))  # -2 to +2 semitones.


def _drums(name: str, keys: tuple[int, ...], step: float = 0.5) -> EventClass:
  return EventClass(name, 128, _KITS, keys, _tunings(step), held=(0.1,), release=1.4)


def _pitches(low: int, high: int) -> tuple[int, ...]:
  return tuple(range(low, high + 1, 3))  # 13 pitches for a 36-semitone range.


EVENT_CLASSES = (
    _drums("kick", (35, 36)),
    _drums("snare", (38, 40)),
    _drums("hi-hat", (42, 44, 46)),  # Closed, pedal, open.
    _drums("clap", (39,), step=0.25),  # One key: finer tunings for enough variants per split.
    _drums("tom", (41, 45, 48)),  # Low floor, low, high-mid.
    _drums("cymbal", (49, 51, 52, 55, 57, 59)),  # Crash 1, ride 1, Chinese, splash, crash 2, ride 2.
    EventClass("piano", 0, (0, 1, 2, 3), _pitches(48, 84)),  # Acoustic grand, bright, electric grand, honky-tonk.
    EventClass("guitar", 0, (24, 25, 26, 27), _pitches(40, 76)),  # Nylon, steel, jazz, clean.
    EventClass("strings", 0, (40, 41, 42), _pitches(43, 79)),  # Violin, viola, cello.
    EventClass("brass", 0, (56, 57, 59, 60, 61), _pitches(46, 82)),  # Trumpet, trombone, muted trumpet, horn, section.
    EventClass("flute", 0, (72, 73, 74, 75), _pitches(62, 98)),  # Piccolo, flute, recorder, pan flute.
)
CLASS_NAMES = tuple(c.name for c in EVENT_CLASSES)
VELOCITY = 100
BACKGROUNDS = ("pink", "brown", "pad")
_BACKGROUND_FILES = 4  # Per split and kind.
_BACKGROUND_SECONDS = 10.0
_PAD_PROGRAM = 89  # Warm Pad.
REF_DB = -30.0  # Background loudness in LUFS (scaper's ref_db).
_FADE_SECONDS = 0.01
_TRIM_DB = -40.0
_SILENCE_DB = -60.0
_STORE_PEAK = 0.5
_DUPLICATE_TOLERANCE = 1e-4

# DCASE 2016 task 2's metrics.
T_COLLAR = 0.2
PERCENTAGE_OF_LENGTH = 0.5
SEGMENT_SECONDS = 1.0

_PIP = {
    "scaper": "scaper (pip install --no-deps scaper==1.6.5; pip install jams pyloudnorm: its other dependency, "
              "soxbindings, is not needed here and has no wheel for this Python)",
    "sed_eval": "sed_eval (pip install sed_eval)",
    "soundfile": "soundfile (pip install soundfile)",
}


def _require(module: str):
  """Imports `module`, or raises ImportError naming the pip package that provides it."""
  try:
    return importlib.import_module(module)
  except ImportError as e:
    raise ImportError(f"shuffle_learn.data.sound_events needs the pip package {_PIP[module]}: {e}") from e


def default_cache_dir() -> str:
  """$SHUFFLE_LEARN_CACHE/sound_events, by default ~/.cache/shuffle_learn/sound_events (beside gm_notes')."""
  return os.path.join(os.path.dirname(gm_index.default_cache_dir()), "sound_events")


# ----------------------------------------------------------------------------
# Labels, events and scores.


def _check_class_names(class_names) -> tuple[str, ...]:
  if isinstance(class_names, str) or not isinstance(class_names, Sequence) or not class_names or not all(
      isinstance(c, str) for c in class_names):
    raise ValueError(f"class_names must be a non-empty sequence of strings, got {class_names!r}.")
  if len(set(class_names)) != len(class_names):
    raise ValueError(f"class_names has repeated entries: {class_names!r}.")
  return tuple(class_names)


def _check_events(name: str, events) -> list[tuple[float, float, str]]:
  """A list of (onset, offset, class) with finite onset <= offset."""
  if isinstance(events, (str, bytes)) or not isinstance(events, Iterable):
    raise ValueError(f"{name} must be a list of (onset_s, offset_s, class_name) tuples, got {events!r}.")
  checked = []
  for event in events:
    if isinstance(event, (str, bytes)) or not isinstance(event, Sequence) or len(event) != 3:
      raise ValueError(f"{name} must hold (onset_s, offset_s, class_name) tuples, got {event!r}.")
    onset, offset, label = event
    if not isinstance(label, str):
      raise ValueError(f"{name}: the class of {event!r} must be a string.")
    onset = _checks.check_number(f"{name} onset", onset)
    offset = _checks.check_number(f"{name} offset", offset)
    if offset < onset:
      raise ValueError(f"{name}: {event!r} ends before it starts.")
    checked.append((onset, offset, label))
  return checked


_FRAME_EPS = 1e-6  # In frames: an event must overlap a frame by more than this to mark it.


def frame_labels(events, num_frames: int, hop_seconds: float, class_names: Sequence[str]) -> np.ndarray:
  """Multi-hot frame labels of a list of events.

  Frame ``t`` covers ``[t * hop_seconds, (t + 1) * hop_seconds)``; it is marked
  for a class if an event of that class overlaps it by more than 1e-6 frames:
  ``onset / hop < t + 1 - 1e-6`` and ``offset / hop > t + 1e-6``. So an event
  marks every frame it touches, an event on frame boundaries marks exactly the
  frames between them, and a zero-length event marks none. Events past the last
  frame are cut.

  Args:
    events: (onset_s, offset_s, class_name) tuples.
    num_frames: number of frames, >= 1.
    hop_seconds: frame length and hop in seconds, > 0.
    class_names: the classes, in column order.

  Returns:
    uint8 ``(num_frames, len(class_names))``, 1 where a class is active.

  Raises:
    ValueError: a bad argument, or an event whose class is not in
      `class_names`.
  """
  num_frames = _checks.check_int("num_frames", num_frames, 1)
  hop_seconds = _checks.check_number("hop_seconds", hop_seconds, 0.0, strict=True)
  class_names = _check_class_names(class_names)
  column = {name: k for k, name in enumerate(class_names)}
  labels = np.zeros((num_frames, len(class_names)), np.uint8)
  for onset, offset, label in _check_events("events", events):
    if label not in column:
      raise ValueError(f"events: class {label!r} is not in class_names {class_names}.")
    first = max(0, math.floor(onset / hop_seconds + _FRAME_EPS))
    end = min(num_frames, math.ceil(offset / hop_seconds - _FRAME_EPS))
    if first < end:
      labels[first:end, column[label]] = 1
  return labels


def frames_to_events(probabilities, hop_seconds: float, class_names: Sequence[str], threshold: float = 0.5,
                     median_frames: int = 1) -> list[tuple[float, float, str]]:
  """Events from frame-wise class probabilities: threshold, optional median filter, merge runs.

  A frame is active for a class where its probability is ``>= threshold``;
  with ``median_frames`` > 1 the activity is then median-filtered over that
  many frames per class (edges repeated). Each run of consecutive active frames
  ``[a, b)`` becomes one event ``(a * hop_seconds, b * hop_seconds, class)``,
  so `frame_labels` of the result gives back the (filtered) activity.

  Args:
    probabilities: ``(T, K)`` scores, K = ``len(class_names)``.
    hop_seconds: frame hop in seconds, > 0.
    class_names: the classes of the columns.
    threshold: activity threshold.
    median_frames: odd median-filter length in frames; 1 for none.

  Returns:
    Events sorted by onset, then by class column.
  """
  hop_seconds = _checks.check_number("hop_seconds", hop_seconds, 0.0, strict=True)
  class_names = _check_class_names(class_names)
  threshold = _checks.check_number("threshold", threshold)
  median_frames = _checks.check_int("median_frames", median_frames, 1)
  if median_frames % 2 == 0:
    raise ValueError(f"median_frames must be odd, got {median_frames}.")
  probabilities = np.asarray(probabilities)
  if probabilities.ndim != 2 or probabilities.shape[1] != len(class_names) or probabilities.dtype.kind not in "biuf":
    raise ValueError(
        f"probabilities must be a (T, {len(class_names)}) numeric array, got shape {probabilities.shape}.")
  active = (probabilities >= threshold).astype(np.int8)
  if median_frames > 1 and len(active):
    half = median_frames // 2
    padded = np.pad(active, ((half, half), (0, 0)), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, median_frames, axis=0)  # (T, K, median_frames)
    active = (windows.sum(-1) > half).astype(np.int8)
  edges = np.diff(np.pad(active, ((1, 1), (0, 0))), axis=0)  # (T + 1, K): +1 at a run's start, -1 after its end.
  events = []
  for k, name in enumerate(class_names):
    starts, ends = np.flatnonzero(edges[:, k] == 1), np.flatnonzero(edges[:, k] == -1)
    events.extend((int(a) * hop_seconds, int(b) * hop_seconds, name, k) for a, b in zip(starts, ends))
  events.sort(key=lambda e: (e[0], e[3]))
  return [e[:3] for e in events]


def _f_measure(overall: dict) -> float:
  """2 TP / (N_ref + N_sys): sed_eval's F-measure, and 0 where nothing was estimated (sed_eval: NaN)."""
  total = overall["Nref"] + overall["Nsys"]
  return 2.0 * overall["Ntp"] / total if total else math.nan


def evaluate(reference, estimated, class_names: Sequence[str] | None = None) -> dict[str, float]:
  """DCASE 2016 task 2 scores of estimated events against reference events, with sed_eval.

  Each list holds one list of (onset_s, offset_s, class_name) events per
  mixture, in the same order. Scores are micro-averages over all mixtures and
  classes (sed_eval's "overall"):

    event_onset_f1          event-based F-measure: an estimated event matches
                            a reference event of its class whose onset is
                            within 0.2 s (`T_COLLAR`); offsets are ignored
    event_onset_error_rate  its error rate, (S + D + I) / N_ref
    segment_f1              segment-based F-measure on 1 s segments
                            (`SEGMENT_SECONDS`): per segment and class, active
                            in the reference vs in the estimate
    segment_error_rate      its error rate

  An F-measure is 2 TP / (N_ref + N_sys), so it is 0 when nothing is
  estimated (where sed_eval's precision, and F, would be NaN) and NaN only when
  neither list holds an event.

  Args:
    reference: per mixture, the reference events.
    estimated: per mixture, the estimated events.
    class_names: the classes scored; by default every class in either list.
      Events of other classes are ignored.

  Returns:
    The four scores above, as floats.

  Raises:
    ImportError: sed_eval is not installed.
    ValueError: the lists differ in length or hold malformed events.
  """
  if isinstance(reference, (str, bytes)) or not isinstance(reference, Sequence):
    raise ValueError(f"reference must be a list of event lists, one per mixture, got {type(reference).__name__}.")
  if isinstance(estimated, (str, bytes)) or not isinstance(estimated, Sequence) or len(estimated) != len(reference):
    raise ValueError(f"estimated must be a list of event lists, one per mixture of reference ({len(reference)}).")
  reference = [_check_events("reference", events) for events in reference]
  estimated = [_check_events("estimated", events) for events in estimated]
  if class_names is None:  # sed_eval needs one class, even where there is no event at all.
    class_names = sorted({e[2] for events in reference + estimated for e in events}) or ["none"]
  class_names = list(_check_class_names(class_names))
  sed_eval = _require("sed_eval")
  event_metrics = sed_eval.sound_event.EventBasedMetrics(
      event_label_list=class_names, t_collar=T_COLLAR, percentage_of_length=PERCENTAGE_OF_LENGTH,
      evaluate_onset=True, evaluate_offset=False)
  segment_metrics = sed_eval.sound_event.SegmentBasedMetrics(event_label_list=class_names,
                                                             time_resolution=SEGMENT_SECONDS)
  known = set(class_names)
  for i, (ref, est) in enumerate(zip(reference, estimated)):
    as_dicts = lambda events: [{"filename": f"mixture{i}", "event_onset": onset, "event_offset": offset,
                                "event_label": label} for onset, offset, label in events if label in known]
    ref, est = as_dicts(ref), as_dicts(est)
    event_metrics.evaluate(reference_event_list=ref, estimated_event_list=est)
    segment_metrics.evaluate(reference_event_list=ref, estimated_event_list=est)
  event_overall = event_metrics.results_overall_metrics()
  segment_overall = segment_metrics.results_overall_metrics()
  return {
      "event_onset_f1": _f_measure(event_metrics.overall),
      "event_onset_error_rate": float(event_overall["error_rate"]["error_rate"]),
      "segment_f1": _f_measure(segment_metrics.overall),
      "segment_error_rate": float(segment_overall["error_rate"]["error_rate"]),
  }


# ----------------------------------------------------------------------------
# Rendering the event and background files.


def _render(template, bank: int, preset: int, keys: Sequence[int], tuning: float, held: float,
            release: float) -> np.ndarray:
  """Mono float32 of `keys` played together at `VELOCITY` on a fresh copy of `template` (as `soundfonts`)."""
  voice = type(template)(template)  # tsf_copy: shared samples, fresh voices and channels.
  voice.set_max_voices(soundfonts.MAX_VOICES)
  voice.channel_set_bank(0, bank)
  voice.channel_set_preset_number(0, preset, False)
  if tuning:
    voice.channel_set_tuning(0, tuning)
  for key in keys:
    voice.channel_note_on(0, key, VELOCITY / 127.0)
  held, release = int(round(held * SAMPLE_RATE)), int(round(release * SAMPLE_RATE))
  stereo = np.empty((held + release) * 2, np.float32)
  voice.render(memoryview(stereo[: 2 * held]).cast("B"))
  for key in keys:
    voice.channel_note_off(0, key)
  voice.render(memoryview(stereo[2 * held :]).cast("B"))
  stereo = stereo.reshape(-1, 2)
  return ((stereo[:, 0] + stereo[:, 1]) * np.float32(0.5)).astype(np.float32)


def _audible(audio: np.ndarray) -> np.ndarray:
  """`audio` from the first to the last 10 ms frame whose RMS is within `_TRIM_DB` of the loudest frame's."""
  frame = SAMPLE_RATE // 100
  padded = np.pad(audio, (0, -len(audio) % frame)).astype(np.float64)
  rms = np.sqrt(np.mean(padded.reshape(-1, frame) ** 2, axis=1))
  loud = np.flatnonzero(rms >= rms.max() * 10.0 ** (_TRIM_DB / 20.0))
  return audio[loud[0] * frame : (loud[-1] + 1) * frame]


def _variant_name(preset: int, key: int, tuning: float) -> str:
  return f"{preset:03d}-{key:03d}-t{tuning:+.2f}"


def _shaped_noise(rng: np.random.Generator, num_samples: int, exponent: float) -> np.ndarray:
  """Gaussian noise whose power falls as 1/f**exponent above 20 Hz (flat below), peak `_STORE_PEAK`."""
  spectrum = np.fft.rfft(rng.standard_normal(num_samples))
  frequencies = np.maximum(np.fft.rfftfreq(num_samples, 1.0 / SAMPLE_RATE), 20.0)
  noise = np.fft.irfft(spectrum * frequencies ** (-exponent / 2.0), num_samples)
  return (noise * (_STORE_PEAK / np.abs(noise).max())).astype(np.float32)


def _background(template, kind: str, split: str, k: int) -> np.ndarray:
  """Background `k` of `kind` for `split`: float32 (`_BACKGROUND_SECONDS` * SAMPLE_RATE,), peak `_STORE_PEAK`."""
  rng = np.random.default_rng((_FORMAT_VERSION, SPLITS.index(split), BACKGROUNDS.index(kind), k))
  num_samples = int(_BACKGROUND_SECONDS * SAMPLE_RATE)
  if kind == "pink":
    return _shaped_noise(rng, num_samples, 1.0)
  if kind == "brown":
    return _shaped_noise(rng, num_samples, 2.0)
  root = int(rng.integers(40, 53))  # A root position triad, major or minor, E2 to E3.
  chord = (root, root + int(rng.choice((3, 4))), root + 7)
  audio = _render(template, 0, _PAD_PROGRAM, chord, 0.0, _BACKGROUND_SECONDS, 0.0)[:num_samples]
  return (audio * (_STORE_PEAK / np.abs(audio).max())).astype(np.float32)


def _spec() -> dict:
  """Everything the event and background files depend on besides the SoundFont."""
  return {
      "version": _FORMAT_VERSION, "sample_rate": SAMPLE_RATE, "velocity": VELOCITY,
      "classes": [dataclasses.asdict(c) for c in EVENT_CLASSES], "backgrounds": list(BACKGROUNDS),
      "background_files": _BACKGROUND_FILES, "background_seconds": _BACKGROUND_SECONDS, "pad": _PAD_PROGRAM,
      "trim_db": _TRIM_DB, "silence_db": _SILENCE_DB, "store_peak": _STORE_PEAK,
      "duplicate_tolerance": _DUPLICATE_TOLERANCE,
  }


def _hash(payload) -> str:
  return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _write_wav(soundfile, path: str, audio: np.ndarray) -> None:
  """`audio` as a 16-bit PCM WAV file (encoded in memory: soundfile syncs files to disk on close)."""
  buffer = io.BytesIO()
  soundfile.write(buffer, audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")
  with open(path, "wb") as f:
    f.write(buffer.getvalue())


def _build_files(soundfont: str, folder: str, key: str) -> dict:
  """Renders every event and background file into `folder`; returns the index written to its ``index.json``."""
  soundfile = _require("soundfile")
  start = time.perf_counter()
  template = soundfonts.load_soundfont(soundfont, sample_rate=SAMPLE_RATE).soundfonts[0]
  files, counts = [], {}
  for event_class in EVENT_CLASSES:
    os.makedirs(os.path.join(folder, "foreground", event_class.name))
    kept = {}  # (length, argmax) -> peak-normalised audio of the files kept: the duplicate check's buckets.
    count = counts[event_class.name] = {"rendered": 0, "silent": 0, "duplicate": 0, "missing_presets": []}
    for preset in event_class.presets:
      if template.get_preset_index(event_class.bank, preset) < 0:
        count["missing_presets"].append(preset)
        continue
      for key_ in event_class.keys:
        for tuning in event_class.tunings:
          variant = _variant_name(preset, key_, tuning)
          split = images.split_of(f"sound_events/{event_class.name}/{variant}")
          for held in event_class.held:
            count["rendered"] += 1
            audio = _render(template, event_class.bank, preset, (key_,), tuning, held, event_class.release)
            peak = float(np.abs(audio).max())
            if not math.isfinite(peak) or peak < 10.0 ** (_SILENCE_DB / 20.0):
              count["silent"] += 1
              continue
            audio = _audible(audio)
            audio = audio * (_STORE_PEAK / np.abs(audio).max())
            bucket = kept.setdefault((len(audio), int(np.argmax(np.abs(audio)))), [])
            if any(np.max(np.abs(audio - other)) < _DUPLICATE_TOLERANCE for other in bucket):
              count["duplicate"] += 1
              continue
            bucket.append(audio)
            name = f"{variant}-h{held:.2f}.wav"
            _write_wav(soundfile, os.path.join(folder, "foreground", event_class.name, name), audio)
            files.append({"class": event_class.name, "file": name, "split": split,
                          "seconds": len(audio) / SAMPLE_RATE})
  backgrounds = []
  for kind in BACKGROUNDS:
    os.makedirs(os.path.join(folder, "background", kind))
    for split in SPLITS:
      for k in range(_BACKGROUND_FILES):
        name = f"{split}-{k}.wav"
        _write_wav(soundfile, os.path.join(folder, "background", kind, name), _background(template, kind, split, k))
        backgrounds.append({"kind": kind, "file": name, "split": split, "seconds": _BACKGROUND_SECONDS})
  return {"version": _FORMAT_VERSION, "key": key, "soundfont": soundfont, "counts": counts, "files": files,
          "backgrounds": backgrounds, "seconds": time.perf_counter() - start}


def _read_index(folder: str, key: str) -> dict | None:
  """The ``index.json`` of `folder` if it is of this format and `key`, else None."""
  try:
    with open(os.path.join(folder, "index.json")) as f:
      index = json.load(f)
  except (OSError, ValueError):
    return None
  return index if isinstance(index, dict) and index.get("version") == _FORMAT_VERSION and index.get("key") == key \
      else None


def _events_key(soundfont: str) -> str:
  return _hash({"spec": _spec(), "soundfont": list(soundfonts.fingerprint(soundfont))})


def _events_folder(cache_dir: str, soundfont: str) -> tuple[str, dict]:
  """The folder of event and background files for `soundfont` (built if absent or damaged) and its index."""
  key = _events_key(soundfont)
  folder = os.path.join(cache_dir, f"events-{key}")
  index = _read_index(folder, key)
  if index is not None:
    return folder, index
  os.makedirs(cache_dir, exist_ok=True)
  temporary = tempfile.mkdtemp(prefix=f".events-{key}-", dir=cache_dir)
  try:
    index = _build_files(soundfont, temporary, key)
    with open(os.path.join(temporary, "index.json"), "w") as f:
      json.dump(index, f)
    if _read_index(folder, key) is None:  # Not built meanwhile by another process.
      shutil.rmtree(folder, ignore_errors=True)  # Damaged, if there at all.
      os.rename(temporary, folder)
  finally:
    shutil.rmtree(temporary, ignore_errors=True)
  return folder, index


# ----------------------------------------------------------------------------
# Mixing with scaper.


class SoxUnavailableError(RuntimeError):
  """scaper asked for a SoX operation that this source does not offer: there is no SoX on the machine."""


class _IdentityTransformer:
  """The part of ``sox.Transformer`` scaper 1.6.5 calls here, done in process: conversion to the same format.

  scaper converts every file to the soundscape's rate and channel count with
  ``convert``, ``set_output_format`` and ``build_array``. Every file of this
  source is already `SAMPLE_RATE` mono, so the conversion returns the samples
  unchanged; another rate or channel count, and every other SoX effect (pitch
  shift, time stretch, reverb, trim), raise `SoxUnavailableError`.
  """

  def __init__(self):
    self._format = None

  def convert(self, samplerate=None, n_channels=None, bitdepth=None):
    self._format = (samplerate, n_channels)
    return self

  def set_output_format(self, **kwargs):
    return self

  def build_array(self, input_filepath=None, input_array=None, sample_rate_in=None, **kwargs):
    array = np.asarray(input_array) if input_array is not None else None
    if array is None or array.ndim != 2 or (sample_rate_in, array.shape[1]) != self._format:
      raise SoxUnavailableError(
          f"scaper asked SoX to convert audio to {self._format} (rate, channels); sound_events only mixes files "
          f"already in that format and converts nothing.")
    return array

  def _effect(self, name: str):
    raise SoxUnavailableError(f"scaper asked SoX for {name!r}, which sound_events does not provide (no SoX here).")

  def pitch(self, *args, **kwargs):
    self._effect("pitch")

  def tempo(self, *args, **kwargs):
    self._effect("tempo")

  def reverb(self, *args, **kwargs):
    self._effect("reverb")

  def trim(self, *args, **kwargs):
    self._effect("trim")

  def build(self, *args, **kwargs):
    self._effect("build")


_SOX = types.ModuleType("soxbindings")  # Stands in for scaper's SoX module.
_SOX.Transformer = _IdentityTransformer


class _NumpyWithInf(types.ModuleType):
  """NumPy plus ``Inf``, an alias NumPy 2 removed that scaper 1.6.5 still uses."""

  Inf = np.inf

  def __getattr__(self, name):
    return getattr(np, name)


_SCAPER_LOCK = threading.Lock()


def _import_scaper():
  """scaper, imported without SoX bindings if none are installed, its ``np`` given ``Inf``."""
  try:
    if "scaper" not in sys.modules and importlib.util.find_spec("soxbindings") is None:
      sys.modules["soxbindings"] = _SOX  # Only for scaper's ``import soxbindings as sox``.
      try:
        scaper = importlib.import_module("scaper")
      finally:
        if sys.modules.get("soxbindings") is _SOX:
          del sys.modules["soxbindings"]
    else:
      scaper = importlib.import_module("scaper")
    core = importlib.import_module("scaper.core")
  except ImportError as e:
    raise ImportError(f"shuffle_learn.data.sound_events needs the pip package {_PIP['scaper']}: {e}") from e
  if not hasattr(core.np, "Inf"):
    core.np = _NumpyWithInf("numpy")
  return scaper


def _mixture(scaper, folder: str, split_files: dict, backgrounds: dict, seconds: float, seed: int, split: str,
             index: int, events_per_mixture: tuple[int, int], snr_db: tuple[float, float]):
  """Mixture `index` of `split`.

  Returns:
    (float32 audio, its events as (onset, offset, class, file name) sorted by
    onset, its background as "kind/file", whether scaper scaled it down to
    avoid clipping).
  """
  rng = np.random.default_rng((seed, SPLITS.index(split), index))
  num_events = int(rng.integers(events_per_mixture[0], events_per_mixture[1] + 1))
  kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
  background = backgrounds[kind][int(rng.integers(len(backgrounds[kind])))]
  mixer = scaper.Scaper(seconds, os.path.join(folder, "foreground"), os.path.join(folder, "background"),
                        random_state=int(rng.integers(2**31)))
  mixer.sr, mixer.n_channels, mixer.ref_db = SAMPLE_RATE, 1, REF_DB
  mixer.fade_in_len = mixer.fade_out_len = _FADE_SECONDS
  uniform = lambda low, high: ("uniform", low, high) if high > low else ("const", low)
  mixer.add_background(label=("const", kind), source_file=("const", os.path.join(folder, "background", kind,
                                                                                  background["file"])),
                       source_time=uniform(0.0, max(0.0, background["seconds"] - seconds)))
  for _ in range(num_events):
    name = CLASS_NAMES[int(rng.integers(len(CLASS_NAMES)))]
    event = split_files[name][int(rng.integers(len(split_files[name])))]
    duration = min(event["seconds"], seconds)
    mixer.add_event(label=("const", name), source_file=("const", os.path.join(folder, "foreground", name,
                                                                               event["file"])),
                    source_time=("const", 0.0), event_time=uniform(0.0, seconds - duration),
                    event_duration=("const", duration), snr=uniform(*snr_db), pitch_shift=None, time_stretch=None)
  audio, jam, _, _ = mixer.generate(fix_clipping=True, disable_instantiation_warnings=True)
  annotation = jam.annotations.search(namespace="scaper")[0]
  events = sorted((float(obs.time), float(obs.time + obs.duration), str(obs.value["label"]),
                   os.path.basename(obs.value["source_file"])) for obs in annotation.data
                  if obs.value["role"] == "foreground")
  scaled = bool(annotation.sandbox.scaper["peak_normalization_scale_factor"] != 1.0)
  return audio[:, 0].astype(np.float32), events, f"{kind}/{background['file']}", scaled


def _generate(scaper, folder: str, index: dict, split: str, num_examples: int, seconds: float, seed: int,
              events_per_mixture, snr_db) -> tuple[np.ndarray, dict]:
  """The split's mixtures: float32 (num_examples, samples) audio and their JSON record (events, files, timing)."""
  split_files = {name: [f for f in index["files"] if f["class"] == name and f["split"] == split]
                 for name in CLASS_NAMES}
  backgrounds = {kind: [b for b in index["backgrounds"] if b["kind"] == kind and b["split"] == split]
                 for kind in BACKGROUNDS}
  empty = [name for name, files in {**split_files, **backgrounds}.items() if not files]
  if empty:
    raise ValueError(f"split {split!r} has no files of {empty}: the event set is too small.")
  num_samples = int(seconds * SAMPLE_RATE)  # As scaper.
  audio = np.zeros((num_examples, num_samples), np.float32)
  events, files, backgrounds_used, clipped = [], [], [], 0
  start = time.perf_counter()
  with _SCAPER_LOCK, warnings.catch_warnings():
    warnings.simplefilter("ignore", scaper.scaper_warnings.ScaperWarning)
    saved, scaper.core.sox = scaper.core.sox, _SOX  # Also when real SoX bindings are installed: the same bytes.
    try:
      for i in range(num_examples):
        mixture, mixture_events, background, scaled = _mixture(
            scaper, folder, split_files, backgrounds, seconds, seed, split, i, events_per_mixture, snr_db)
        audio[i] = mixture[:num_samples]
        events.append([e[:3] for e in mixture_events])
        files.append([f"{e[2]}/{e[3]}" for e in mixture_events])
        backgrounds_used.append(background)
        clipped += scaled
    finally:
      scaper.core.sox = saved
  elapsed = time.perf_counter() - start
  return audio, {"events": events, "event_files": files, "backgrounds": backgrounds_used,
                 "generation": {"clipped": clipped, "seconds": elapsed, "mixtures_per_second": num_examples / elapsed}}


def _write_atomic(path: str, write) -> None:
  directory = os.path.dirname(path)
  os.makedirs(directory, exist_ok=True)
  handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=directory)
  try:
    with os.fdopen(handle, "wb") as f:
      write(f)
    os.replace(temporary, path)
  except BaseException:
    if os.path.exists(temporary):
      os.remove(temporary)
    raise


def _memmap_npz(path: str, name: str) -> np.ndarray:
  """Array `name` of an uncompressed .npz file, memory-mapped read-only."""
  with zipfile.ZipFile(path) as archive:
    info = archive.getinfo(f"{name}.npy")
  if info.compress_type != zipfile.ZIP_STORED:
    raise ValueError(f"{path!r}: {name} is compressed and cannot be memory-mapped.")
  with open(path, "rb") as f:
    f.seek(info.header_offset)
    header = f.read(30)  # The zip local file header; then the file name and the extra field.
    if header[:4] != b"PK\x03\x04":
      raise ValueError(f"{path!r} is not a readable .npz file.")
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    f.seek(info.header_offset + 30 + name_length + extra_length)
    version = np.lib.format.read_magic(f)
    if version not in ((1, 0), (2, 0)):
      raise ValueError(f"{path!r}: {name} has .npy format {version}, not 1.0 or 2.0.")
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = read_header(f)
    offset = f.tell()
  return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran_order else "C")


# ----------------------------------------------------------------------------
# The source.


def _check_pair(name: str, value, check) -> tuple:
  if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
    raise ValueError(f"{name} must be a (low, high) pair, got {value!r}.")
  low, high = (check(name, v) for v in value)
  if high < low:
    raise ValueError(f"{name} must be a (low, high) pair with low <= high, got {value!r}.")
  return low, high


class SoundEventsSource:
  """Mixtures of SoundFont sound events on backgrounds, with their events and frame labels.

  A grain ``RandomAccessDataSource``: `__len__` and `__getitem__`,
  deterministic and picklable (it keeps paths and the events; the audio is
  memory-mapped from the cache in each process on first use). Building it
  renders the event and background files and generates the split's mixtures
  with scaper, unless they are cached (see the module docstring).

  Attributes:
    split: "train", "valid" or "test".
    seconds: mixture length in seconds.
    sample_rate: `SAMPLE_RATE`.
    frame_hop: frame length and hop of ``frame_labels``, in seconds.
    num_frames: frames per mixture, ``ceil(seconds / frame_hop)``.
    class_names: `CLASS_NAMES`, the columns of ``frame_labels``.
    summary: event files per class and split, background files per split, and
      the mixtures' generation (``clipped``: scaled down by scaper;
      ``mixtures_per_second`` when they were generated, not read from the cache).
  """

  def __init__(self, split: str, *, num_examples: int, seconds: float = 4.0, frame_hop: float = 0.1,
               cache_dir: str | os.PathLike | None = None, seed: int = 0,
               events_per_mixture: Sequence[int] = (1, 4), snr_db: Sequence[float] = (-6.0, 6.0)):
    """Builds or reads the event files and the split's mixtures.

    Args:
      split: "train", "valid" or "test".
      num_examples: number of mixtures, >= 1.
      seconds: mixture length in seconds, in [0.1, 60].
      frame_hop: frame length and hop of ``frame_labels`` in seconds, at most
        `seconds`.
      cache_dir: folder of the event files and mixtures; None for
        `default_cache_dir`.
      seed: seed of the mixtures, >= 0.
      events_per_mixture: (fewest, most) events in a mixture, 1 <= fewest <=
        most <= 16.
      snr_db: (low, high) range of the events' loudness over the background's,
        in dB (LUFS); DCASE 2016 task 2 used -6, 0 and +6 dB.

    Raises:
      ValueError: a bad argument (the message names it).
      ImportError: scaper or soundfile is missing and the cache does not
        already hold the mixtures (the message names the pip package).
    """
    self.split = _checks.check_choice("split", split, SPLITS)
    num_examples = _checks.check_int("num_examples", num_examples, 1)
    self.seconds = _checks.check_number("seconds", seconds, 0.0, strict=True)
    if not 0.1 <= self.seconds <= 60.0:
      raise ValueError(f"seconds must be in [0.1, 60], got {seconds!r}.")
    self.frame_hop = _checks.check_number("frame_hop", frame_hop, 0.0, strict=True)
    if self.frame_hop > self.seconds:
      raise ValueError(f"frame_hop must be at most seconds={self.seconds}, got {frame_hop!r}.")
    if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
      raise ValueError(f"cache_dir must be a path or None, got {cache_dir!r}.")
    self._cache_dir = os.fspath(cache_dir) if cache_dir is not None else default_cache_dir()
    seed = _checks.check_int("seed", seed, 0)
    events_per_mixture = _check_pair("events_per_mixture", events_per_mixture,
                                      lambda name, v: _checks.check_int(name, v, 1, 16))
    snr_db = _check_pair("snr_db", snr_db, _checks.check_number)
    self.sample_rate = SAMPLE_RATE
    self.num_frames = max(1, math.ceil(self.seconds / self.frame_hop - _FRAME_EPS))
    self.class_names = CLASS_NAMES
    self._num_samples = int(self.seconds * SAMPLE_RATE)  # As scaper.

    soundfont = soundfonts.known_soundfonts().get("TimGM6mb")
    if soundfont is None:
      raise FileNotFoundError("sound_events renders TimGM6mb.sf2, shipped with pretty_midi: pip install pretty_midi")
    key = _hash({"events": _events_key(soundfont), "split": self.split, "num_examples": num_examples,
                 "seconds": self.seconds, "seed": seed, "events_per_mixture": events_per_mixture, "snr_db": snr_db,
                 "ref_db": REF_DB, "fade": _FADE_SECONDS})
    stem = os.path.join(self._cache_dir, "mixtures", f"{self.split}-{key}")
    self._audio_path = stem + ".npz"
    meta = self._read_meta(stem + ".json", key, num_examples)
    if meta is None:
      scaper = _import_scaper()  # Before rendering: a missing package fails fast.
      folder, index = _events_folder(self._cache_dir, soundfont)
      audio, record = _generate(scaper, folder, index, self.split, num_examples, self.seconds, seed,
                                events_per_mixture, snr_db)
      meta = {"version": _FORMAT_VERSION, "key": key, "num_examples": num_examples, **record,
              "files": self._file_counts(index)}
      _write_atomic(self._audio_path, lambda f: np.savez(f, audio=audio))
      _write_atomic(stem + ".json", lambda f: f.write(json.dumps(meta).encode()))
    self._events = [[tuple(e) for e in events] for events in meta["events"]]
    self._event_files = meta["event_files"]
    self._backgrounds = meta["backgrounds"]
    self.summary = {"files": meta["files"], "generation": meta["generation"],
                    "events": int(sum(len(e) for e in self._events))}
    self._audio = None
    self._repr = (f"SoundEventsSource(split={self.split!r}, num_examples={num_examples}, seconds={seconds!r}, "
                  f"frame_hop={frame_hop!r}, cache_dir={self._cache_dir!r}, seed={seed}, "
                  f"events_per_mixture={events_per_mixture!r}, snr_db={snr_db!r})")

  def _read_meta(self, path: str, key: str, num_examples: int) -> dict | None:
    """The cached mixtures' JSON if it and the audio file match `key`, else None."""
    try:
      with open(path) as f:
        meta = json.load(f)
      audio = _memmap_npz(self._audio_path, "audio")
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
      return None
    fields = ("events", "event_files", "backgrounds", "files", "generation")
    if (not isinstance(meta, dict) or meta.get("version") != _FORMAT_VERSION or meta.get("key") != key or
        not all(field in meta for field in fields) or len(meta["events"]) != num_examples or
        audio.shape != (num_examples, self._num_samples) or audio.dtype != np.float32):
      return None
    return meta

  @staticmethod
  def _file_counts(index: dict) -> dict:
    files = {name: {split: 0 for split in SPLITS} for name in CLASS_NAMES}
    for f in index["files"]:
      files[f["class"]][f["split"]] += 1
    backgrounds = {split: sum(b["split"] == split for b in index["backgrounds"]) for split in SPLITS}
    return {"foreground": files, "background": backgrounds, "render_counts": index["counts"]}

  @property
  def num_classes(self) -> int:
    """``len(class_names)``."""
    return len(self.class_names)

  def _check_index(self, index) -> int:
    if not _checks.is_int(index):
      raise TypeError(f"index must be an integer, got {index!r}.")
    n = len(self)
    if not -n <= index < n:
      raise IndexError(f"index {index} is out of range for a source of {n} mixtures.")
    return int(index) % n

  def events(self, index: int) -> list[tuple[float, float, str]]:
    """Mixture `index`'s events, (onset_s, offset_s, class_name) sorted by onset: `evaluate`'s input."""
    return list(self._events[self._check_index(index)])

  def event_files(self, index: int) -> list[str]:
    """The files of mixture `index`'s events, "class/file.wav" under ``foreground/``, in the order of `events`."""
    return list(self._event_files[self._check_index(index)])

  def background(self, index: int) -> str:
    """The background file of mixture `index`, "kind/file.wav" under ``background/``."""
    return self._backgrounds[self._check_index(index)]

  def __len__(self) -> int:
    return len(self._events)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    i = self._check_index(index)
    if self._audio is None:
      self._audio = _memmap_npz(self._audio_path, "audio")
    return {
        "audio": np.array(self._audio[i], np.float32),
        "frame_labels": frame_labels(self._events[i], self.num_frames, self.frame_hop, self.class_names),
    }

  def __getstate__(self):
    state = dict(self.__dict__)
    state["_audio"] = None  # Memory maps are opened again in each process.
    return state

  def __repr__(self) -> str:
    return self._repr
