"""NSynth-style notes rendered from General-MIDI SoundFonts.

NSynth (Engel et al. 2017) cannot be downloaded here, so this module builds
notes in its format from General-MIDI SoundFonts rendered with TinySoundFont
(the ``tinysoundfont`` package): one note per (SoundFont, program, pitch,
velocity), 16 kHz mono float32, note on for 3 s, note off, 1 s of release, 4 s
in all (64000 samples), as NSynth.

Examples are flat dicts in the package's common note schema (see
`shuffle_learn.data.nsynth`), so that every experiment runs on either source:

  audio               float32 (64000,)  in [-1, 1]; (clip_seconds * 16000,) with
                                        `clip_seconds`
  pitch               int32             MIDI key
  velocity            int32             one of VELOCITIES
  instrument/label    int32             one per SoundFont x program, in
                                        [0, num_instruments); its name is
                                        `GMNotesSource.instrument_names[label]`,
                                        e.g. "TimGM6mb:000 Piano 1"
  instrument/family   int32             index into FAMILIES (TFDS order)
  instrument/source   int32             the SoundFont's index in `soundfonts`;
                                        its name (file stem) is
                                        `GMNotesSource.source_names[source]`

Strings stay out of the examples (batches are arrays for the device);
`GMNotesSource.note` and `note_id` give a note's SoundFont name, program, pitch
and velocity, and an NSynth-style id, without rendering.

Selection: the programs of `GM_PROGRAM_FAMILY` (bank 0; drums, sound effects,
pads and other programs with no NSynth family are left out, see
`EXCLUDED_PROGRAMS`), each at the pitches of its family's range in
`FAMILY_PITCHES` and the five NSynth velocities. A note whose render peaks below
``silence_db`` (-60 dBFS) is one the preset cannot play (SoundFont zones cover
only part of the keyboard: e.g. TimGM6mb's oboe is silent below MIDI 36, its
baritone sax above 79, FluidR3's contrabass above 57) and is left out; the
counts are in `GMNotesSource.summary`. Notes are rendered at ``gain_db`` = -6 dB:
at 0 dB, 148 of the 47,160 default notes of TimGM6mb + FluidR3_GM peak above 1
(up to 1.56; velocities 75-127 of FluidR3's clean, overdriven and distortion
guitars and leads 83-84, TimGM6mb's synth bass 2); at -6 dB none does. A note
that still would is clipped to [-1, 1] and counted as ``clipped``.

Splits: within each instrument, the note (soundfont, program, pitch, velocity)
goes to train if u < 0.8, valid if u < 0.9, else test, where u is the first 8
bytes of sha256("{source}|{program}|{pitch}|{velocity}") read as a big-endian
integer over 2**64 (source = SoundFont file stem). An instrument none of whose
kept notes fall in train gets its note with the smallest u moved to train, so
every instrument of valid and test also occurs in train (NSynth itself keeps
instruments disjoint across splits; here instrument classification must be
evaluable on test). A note's split depends only on its own name (and, for
that one moved note, on its instrument's other kept notes): it is stable across
runs, machines and Python hash seeds.

Rendering: each note is rendered on a fresh copy of the loaded SoundFont
(``SoundFont(other)``, TinySoundFont's ``tsf_copy``: shares the sample data,
fresh voices and channels). A reused Synth, even after ``reset()``, keeps voice
state that changes later renders (by ~3e-7 here), so copies make a note's audio
independent of what was rendered before; the copy costs ~1 us. Synths cannot be
pickled: `GMNotesSource` keeps only paths and index arrays, and each process
loads its SoundFonts lazily on first use (and checks that the file's size and
mtime are those the index was built from).

Index and its cache: checking a note means rendering it. The default selection
is 23,580 candidate notes per SoundFont (88 programs x their family's pitches x
5 velocities); at 0.45-0.67 ms per note (measured, one core of this 2-core
machine while shared) the check takes 11-16 s per SoundFont, 22-33 s for
TimGM6mb + FluidR3_GM: too slow to redo on every construction (and in every
grain worker), so each SoundFont's note peaks are cached in
``{cache_dir}/{stem}-{key}.npz`` (~240 KB), the key hashing the SoundFont's real
path, size and mtime and the rendering and selection parameters (the silence
threshold is applied on load, so it is not in the key). The cache is written
atomically and rebuilt if unreadable; ``cache_dir=None`` keeps it in memory
only. Constructing from the cache takes 0.6 s in a fresh process (mostly
loading FluidR3_GM's 148 MB), 0.1 s after. Of the 47,160 default notes of
TimGM6mb + FluidR3_GM, 46,680 are kept (120 + 360 silent, none clipped), 176
instruments; splits 37,235 / 4,763 / 4,682.

On demand vs materialised (``python -m benchmarks.gm_notes``, the 2-core CPU
shared with other jobs at load 1.6-3.8, so rates vary by up to 2x between
runs; TimGM6mb + FluidR3_GM, random train notes):

  * on demand, `GMNotesSource.__getitem__` in one process: 1,700-2,100 notes/s
    (median 0.41-0.54 ms, p90 0.7-0.9 ms per note); through the package's grain
    pipeline (`loader.note_batches`, batches of 32): 1,260-1,690 notes/s with 1
    read thread, 1,170-1,330 with 4 (rendering holds the GIL), 970-1,140 with
    2 worker processes (copying 256 KB notes between processes costs about a
    render: workers do not pay on 2 busy cores);
  * materialised to a float32 .npy memmap: 256 KB per note, 12.0 GB for the
    46,680 kept notes (6.0 GB as int16); written at 640-930 notes/s (render +
    write); random reads of 2,000 notes: 20,000-29,000 notes/s from the page
    cache, 3,300-3,500 notes/s cold (pages dropped with posix_fadvise). The
    whole set does not fit this machine's page cache (23 GB RAM, shared), so
    reads would run near the cold rate.

Decision: render on demand. It needs no disk, costs nothing up front beyond the
index check, delivers ~2,000 notes/s per process, and changing the selection or
the render parameters rewrites nothing; a memmap would be ~1.7x faster read cold
(10x+ from the page cache, which 12 GB does not fit) for 12 GB of disk and a
~70 s write.

Example:
  >>> source = GMNotesSource("train", programs=(0, 40), pitches=(60, 64))
  >>> example = source[0]
  >>> example["audio"].shape, FAMILIES[example["instrument/family"]]
  ((64000,), 'keyboard')
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import importlib.util
import json
import logging
import numbers
import os
import tempfile
import threading
import time
from typing import Mapping, Sequence

import numpy as np
import tinysoundfont

from shuffle_learn.data import nsynth

_log = logging.getLogger(__name__)

# NSynth's instrument families, in the order of TFDS `nsynth` instrument/family:
# bass, brass, flute, guitar, keyboard, mallet, organ, reed, string, synth_lead,
# vocal.
FAMILIES = nsynth.FAMILIES

# NSynth's velocities.
VELOCITIES = (25, 50, 75, 100, 127)

SPLITS = ("train", "valid", "test")
# Cumulative upper bounds of the hash value u in [0, 1) for train and valid.
_SPLIT_BOUNDS = (0.8, 0.9)

# General-MIDI program (0-based, bank 0) -> NSynth family. Programs missing here
# are left out (EXCLUDED_PROGRAMS).
GM_PROGRAM_FAMILY: dict[int, str] = {
    # 0-7 Piano: acoustic, bright, electric grand, honky-tonk, electric pianos 1
    # and 2, harpsichord, clavinet.
    **dict.fromkeys(range(0, 8), "keyboard"),
    # 8-15 Chromatic percussion: celesta, glockenspiel, music box, vibraphone,
    # marimba, xylophone, tubular bells, dulcimer.
    **dict.fromkeys(range(8, 16), "mallet"),
    # 16-20 Organ: drawbar, percussive, rock, church, reed organ.
    **dict.fromkeys(range(16, 21), "organ"),
    # 21-23 Accordion, harmonica, tango accordion: free reeds.
    **dict.fromkeys(range(21, 24), "reed"),
    # 24-31 Guitar: nylon, steel, jazz, clean, muted, overdriven, distortion,
    # harmonics.
    **dict.fromkeys(range(24, 32), "guitar"),
    # 32-39 Bass: acoustic, finger, pick, fretless, slap 1 and 2, synth bass 1
    # and 2 (NSynth's bass family includes synthetic basses).
    **dict.fromkeys(range(32, 40), "bass"),
    # 40-46 Strings: violin, viola, cello, contrabass, tremolo strings,
    # pizzicato strings, orchestral harp. (47 timpani is a drum: left out.)
    **dict.fromkeys(range(40, 47), "string"),
    # 48-51 Ensemble: string ensembles 1 and 2, synth strings 1 and 2.
    **dict.fromkeys(range(48, 52), "string"),
    # 52-54 Choir aahs, voice oohs, synth voice. (55 orchestra hit: left out.)
    **dict.fromkeys(range(52, 55), "vocal"),
    # 56-63 Brass: trumpet, trombone, tuba, muted trumpet, French horn, brass
    # section, synth brass 1 and 2.
    **dict.fromkeys(range(56, 64), "brass"),
    # 64-71 Reed: soprano, alto, tenor, baritone sax, oboe, English horn,
    # bassoon, clarinet.
    **dict.fromkeys(range(64, 72), "reed"),
    # 72-79 Pipe: piccolo, flute, recorder, pan flute, blown bottle,
    # shakuhachi, whistle, ocarina.
    **dict.fromkeys(range(72, 80), "flute"),
    # 80-85, 87 Synth lead: square, sawtooth, calliope, chiff, charang, voice,
    # bass + lead. (86 "fifths" sounds two pitches: left out.)
    **dict.fromkeys((80, 81, 82, 83, 84, 85, 87), "synth_lead"),
    # 88-95 synth pads (slow, layered textures with no NSynth family), 96-103
    # synth effects: left out.
    # 104-111 Ethnic: 105 banjo (plucked, fretted), 110 fiddle (a violin),
    # 111 shanai (a double reed). Sitar (drone strings), shamisen, koto,
    # kalimba and bagpipe (drones) fit no family: left out.
    105: "guitar",
    110: "string",
    111: "reed",
    # 112-119 percussive (tinkle bell, agogo, steel drums, woodblock, taiko,
    # melodic tom, synth drum, reverse cymbal) and 120-127 sound effects: left
    # out.
}

# General-MIDI programs with no NSynth family, left out of every selection.
EXCLUDED_PROGRAMS: tuple[int, ...] = tuple(p for p in range(128) if p not in GM_PROGRAM_FAMILY)

# Per family, the MIDI pitches tried (inclusive), about the sounding range of its
# instruments. NSynth spans 21-108 overall; the silence check then drops keys a
# preset has no samples for.
FAMILY_PITCHES: dict[str, tuple[int, int]] = {
    "bass": (28, 60),  # E1-C4: bass guitars, double bass, synth bass.
    "brass": (40, 84),  # E2-C6: tuba and trombone low, trumpet high.
    "flute": (60, 96),  # C4-C7: flute, recorder, pan flute; piccolo's low half.
    "guitar": (40, 88),  # E2-E6: six strings, 24 frets.
    "keyboard": (21, 108),  # A0-C8: the 88-key piano.
    "mallet": (48, 96),  # C3-C7: marimba, vibraphone, celesta, bells.
    "organ": (36, 96),  # C2-C7: manuals.
    "reed": (36, 84),  # C2-C6: bassoon and baritone sax to soprano sax and oboe.
    "string": (28, 96),  # E1-C7: contrabass to violin.
    "synth_lead": (36, 96),  # C2-C7.
    "vocal": (48, 84),  # C3-C6: choir, bass to soprano.
}

_PYTHON_MIDI_SOUNDFONT = "TimGM6mb.sf2"
_DEBIAN_FLUID = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
_MAX_VOICES = 64  # One note uses a few voices (layers, stereo pairs).
_CACHE_VERSION = 1


def known_soundfonts() -> dict[str, str]:
  """The installed SoundFonts known by name: ``{"TimGM6mb": path, "FluidR3_GM": path}``.

  TimGM6mb.sf2 ships with pretty_midi; FluidR3_GM.sf2 with Debian's
  fluid-soundfont-gm. Names of those not installed are left out.
  """
  found = {}
  spec = importlib.util.find_spec("pretty_midi")  # Found without importing it.
  if spec is not None and spec.origin:
    tim = os.path.join(os.path.dirname(spec.origin), _PYTHON_MIDI_SOUNDFONT)
    if os.path.isfile(tim):
      found["TimGM6mb"] = tim
  if os.path.isfile(_DEBIAN_FLUID):
    found["FluidR3_GM"] = _DEBIAN_FLUID
  return found


def default_soundfonts() -> str:
  """TimGM6mb.sf2 from pretty_midi, plus Debian's FluidR3_GM.sf2 if installed.

  Returns:
    A comma-separated string of paths, as `GMNotesSource` takes.

  Raises:
    FileNotFoundError: neither is installed.
  """
  paths = list(known_soundfonts().values())
  if not paths:
    raise FileNotFoundError(
        errno.ENOENT,
        f"no default SoundFont: neither pretty_midi's {_PYTHON_MIDI_SOUNDFONT} nor {_DEBIAN_FLUID} "
        "(apt install fluid-soundfont-gm) is installed; pass soundfonts=",
    )
  return ",".join(paths)


def _resolve_soundfont(item: str) -> str:
  """A path, or the name of a known SoundFont ("TimGM6mb", "FluidR3_GM") -> its path."""
  if os.path.exists(item) or os.sep in item or item.lower().endswith((".sf2", ".sf3")):
    return item
  known = known_soundfonts()
  if item in known:
    return known[item]
  raise FileNotFoundError(
      errno.ENOENT, f"SoundFont {item!r} is neither a file nor an installed known SoundFont {sorted(known)}", item)


def default_cache_dir() -> str:
  """$SHUFFLE_LEARN_CACHE/gm_notes, by default ~/.cache/shuffle_learn/gm_notes."""
  root = os.environ.get("SHUFFLE_LEARN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "shuffle_learn")
  return os.path.join(root, "gm_notes")


# ----------------------------------------------------------------------------
# Argument checks.


def _check_choice(name: str, value, choices) -> str:
  if not isinstance(value, str) or value not in choices:
    raise ValueError(f"{name} must be one of {choices}, got {value!r}.")
  return value


def _check_int(name: str, value, low: int, high: int) -> int:
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
    raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}.")
  return int(value)


def _check_float(name: str, value, low: float, *, strict: bool) -> float:
  ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
  if not ok or (value <= low if strict else value < low):
    raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {low}, got {value!r}.")
  return float(value)


def _check_ints(name: str, values, low: int, high: int) -> tuple[int, ...]:
  if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
    raise ValueError(f"{name} must be a sequence of integers, got {values!r}.")
  out = tuple(_check_int(f"{name}[{i}]", v, low, high) for i, v in enumerate(values))
  if not out:
    raise ValueError(f"{name} is empty: the selection has no notes.")
  if len(set(out)) != len(out):
    raise ValueError(f"{name} has repeated entries: {values!r}.")
  return tuple(sorted(out))


def _num_samples(sample_rate, held_seconds, release_seconds) -> tuple[int, int]:
  sample_rate = _check_int("sample_rate", sample_rate, 1, 10**6)
  held = round(_check_float("held_seconds", held_seconds, 0.0, strict=True) * sample_rate)
  release = round(_check_float("release_seconds", release_seconds, 0.0, strict=False) * sample_rate)
  if held < 1:
    raise ValueError(f"held_seconds={held_seconds!r} is shorter than one sample at {sample_rate} Hz.")
  return held, release


# ----------------------------------------------------------------------------
# SoundFonts and rendering.


def _fingerprint(path: str) -> tuple[str, int, int]:
  """(real path, size, mtime in ns); FileNotFoundError naming a missing path."""
  try:
    stat = os.stat(path)
  except FileNotFoundError:
    raise FileNotFoundError(errno.ENOENT, f"SoundFont not found: {path!r}", path) from None
  return os.path.realpath(path), stat.st_size, stat.st_mtime_ns


_SYNTHS: dict[tuple, tinysoundfont.Synth] = {}
_SYNTHS_LOCK = threading.Lock()


def load_soundfont(path: str, *, sample_rate: int = 16000) -> tinysoundfont.Synth:
  """A Synth with the SoundFont at `path` loaded, cached per process.

  Args:
    path: an .sf2 or .sf3 file.
    sample_rate: output rate in Hz (fixed when a Synth is made).

  Returns:
    A `tinysoundfont.Synth` at `sample_rate` whose SoundFont id 0 is `path`.
    It is shared: `render_note` never changes its state.

  Raises:
    FileNotFoundError: `path` does not exist.
    ValueError: `path` is not a SoundFont TinySoundFont can read, or has no
      presets.
  """
  sample_rate = _check_int("sample_rate", sample_rate, 1, 10**6)
  key = _fingerprint(path) + (sample_rate,)
  with _SYNTHS_LOCK:
    synth = _SYNTHS.get(key)
    if synth is None:
      synth = tinysoundfont.Synth(samplerate=sample_rate)
      if os.path.isdir(path):
        raise ValueError(f"SoundFont {path!r} is a directory, not an .sf2/.sf3 file.")
      try:
        sfid = synth.sfload(path, max_voices=_MAX_VOICES)
      except (RuntimeError, tinysoundfont.SoundFontException) as e:
        raise ValueError(f"SoundFont {path!r} is not a readable .sf2/.sf3 file ({e}).") from None
      if synth.soundfonts[sfid].get_preset_count() < 1:
        raise ValueError(f"SoundFont {path!r} has no presets.")
      _SYNTHS[key] = synth
  return synth


def _template(synth_or_soundfont, sample_rate: int, sfid):
  """The loaded SoundFont object notes are copied from."""
  if isinstance(synth_or_soundfont, tinysoundfont.Synth):
    synth = synth_or_soundfont
    if synth.samplerate != sample_rate:
      raise ValueError(
          f"sample_rate={sample_rate} differs from the synth's samplerate {synth.samplerate}: "
          "the rate is fixed when a Synth is made."
      )
    if sfid is None:
      if len(synth.soundfonts) != 1:
        raise ValueError(f"the synth has {len(synth.soundfonts)} SoundFonts loaded: pass sfid to pick one.")
      sfid = next(iter(synth.soundfonts))
    if sfid not in synth.soundfonts:
      raise ValueError(f"sfid={sfid!r} is not loaded in the synth (loaded: {sorted(synth.soundfonts)}).")
    return synth.soundfonts[sfid]
  if isinstance(synth_or_soundfont, (str, os.PathLike)):
    if sfid is not None:
      raise ValueError("sfid applies only when a tinysoundfont.Synth is passed.")
    return load_soundfont(os.fspath(synth_or_soundfont), sample_rate=sample_rate).soundfonts[0]
  raise ValueError(
      f"synth_or_soundfont must be a tinysoundfont.Synth or an .sf2/.sf3 path, got {type(synth_or_soundfont).__name__}."
  )


def _render_raw(template, bank: int, program: int, pitch: int, velocity: int, held: int, release: int, gain: float):
  """Mono float32 (held + release,), gain applied, not clipped."""
  voice = type(template)(template)  # tsf_copy: shared samples, fresh voices and channels.
  voice.set_max_voices(_MAX_VOICES)  # A copy has no voices until given some.
  voice.channel_set_bank(0, bank)
  voice.channel_set_preset_number(0, program, False)
  voice.channel_note_on(0, pitch, velocity / 127.0)
  stereo = np.empty((held + release) * 2, np.float32)
  voice.render(memoryview(stereo[: 2 * held]).cast("B"))
  voice.channel_note_off(0, pitch)
  if release:
    voice.render(memoryview(stereo[2 * held :]).cast("B"))
  stereo = stereo.reshape(-1, 2)
  return ((stereo[:, 0] + stereo[:, 1]) * np.float32(0.5 * gain)).astype(np.float32)


def render_note(
    synth_or_soundfont,
    program: int,
    pitch: int,
    velocity: int,
    *,
    sample_rate: int = 16000,
    held_seconds: float = 3.0,
    release_seconds: float = 1.0,
    gain_db: float = -6.0,
    bank: int = 0,
    sfid: int | None = None,
) -> np.ndarray:
  """Renders one note as NSynth does: held, released, then its release tail.

  The note is rendered on a fresh copy of the SoundFont (its voices and channels
  new), so the same arguments always give the same samples, whatever was
  rendered before; `synth_or_soundfont` is not changed.

  Args:
    synth_or_soundfont: a `tinysoundfont.Synth` with the SoundFont loaded (its
      ``samplerate`` must be `sample_rate`), or the path of an .sf2/.sf3 file
      (loaded once per process, see `load_soundfont`).
    program: General-MIDI program (preset), 0-127.
    pitch: MIDI key, 0-127.
    velocity: MIDI velocity, 1-127.
    sample_rate: output rate in Hz.
    held_seconds: time from note on to note off.
    release_seconds: time rendered after note off.
    gain_db: gain applied to the synth's output before clipping.
    bank: SoundFont bank (0 for General MIDI melodic programs).
    sfid: which SoundFont of a Synth holding several.

  Returns:
    float32 ``(round(held_seconds * sample_rate) + round(release_seconds *
    sample_rate),)``, mono (mean of the left and right channels), clipped to
    [-1, 1]: (64000,) by default.

  Raises:
    FileNotFoundError: the SoundFont path does not exist.
    ValueError: bad arguments, an unreadable SoundFont, or a program the
      SoundFont does not have in `bank`.
  """
  program = _check_int("program", program, 0, 127)
  pitch = _check_int("pitch", pitch, 0, 127)
  velocity = _check_int("velocity", velocity, 1, 127)
  bank = _check_int("bank", bank, 0, 128)
  gain_db = _check_float("gain_db", gain_db, -np.inf, strict=True)
  held, release = _num_samples(sample_rate, held_seconds, release_seconds)
  template = _template(synth_or_soundfont, sample_rate, sfid)
  if template.get_preset_index(bank, program) < 0:
    raise ValueError(f"program {program} is not in bank {bank} of the SoundFont {synth_or_soundfont!r}.")
  audio = _render_raw(template, bank, program, pitch, velocity, held, release, 10.0 ** (gain_db / 20.0))
  return np.clip(audio, -1.0, 1.0, out=audio)


# ----------------------------------------------------------------------------
# Selection, silence check and its cache.


def _candidates(programs, pitches, velocities) -> np.ndarray:
  """int16 (n, 3) rows (program, pitch, velocity) in a fixed order."""
  rows = []
  for program in programs:
    family = GM_PROGRAM_FAMILY[program]
    keys = pitches if pitches is not None else range(FAMILY_PITCHES[family][0], FAMILY_PITCHES[family][1] + 1)
    rows.extend((program, pitch, velocity) for pitch in keys for velocity in velocities)
  return np.asarray(rows, np.int16).reshape(-1, 3)


@dataclasses.dataclass(frozen=True)
class _Scan:
  """Every candidate note of one SoundFont and its peak (gain applied, unclipped)."""

  notes: np.ndarray  # int16 (n, 3): program, pitch, velocity.
  peaks: np.ndarray  # float32 (n,); NaN where the render was not finite.
  preset_names: dict[int, str]  # program -> the SoundFont's preset name.
  missing: tuple[int, ...]  # requested programs not in bank 0.
  seconds: float  # Time the scan took when it was computed.


_SCANS: dict[str, _Scan] = {}


def _scan_key(fingerprint, candidates: np.ndarray, render: Mapping) -> str:
  payload = {
      "version": _CACHE_VERSION,
      "soundfont": list(fingerprint),
      "render": dict(render),
      "notes": hashlib.sha256(candidates.tobytes()).hexdigest(),
  }
  return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def _compute_scan(path: str, candidates: np.ndarray, render: Mapping) -> _Scan:
  start = time.perf_counter()
  template = load_soundfont(path, sample_rate=render["sample_rate"]).soundfonts[0]
  held, release = _num_samples(render["sample_rate"], render["held_seconds"], render["release_seconds"])
  gain = 10.0 ** (render["gain_db"] / 20.0)
  programs = sorted(set(candidates[:, 0].tolist()))
  missing = tuple(p for p in programs if template.get_preset_index(0, p) < 0)
  names = {p: template.get_preset_name(0, p) for p in programs if p not in missing}
  peaks = np.full(len(candidates), np.nan, np.float32)
  for i, (program, pitch, velocity) in enumerate(candidates.tolist()):
    if program in missing:
      continue
    audio = _render_raw(template, 0, program, pitch, velocity, held, release, gain)
    peak = float(np.max(np.abs(audio)))
    peaks[i] = peak if np.isfinite(peak) else np.nan
  peaks[np.isin(candidates[:, 0], missing)] = -1.0  # Not rendered: the preset is missing.
  return _Scan(candidates, peaks, names, missing, time.perf_counter() - start)


def _scan(path: str, candidates: np.ndarray, render: Mapping, cache_dir: str | None) -> _Scan:
  """The scan of one SoundFont: from memory, from `cache_dir`, or computed."""
  fingerprint = _fingerprint(path)
  key = _scan_key(fingerprint, candidates, render)
  if key in _SCANS:
    return _SCANS[key]
  stem = os.path.splitext(os.path.basename(path))[0]
  file = os.path.join(cache_dir, f"{stem}-{key}.npz") if cache_dir else None
  scan = None
  if file and os.path.exists(file):
    try:
      with np.load(file, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        scan = _Scan(
            data["notes"],
            data["peaks"],
            {int(k): v for k, v in meta["preset_names"].items()},
            tuple(meta["missing"]),
            meta["seconds"],
        )
      if not np.array_equal(scan.notes, candidates):
        raise ValueError("the cached notes differ from the selection")
    except Exception as e:  # pylint: disable=broad-except
      _log.warning("gm_notes: rebuilding the unreadable index cache %s (%s).", file, e)
      scan = None
  if scan is None:
    _log.info("gm_notes: checking %d notes of %s ...", len(candidates), path)
    scan = _compute_scan(path, candidates, render)
    _log.info("gm_notes: checked %d notes of %s in %.1f s.", len(candidates), path, scan.seconds)
    if file:
      _write_scan(file, scan)
  _SCANS[key] = scan
  return scan


def _write_scan(file: str, scan: _Scan) -> None:
  meta = {"preset_names": scan.preset_names, "missing": list(scan.missing), "seconds": scan.seconds}
  tmp = None
  try:
    os.makedirs(os.path.dirname(file), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(file), suffix=".npz.tmp")
    with os.fdopen(fd, "wb") as f:
      np.savez(f, notes=scan.notes, peaks=scan.peaks, meta=np.asarray(json.dumps(meta)))
    os.chmod(tmp, 0o644)
    os.replace(tmp, file)  # Atomic: readers see the old file or the whole new one.
  except OSError as e:
    _log.warning("gm_notes: could not write the index cache %s (%s); continuing without it.", file, e)
    if tmp and os.path.exists(tmp):
      os.remove(tmp)


def _unit_hash(source: str, program: int, pitch: int, velocity: int) -> float:
  digest = hashlib.sha256(f"{source}|{program}|{pitch}|{velocity}".encode()).digest()
  return int.from_bytes(digest[:8], "big") / 2.0**64


def split_of(unit_hashes: np.ndarray) -> np.ndarray:
  """Splits (indices into SPLITS) of one instrument's notes from their hashes.

  Args:
    unit_hashes: float64 (n,) in [0, 1), one per kept note of one instrument.

  Returns:
    int8 (n,): 0 (train) where u < 0.8, 1 (valid) where u < 0.9, else 2 (test);
    if none is train, the note with the smallest u is train.
  """
  u = np.asarray(unit_hashes, np.float64)
  split = np.searchsorted(np.asarray(_SPLIT_BOUNDS), u, side="right").astype(np.int8)
  if u.size and not np.any(split == 0):
    split[np.argmin(u)] = 0
  return split


@dataclasses.dataclass(frozen=True)
class _Index:
  """Every kept note of a selection, with its instrument and split."""

  source: np.ndarray  # int16 (n,) index into the SoundFonts.
  notes: np.ndarray  # int16 (n, 3): program, pitch, velocity.
  label: np.ndarray  # int32 (n,) instrument label.
  split: np.ndarray  # int8 (n,) index into SPLITS.
  instrument_names: tuple[str, ...]
  summary: dict


def _source_names(paths: Sequence[str]) -> tuple[str, ...]:
  names = tuple(os.path.splitext(os.path.basename(p))[0] for p in paths)
  for name in names:
    if names.count(name) > 1:
      raise ValueError(f"soundfonts has two files named {name!r}: SoundFont names must be unique.")
  return names


def _build_index(paths, names, candidates, render, silence_db, cache_dir) -> _Index:
  threshold = 10.0 ** (silence_db / 20.0)
  sources, notes, labels, splits, instrument_names = [], [], [], [], []
  per_font = {}
  for s, (path, name) in enumerate(zip(paths, names)):
    scan = _scan(path, candidates, render, cache_dir)
    rendered = scan.peaks >= 0
    nonfinite = np.isnan(scan.peaks)
    kept = rendered & (scan.peaks >= threshold)
    silent = rendered & ~kept
    per_font[name] = {
        "path": path,
        "rendered": int(np.sum(rendered | nonfinite)),
        "kept": int(np.sum(kept)),
        "silent": int(np.sum(silent)),
        "nonfinite": int(np.sum(nonfinite)),
        "clipped": int(np.sum(kept & (scan.peaks > 1.0))),
        "missing_programs": list(scan.missing),
        "instruments": 0,
        "check_seconds": round(scan.seconds, 3),
    }
    for program in sorted(set(scan.notes[kept, 0].tolist())):
      rows = np.flatnonzero(kept & (scan.notes[:, 0] == program))
      u = np.asarray([_unit_hash(name, program, int(p), int(v)) for _, p, v in scan.notes[rows].tolist()])
      sources.append(np.full(len(rows), s, np.int16))
      notes.append(scan.notes[rows])
      labels.append(np.full(len(rows), len(instrument_names), np.int32))
      splits.append(split_of(u))
      instrument_names.append(f"{name}:{program:03d} {scan.preset_names[program]}")
      per_font[name]["instruments"] += 1
  total = {k: sum(f[k] for f in per_font.values()) for k in ("rendered", "kept", "silent", "nonfinite", "clipped")}
  if not instrument_names:
    raise ValueError(
        f"empty selection: none of the {total['rendered']} rendered notes is audible above {silence_db} dBFS "
        f"({total['silent']} silent; programs missing from the SoundFonts: "
        f"{ {n: f['missing_programs'] for n, f in per_font.items()} })."
    )
  for name, stats in per_font.items():
    _log.info(
        "gm_notes: %s: %d notes rendered, %d kept, %d silent, %d clipped, %d instruments; missing programs %s.",
        name, stats["rendered"], stats["kept"], stats["silent"], stats["clipped"], stats["instruments"],
        stats["missing_programs"],
    )
  split = np.concatenate(splits)
  summary = {
      "soundfonts": per_font,
      "total": total,
      "instruments": len(instrument_names),
      "splits": {name: int(np.sum(split == i)) for i, name in enumerate(SPLITS)},
      "silence_db": silence_db,
  }
  return _Index(
      np.concatenate(sources), np.concatenate(notes), np.concatenate(labels), split, tuple(instrument_names), summary
  )


# ----------------------------------------------------------------------------
# The data source.


class GMNotesSource:
  """NSynth-style notes of General-MIDI SoundFonts, rendered on demand.

  A grain ``RandomAccessDataSource``: `__len__` and `__getitem__`, deterministic
  (an index always gives the same example) and picklable (SoundFonts are loaded
  lazily in each process). Building it checks every candidate note once for
  silence; the result is cached per SoundFont in `cache_dir` (see the module
  docstring for the selection, split rule and numbers).

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
      sample_rate: int = 16000,
      held_seconds: float = 3.0,
      release_seconds: float = 1.0,
      gain_db: float = -6.0,
      programs: Sequence[int] | None = None,
      pitches: Sequence[int] | None = None,
      velocities: Sequence[int] = VELOCITIES,
      silence_db: float = -60.0,
      cache_dir: str | bool | None = True,
      clip_seconds: float | None = None,
  ):
    """Selects and checks the notes and keeps those of `split`.

    Args:
      split: "train", "valid" or "test".
      soundfonts: comma-separated .sf2/.sf3 paths or names of
        `known_soundfonts()` ("TimGM6mb", "FluidR3_GM"); by default
        `default_soundfonts()`.
      sample_rate: audio rate in Hz.
      held_seconds: note-on time.
      release_seconds: time rendered after note off.
      gain_db: gain on the synth output (-6 dB keeps the default selection of
        TimGM6mb and FluidR3_GM from clipping).
      programs: General-MIDI programs to use, each a key of
        `GM_PROGRAM_FAMILY`; by default all of them.
      pitches: MIDI pitches tried for every program; by default each program's
        `FAMILY_PITCHES` range.
      velocities: MIDI velocities, by default NSynth's.
      silence_db: a note whose peak is below this (dBFS) is left out.
      cache_dir: directory of the per-SoundFont index cache; True for
        `default_cache_dir()`, False or None for none (kept in memory only).
      clip_seconds: render only the first ``clip_seconds`` of every note
        (exactly the first samples of the whole note: rendering is causal), for
        front ends that use only the onset; the selection, silence check and
        splits stay those of whole notes. None renders whole notes.

    Raises:
      FileNotFoundError: a SoundFont path does not exist.
      ValueError: a bad argument, an unreadable SoundFont, an empty selection
        (no note audible), or an empty split.
    """
    self.split = _check_choice("split", split, SPLITS)
    if soundfonts is None:
      soundfonts = default_soundfonts()
    if not isinstance(soundfonts, str):
      raise ValueError(f"soundfonts must be a comma-separated string of paths, got {soundfonts!r}.")
    paths = tuple(_resolve_soundfont(p.strip()) for p in soundfonts.split(",") if p.strip())
    if not paths:
      raise ValueError(f"soundfonts names no file: {soundfonts!r}.")
    self.soundfonts = paths
    self.source_names = _source_names(paths)
    self._held, self._release = _num_samples(sample_rate, held_seconds, release_seconds)
    if clip_seconds is not None:
      clip = int(round(_check_float("clip_seconds", clip_seconds, 0.0, strict=True) * sample_rate))
      if clip < 1:
        raise ValueError(f"clip_seconds must be at least one sample, got {clip_seconds!r}.")
      self._clip_held = min(self._held, clip)
      self._clip_release = min(self._release, clip - self._clip_held)
    else:
      self._clip_held, self._clip_release = self._held, self._release
    self.sample_rate = int(sample_rate)
    self._gain = 10.0 ** (_check_float("gain_db", gain_db, -np.inf, strict=True) / 20.0)
    silence_db = _check_float("silence_db", silence_db, -np.inf, strict=True)
    if programs is None:
      programs = tuple(sorted(GM_PROGRAM_FAMILY))
    programs = _check_ints("programs", programs, 0, 127)
    for program in programs:
      if program not in GM_PROGRAM_FAMILY:
        raise ValueError(
            f"programs: General-MIDI program {program} has no NSynth family (it is in EXCLUDED_PROGRAMS)."
        )
    if pitches is not None:
      pitches = _check_ints("pitches", pitches, 0, 127)
    velocities = _check_ints("velocities", velocities, 1, 127)
    if cache_dir is True:
      cache_dir = default_cache_dir()
    elif cache_dir is False or cache_dir is None:
      cache_dir = None
    elif not isinstance(cache_dir, (str, os.PathLike)):
      raise ValueError(f"cache_dir must be a path, True or False/None, got {cache_dir!r}.")
    else:
      cache_dir = os.fspath(cache_dir)
    render = {
        "sample_rate": self.sample_rate,
        "held_seconds": float(held_seconds),
        "release_seconds": float(release_seconds),
        "gain_db": float(gain_db),
        "max_voices": _MAX_VOICES,
    }
    self._fingerprints = tuple(_fingerprint(p) for p in paths)
    for path in paths:
      load_soundfont(path, sample_rate=self.sample_rate)  # Fails early on unreadable files.
    candidates = _candidates(programs, pitches, velocities)
    index = _build_index(paths, self.source_names, candidates, render, silence_db, cache_dir)
    self.summary = index.summary
    self.instrument_names = index.instrument_names
    rows = np.flatnonzero(index.split == SPLITS.index(self.split))
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
    return len(FAMILIES)

  def note(self, index: int) -> tuple[str, int, int, int]:
    """(SoundFont name, program, pitch, velocity) of example `index`, without rendering."""
    i = self._check_index(index)
    program, pitch, velocity = (int(x) for x in self._notes[i])
    return self.source_names[self._source[i]], program, pitch, velocity

  def note_id(self, index: int) -> str:
    """NSynth-style id of example `index`: "{family}_{SoundFont}_{program}-{pitch}-{velocity}"."""
    source, program, pitch, velocity = self.note(index)
    return f"{GM_PROGRAM_FAMILY[program]}_{source}_{program:03d}-{pitch:03d}-{velocity:03d}"

  def _check_index(self, index) -> int:
    if isinstance(index, bool) or not isinstance(index, numbers.Integral):
      raise TypeError(f"index must be an integer, got {index!r}.")
    n = len(self)
    if not -n <= index < n:
      raise IndexError(f"index {index} is out of range for a source of {n} notes.")
    return int(index) % n

  def _synth_template(self, s: int):
    path = self.soundfonts[s]
    if _fingerprint(path) != self._fingerprints[s]:
      raise ValueError(f"SoundFont {path!r} changed since this source was built: rebuild it.")
    return load_soundfont(path, sample_rate=self.sample_rate).soundfonts[0]

  def __len__(self) -> int:
    return len(self._label)

  def __getitem__(self, index: int) -> dict:
    i = self._check_index(index)
    s = int(self._source[i])
    program, pitch, velocity = (int(x) for x in self._notes[i])
    audio = _render_raw(self._synth_template(s), 0, program, pitch, velocity, self._clip_held, self._clip_release,
                        self._gain)
    np.clip(audio, -1.0, 1.0, out=audio)
    return {
        "audio": audio,
        "pitch": np.int32(pitch),
        "velocity": np.int32(velocity),
        "instrument/label": np.int32(self._label[i]),
        "instrument/family": np.int32(FAMILIES.index(GM_PROGRAM_FAMILY[program])),
        "instrument/source": np.int32(s),
    }

  def __repr__(self) -> str:
    return self._repr

