"""General-MIDI SoundFonts: finding, loading and rendering one note as NSynth does.

NSynth (Engel et al. 2017) notes are held for 3 s, released, and recorded for
1 s more, 4 s in all at 16 kHz mono. `render_note` renders a note of a
SoundFont (.sf2/.sf3) the same way with TinySoundFont (the ``tinysoundfont``
package): note on, ``held_seconds``, note off, ``release_seconds``, the left and
right channels averaged, a gain applied, clipped to [-1, 1].

Every note is rendered on a fresh copy of the loaded SoundFont
(``SoundFont(other)``, TinySoundFont's ``tsf_copy``: it shares the sample data
and has fresh voices and channels). A reused Synth, even after ``reset()``,
keeps voice state that changes later renders slightly, so the copies make a
note's audio a function of its arguments alone, whatever was rendered before
and in whatever thread.

Loaded SoundFonts are cached per process (`load_soundfont`), keyed by the
file's `fingerprint` (real path, size, mtime): Synths cannot be pickled, so a
data source keeps paths and each process loads them on first use. A file is
checked before TinySoundFont parses it (a RIFF ``sfbk`` header whose declared
size the file has), so a missing, empty, truncated or foreign file fails with an
error that names it.

References:
  Engel et al., "Neural Audio Synthesis of Musical Notes with WaveNet
  Autoencoders", ICML 2017 (the NSynth dataset).
"""

from __future__ import annotations

import errno
import importlib.util
import os
import threading

import numpy as np
import tinysoundfont

from shuffle_learn import _checks
from shuffle_learn.data import schema

_PYTHON_MIDI_SOUNDFONT = "TimGM6mb.sf2"
_DEBIAN_FLUID = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
MAX_VOICES = 64  # One note uses a few voices (layers, stereo pairs).


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
    A comma-separated string of paths, as `gm_notes.GMNotesSource` takes.

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


def resolve(item: str) -> str:
  """A path, or the name of a known SoundFont ("TimGM6mb", "FluidR3_GM") -> its path."""
  if os.path.exists(item) or os.sep in item or item.lower().endswith((".sf2", ".sf3")):
    return item
  known = known_soundfonts()
  if item in known:
    return known[item]
  raise FileNotFoundError(
      errno.ENOENT, f"SoundFont {item!r} is neither a file nor an installed known SoundFont {sorted(known)}", item)


def fingerprint(path: str) -> tuple[str, int, int]:
  """(real path, size, mtime in ns) of a SoundFont file.

  Raises:
    FileNotFoundError: naming `path`, if it does not exist.
  """
  try:
    stat = os.stat(path)
  except FileNotFoundError:
    raise FileNotFoundError(errno.ENOENT, f"SoundFont not found: {path!r}", path) from None
  return os.path.realpath(path), stat.st_size, stat.st_mtime_ns


def _check_header(path: str) -> None:
  """Raises ValueError naming `path` unless it is a whole RIFF ``sfbk`` file (the .sf2/.sf3 container)."""
  if os.path.isdir(path):
    raise ValueError(f"SoundFont {path!r} is a directory, not an .sf2/.sf3 file.")
  try:
    with open(path, "rb") as f:
      header = f.read(12)
      size = os.fstat(f.fileno()).st_size
  except OSError as e:
    raise ValueError(f"SoundFont {path!r} cannot be read ({e.strerror}).") from None
  if not header:
    raise ValueError(f"SoundFont {path!r} is an empty file.")
  if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"sfbk":
    raise ValueError(f"SoundFont {path!r} is not an .sf2/.sf3 file: it has no RIFF 'sfbk' header.")
  declared = int.from_bytes(header[4:8], "little") + 8
  if size < declared:
    raise ValueError(f"SoundFont {path!r} is truncated: its header declares {declared} bytes, the file has {size}.")


_SYNTHS: dict[tuple, tinysoundfont.Synth] = {}
_SYNTHS_LOCK = threading.Lock()


def load_soundfont(path: str, *, sample_rate: int = schema.SAMPLE_RATE) -> tinysoundfont.Synth:
  """A Synth with the SoundFont at `path` loaded, cached per process.

  Args:
    path: an .sf2 or .sf3 file.
    sample_rate: output rate in Hz (fixed when a Synth is made).

  Returns:
    A `tinysoundfont.Synth` at `sample_rate` whose SoundFont id 0 is `path`.
    It is shared: `render_note` never changes its state.

  Raises:
    FileNotFoundError: `path` does not exist.
    ValueError: naming `path`, if it is a directory, unreadable, empty,
      truncated, not a SoundFont TinySoundFont can read, or has no presets.
  """
  sample_rate = _checks.check_int("sample_rate", sample_rate, 1, 10**6)
  key = fingerprint(path) + (sample_rate,)
  with _SYNTHS_LOCK:
    synth = _SYNTHS.get(key)
    if synth is None:
      _check_header(path)
      synth = tinysoundfont.Synth(samplerate=sample_rate)
      try:
        sfid = synth.sfload(path, max_voices=MAX_VOICES)
      except (RuntimeError, tinysoundfont.SoundFontException) as e:
        raise ValueError(f"SoundFont {path!r} is not a readable .sf2/.sf3 file ({e}).") from None
      if synth.soundfonts[sfid].get_preset_count() < 1:
        raise ValueError(f"SoundFont {path!r} has no presets.")
      _SYNTHS[key] = synth
  return synth


def note_lengths(sample_rate, held_seconds, release_seconds) -> tuple[int, int]:
  """Checked (held, release) lengths of a note in samples at `sample_rate`."""
  sample_rate = _checks.check_int("sample_rate", sample_rate, 1, 10**6)
  held = round(_checks.check_number("held_seconds", held_seconds, 0.0, strict=True) * sample_rate)
  release = round(_checks.check_number("release_seconds", release_seconds, 0.0) * sample_rate)
  if held < 1:
    raise ValueError(f"held_seconds must be at least one sample at {sample_rate} Hz, got {held_seconds!r}.")
  return held, release


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
        raise ValueError(f"sfid must pick one of the synth's {len(synth.soundfonts)} loaded SoundFonts.")
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
  """Mono float32 (held + release,), gain applied, not clipped, on a fresh copy of `template`."""
  voice = type(template)(template)  # tsf_copy: shared samples, fresh voices and channels.
  voice.set_max_voices(MAX_VOICES)  # A copy has no voices until given some.
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
    sample_rate: int = schema.SAMPLE_RATE,
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
    [-1, 1]: (NUM_SAMPLES,) = (64000,) by default.

  Raises:
    FileNotFoundError: the SoundFont path does not exist.
    ValueError: bad arguments, an unreadable SoundFont, or a program the
      SoundFont does not have in `bank`.
  """
  program = _checks.check_int("program", program, 0, 127)
  pitch = _checks.check_int("pitch", pitch, 0, 127)
  velocity = _checks.check_int("velocity", velocity, 1, 127)
  bank = _checks.check_int("bank", bank, 0, 128)
  gain_db = _checks.check_number("gain_db", gain_db)
  held, release = note_lengths(sample_rate, held_seconds, release_seconds)
  template = _template(synth_or_soundfont, sample_rate, sfid)
  if template.get_preset_index(bank, program) < 0:
    raise ValueError(f"program {program} is not in bank {bank} of the SoundFont {synth_or_soundfont!r}.")
  audio = _render_raw(template, bank, program, pitch, velocity, held, release, 10.0 ** (gain_db / 20.0))
  return np.clip(audio, -1.0, 1.0, out=audio)
