"""Spoken words: a Speech Commands-style keyword task of synthetic speech (espeak-ng), as a grain data source.

Speech Commands (Warden 2018) cannot be downloaded here, so `SpokenWordsSource`
gives clips in its form from the espeak-ng text-to-speech engine: the speech is
synthetic (formant synthesis), not recorded. One clip per (word, voice, rate,
pitch), by default Speech Commands' ten core words
(yes, no, up, down, left, right, on, off, stop, go) in 112 voices at 2 rates
and 2 pitches:

  audio    float32 (num_samples,)  16 kHz mono, in [-1, 1]; num_samples =
                                   round(seconds * 16000), 16000 by default
  label    int32                   the word: an index into `class_names`
  speaker  int32                   the voice: an index into `voice_names`
                                   (all voices of the selection, every split)

Voices: a voice is ``"{language}+{variant}"``: an espeak-ng language voice, by
its file name (for English an accent: en-us, en (British), en-gb-scotland, ...;
`available_languages`) and one of its voice variants (formant, pitch and
source settings: m1-m8, f1-f5, klatt-klatt3, ...; `available_variants`), both
read from the data folder that the ``espeakng-loader`` wheel ships. Rates are espeak-ng's words per
minute (default 175), pitches its 0-100 pitch parameter (default 50: the
voice's own pitch).

Splits are by voice, so no test voice is heard in training: voice ``v`` goes to
`images.split_of(v)` (u = the first 8 bytes of sha256(v) over 2**64; train if
u < 0.8, valid if u < 0.9, else test), with all its clips. A voice's language
and its variant each also occur, in other pairings, in the other splits. For
the default 112 voices the rule gives 91 / 9 / 12 voices. Two voices can render
some words identically (en-us and en-us-nyc do for yes, no, up and go, which is
why en-us-nyc is not a default accent); choosing voices is the caller's task.

Clip rule: espeak-ng renders the word (16-bit, 22,050 Hz); `soxr` resamples it
to 16 kHz (quality "HQ"); it is peak-normalised to 1 and trimmed to the span
from the first to the last sample at or above -40 dB of that peak; the trimmed
word is CENTRED in the window (zero padding split evenly, the extra sample at
the end), or, if longer than the window, its centre is kept (counted as
``cropped`` in `summary`). The clip is stored as int16 (x 32767) and returned
as float32 (/ 32767), so its peak is exactly 1 unless it was cropped.

Determinism: espeak-ng keeps synthesis state between utterances in static
variables (a pitch-flutter phase, Klatt filter memories, its noise generator
seeded from the clock), so a clip rendered after another differs from the same
clip rendered first. Clips are therefore rendered in worker processes (plain
``python -c`` processes, never forks of the caller) that initialise espeak-ng
once and fork a child for every clip; each child starts from the same state,
reseeds espeak-ng's and the C library's random generators, renders one clip and
exits. A clip's bytes depend only on its (word, voice, rate, pitch), the
espeak-ng and soxr versions and the machine's floating point; not on what else
is rendered, in which order, or in how many workers. This needs ``os.fork``
(Linux, macOS).

Cache: a source renders its whole split when it is built (several hundred
clips/s; measurements in docs/data/spoken_words.md) and keeps it in memory as
int16; the split is cached in ``{cache_dir}/{split}-{key}.npz``, the key hashing
the cache format, the selection, the clip length and the espeak-ng,
espeakng-loader and soxr versions. The file is written atomically; a damaged
or foreign file is rebuilt, never trusted. A source built with a cache pickles
without its audio and reloads it from the file in the process that unpickles it.

Backend: ``pip install espeakng-loader soxr``. espeakng-loader is a wheel with
libespeak-ng (1.52) and its data; this module calls the library with ctypes.

Example:
  >>> source = SpokenWordsSource("train", words=("yes", "no"), voices=("en-us+m3", "en+f2"), cache_dir=False)
  >>> example = source[0]
  >>> example["audio"].shape, source.class_names[example["label"]], source.voice_names[example["speaker"]]
  ((16000,), 'yes', 'en-us+m3')

References:
  Warden, "Speech Commands: A Dataset for Limited-Vocabulary Speech
  Recognition", arXiv:1804.03209, 2018.
  eSpeak NG, https://github.com/espeak-ng/espeak-ng.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import hashlib
import importlib.metadata
import itertools
import json
import logging
import os
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from typing import Sequence

import numpy as np

from shuffle_learn import _checks
from shuffle_learn.data import images
from shuffle_learn.data import schema

_log = logging.getLogger(__name__)

SPLITS = schema.SPLITS
SAMPLE_RATE = schema.SAMPLE_RATE
# Speech Commands' ten core words (Warden 2018), in its order.
WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
# English accents of espeak-ng 1.52, by voice file name (lang/gmw/en*; "en" is British English). Left out:
# en-shaw (it differs from "en" only in the alphabet it reads) and en-us-nyc (it renders yes, no, up and go
# bit for bit as en-us does, which would put the same clip in two splits).
ACCENTS = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029")
# espeak-ng's classic variants: eight male, five female, three Klatt-synthesiser voices.
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3")
VOICES = tuple(f"{accent}+{variant}" for accent in ACCENTS for variant in VARIANTS)
RATES = (150, 200)  # Words per minute (espeak-ng's default is 175; its range 80-450).
PITCHES = (35, 65)  # espeak-ng's pitch parameter, 0-100 (50: the voice's own pitch).
MIN_RATE, MAX_RATE = 80, 450
TRIM_DB = -40.0  # The word spans the samples at or above this, relative to its peak.
_INT16_PEAK = 32767
_CACHE_VERSION = 1

_INSTALL = "pip install espeakng-loader soxr"


# ----------------------------------------------------------------------------
# The backend: espeakng-loader's library and data, soxr.


def _loader():
  """The ``espeakng_loader`` module; ImportError naming the pip package if it is missing."""
  try:
    import espeakng_loader  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ImportError(
        f"spoken_words synthesises speech with espeak-ng from the PyPI package 'espeakng-loader', which is not "
        f"installed: {_INSTALL}") from None
  return espeakng_loader


def _soxr():
  """The ``soxr`` module; ImportError naming the pip package if it is missing."""
  try:
    import soxr  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ImportError(
        f"spoken_words resamples with the PyPI package 'soxr', which is not installed: {_INSTALL}") from None
  return soxr


def backend_paths() -> tuple[str, str]:
  """(libespeak-ng path, espeak-ng-data path) of the installed espeakng-loader.

  Raises:
    ImportError: espeakng-loader is not installed.
    RuntimeError: its library or data folder is missing (a platform without a
      wheel, or a broken install).
  """
  loader = _loader()
  library = loader.get_library_path()
  try:
    data = loader.get_data_path()
  except RuntimeError as e:
    raise RuntimeError(f"espeakng-loader has no espeak-ng data ({e}); reinstall it: {_INSTALL}") from None
  if not os.path.isfile(library):
    raise RuntimeError(f"espeakng-loader has no libespeak-ng at {library!r} (no wheel for this platform?).")
  return library, data


def backend_versions() -> dict[str, str]:
  """Versions that decide the rendered bytes: espeak-ng (from the library), espeakng-loader and soxr."""
  library, _ = backend_paths()
  try:
    lib = ctypes.CDLL(library)
  except OSError as e:
    raise RuntimeError(f"could not load libespeak-ng from espeakng-loader ({e}); reinstall it: {_INSTALL}") from None
  lib.espeak_Info.restype = ctypes.c_char_p
  lib.espeak_Info.argtypes = [ctypes.c_void_p]
  return {
      "espeak-ng": lib.espeak_Info(None).decode(),
      "espeakng-loader": importlib.metadata.version("espeakng-loader"),
      "soxr": _soxr().__version__,
  }


def available_languages() -> tuple[str, ...]:
  """The language voices of the shipped data: the file names under lang/, lowercased, sorted.

  espeak-ng selects a voice by this name (``"en"``, ``"en-us"``,
  ``"en-gb-scotland"``), not by its language code (``"en-gb"`` is no name).
  """
  _, data = backend_paths()
  return tuple(sorted({name.lower() for _, _, files in os.walk(os.path.join(data, "lang")) for name in files}))


def available_variants() -> tuple[str, ...]:
  """The voice variants of the shipped data: the file names in voices/!v, sorted."""
  _, data = backend_paths()
  folder = os.path.join(data, "voices", "!v")
  return tuple(sorted(n for n in os.listdir(folder) if os.path.isfile(os.path.join(folder, n))))


# ----------------------------------------------------------------------------
# espeak-ng through ctypes, in a worker process.

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_RATE, _PITCH = 1, 3  # espeak_PARAMETER.
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class _Espeak:
  """libespeak-ng, initialised for synchronous output to a callback. One per process: the library is global."""

  def __init__(self, library: str, data: str):
    lib = ctypes.CDLL(library)
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                 ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    self.sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode(), _INITIALIZE_DONT_EXIT)
    if self.sample_rate <= 0:
      raise RuntimeError(f"espeak_Initialize failed ({self.sample_rate}) with data {data!r}.")
    self._lib = lib
    self._libc = ctypes.CDLL(None)  # speechPlayer (klatt3) draws noise from the C library's rand().
    self._chunks: list[bytes] = []
    self._callback = _SYNTH_CALLBACK(self._collect)  # Kept referenced while the library may call it.
    lib.espeak_SetSynthCallback(self._callback)

  def _collect(self, wav, num_samples, events) -> int:
    del events
    if num_samples > 0 and wav:
      self._chunks.append(ctypes.string_at(wav, 2 * num_samples))
    return 0  # Continue.

  def _check(self, what: str, status: int) -> None:
    if status != 0:
      raise RuntimeError(f"espeak-ng {what} failed with status {status}.")

  def set_voice(self, voice: str) -> None:
    self._check(f"SetVoiceByName({voice!r})", self._lib.espeak_SetVoiceByName(voice.encode()))

  def synth(self, word: str, rate: int, pitch: int) -> bytes:
    """16-bit native-endian samples of ``word`` in the current voice."""
    self._chunks = []
    self._lib.espeak_ng_SetRandSeed(0)
    self._libc.srand(0)
    self._check("SetParameter(rate)", self._lib.espeak_SetParameter(_RATE, rate, 0))
    self._check("SetParameter(pitch)", self._lib.espeak_SetParameter(_PITCH, pitch, 0))
    text = word.encode("utf-8")
    self._check(f"Synth({word!r})", self._lib.espeak_Synth(text, len(text) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8,
                                                           None, None))
    self._check("Synchronize", self._lib.espeak_Synchronize())
    return b"".join(self._chunks)

  def synth_forked(self, word: str, rate: int, pitch: int) -> bytes:
    """`synth` in a forked child, so that this process's synthesis state stays the one after initialisation."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # The child: render, send, exit without running any of the parent's exit handlers.
      status = 1
      try:
        os.close(read)
        data = self.synth(word, rate, pitch)
        with os.fdopen(write, "wb") as f:
          f.write(data)
        status = 0
      except BaseException:  # pylint: disable=broad-except
        traceback.print_exc()
        sys.stderr.flush()
      finally:
        os._exit(status)  # pylint: disable=protected-access
    os.close(write)
    with os.fdopen(read, "rb") as f:
      data = f.read()
    _, status = os.waitpid(pid, 0)
    if status != 0:
      raise RuntimeError(f"rendering {word!r} at rate {rate}, pitch {pitch} failed (child status {status}).")
    return data


def _worker_main() -> None:
  """A render worker: reads a job (JSON) on stdin, writes the sample rate and each clip's samples on stdout.

  Output: int32 sample rate, then per clip an int32 sample count and that many
  native-endian int16 samples, in the job's order.
  """
  job = json.load(sys.stdin)
  out = sys.stdout.buffer
  espeak = _Espeak(job["library"], job["data"])
  out.write(struct.pack("=i", espeak.sample_rate))
  voice = None
  for word, clip_voice, rate, pitch in job["clips"]:
    if clip_voice != voice:  # Loading a voice leaves no trace in later synthesis (only synthesis does).
      espeak.set_voice(clip_voice)
      voice = clip_voice
    data = espeak.synth_forked(word, rate, pitch)
    out.write(struct.pack("=i", len(data) // 2))
    out.write(data)
  out.flush()


def _run_worker(library: str, data: str, clips: Sequence[tuple[str, str, int, int]]) -> tuple[int, list[np.ndarray]]:
  """Renders ``clips`` in one worker process; (espeak-ng's sample rate, int16 arrays)."""
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
  job = json.dumps({"library": library, "data": data, "clips": [list(c) for c in clips]}).encode()
  result = subprocess.run(
      [sys.executable, "-c", "from shuffle_learn.data import spoken_words; spoken_words._worker_main()"],
      input=job, capture_output=True, env=env, check=False)
  if result.returncode != 0:
    message = result.stderr.decode(errors="replace").strip().splitlines()[-12:]
    raise RuntimeError("the espeak-ng render worker failed:\n" + "\n".join(message))
  out = result.stdout
  (sample_rate,), offset = struct.unpack_from("=i", out, 0), 4
  audio = []
  for _ in clips:
    (n,) = struct.unpack_from("=i", out, offset)
    offset += 4
    audio.append(np.frombuffer(out, np.int16, n, offset).copy())
    offset += 2 * n
  if offset != len(out):
    raise RuntimeError(f"the espeak-ng render worker wrote {len(out)} bytes, expected {offset}.")
  return sample_rate, audio


def _fit(raw: np.ndarray, rate_in: int, num_samples: int) -> tuple[np.ndarray, bool, float]:
  """One clip by the module's clip rule: (int16 (num_samples,), whether it was cropped, word seconds)."""
  audio = _soxr().resample(raw.astype(np.float32) / 32768.0, rate_in, SAMPLE_RATE, quality="HQ")
  audio = np.asarray(audio, np.float64)
  peak = float(np.max(np.abs(audio))) if audio.size else 0.0
  if not peak > 0.0 or not np.isfinite(peak):
    raise RuntimeError("espeak-ng rendered a silent or non-finite clip.")
  loud = np.flatnonzero(np.abs(audio) >= peak * 10.0 ** (TRIM_DB / 20.0))
  word = audio[loud[0]:loud[-1] + 1] / peak
  cropped = len(word) > num_samples
  if cropped:
    start = (len(word) - num_samples) // 2
    word = word[start:start + num_samples]
  clip = np.zeros(num_samples, np.int16)
  offset = (num_samples - len(word)) // 2
  clip[offset:offset + len(word)] = np.round(word * _INT16_PEAK).astype(np.int16)
  return clip, cropped, (loud[-1] + 1 - loud[0]) / SAMPLE_RATE


def render(clips: Sequence[tuple[str, str, int, int]], seconds: float = 1.0, workers: int | None = None
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Renders clips by the module's clip rule.

  Args:
    clips: (word, voice, rate, pitch) tuples; voices as ``"{language}+{variant}"``
      (not checked here: `SpokenWordsSource` checks them).
    seconds: the window length (> 0).
    workers: render processes; None for one per available core, at most 8 and
      one per 64 clips.

  Returns:
    int16 ``(len(clips), round(seconds * 16000))`` clips (float audio x 32767),
    bool ``(len(clips),)`` whether each was cropped, float32 ``(len(clips),)``
    each word's trimmed length in seconds.

  Raises:
    ImportError: espeakng-loader or soxr is not installed.
    RuntimeError: no ``os.fork`` on this platform, or espeak-ng failed.
  """
  library, data = backend_paths()
  _soxr()
  if not hasattr(os, "fork"):
    raise RuntimeError("spoken_words renders in forked processes: it needs os.fork (Linux or macOS).")
  num_samples = int(round(_checks.check_number("seconds", seconds, 0.0, strict=True) * SAMPLE_RATE))
  clips = [(str(w), str(v), int(r), int(p)) for w, v, r, p in clips]
  if not clips:
    return np.zeros((0, num_samples), np.int16), np.zeros(0, bool), np.zeros(0, np.float32)
  if workers is not None:
    workers = _checks.check_int("workers", workers, 1)
  else:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = max(1, min(cores, 8, -(-len(clips) // 64)))
  chunks = [list(c) for c in np.array_split(np.arange(len(clips)), workers) if len(c)]
  with concurrent.futures.ThreadPoolExecutor(len(chunks)) as pool:
    results = list(pool.map(lambda c: _run_worker(library, data, [clips[i] for i in c]), chunks))
  out = np.zeros((len(clips), num_samples), np.int16)
  cropped = np.zeros(len(clips), bool)
  lengths = np.zeros(len(clips), np.float32)
  for chunk, (rate_in, audio) in zip(chunks, results):
    for i, raw in zip(chunk, audio):
      out[i], cropped[i], lengths[i] = _fit(raw, rate_in, num_samples)
  return out, cropped, lengths


# ----------------------------------------------------------------------------
# Arguments, the split rule and the cache.


def default_cache_dir() -> str:
  """$SHUFFLE_LEARN_CACHE/spoken_words, by default ~/.cache/shuffle_learn/spoken_words (as gm_notes' cache)."""
  root = os.environ.get("SHUFFLE_LEARN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "shuffle_learn")
  return os.path.join(root, "spoken_words")


def _cache_dir(cache_dir) -> str | None:
  if cache_dir is None or cache_dir is True:
    return default_cache_dir()
  if cache_dir is False:
    return None
  if not isinstance(cache_dir, (str, os.PathLike)):
    raise ValueError(f"cache_dir must be a path, None/True (the default folder) or False (none), got {cache_dir!r}.")
  return os.fspath(cache_dir)


def _check_words(words) -> tuple[str, ...]:
  if isinstance(words, (str, bytes)) or not isinstance(words, Sequence) or not words or not all(
      isinstance(w, str) and w.strip() == w and w and w.isprintable() for w in words):
    raise ValueError(f"words must be a non-empty tuple of non-blank printable strings, got {words!r}.")
  if len(set(words)) != len(words):
    raise ValueError(f"words has repeated entries: {words!r}.")
  return tuple(words)


def _check_voices(voices) -> tuple[str, ...]:
  if isinstance(voices, (str, bytes)) or not isinstance(voices, Sequence) or not voices or not all(
      isinstance(v, str) for v in voices):
    raise ValueError(f"voices must be a non-empty tuple of '{{language}}+{{variant}}' strings, got {voices!r}.")
  if len(set(voices)) != len(voices):
    raise ValueError(f"voices has repeated entries: {voices!r}.")
  languages, variants = set(available_languages()), set(available_variants())
  for voice in voices:
    language, _, variant = voice.partition("+")
    if language not in languages:
      raise ValueError(f"voices: {voice!r} has no espeak-ng language {language!r} (see available_languages()).")
    if "+" in voice and variant not in variants:
      raise ValueError(f"voices: {voice!r} has no espeak-ng variant {variant!r} (see available_variants()).")
  return tuple(voices)


def voice_splits(voices: Sequence[str]) -> dict[str, tuple[str, ...]]:
  """Each split's voices, in the order of ``voices``: voice ``v`` is in `images.split_of(v)`."""
  return {split: tuple(v for v in voices if images.split_of(v) == split) for split in SPLITS}


def _cache_key(settings: dict) -> str:
  payload = {"version": _CACHE_VERSION, **settings}
  return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def _read_cache(file: str, key: str, shape: tuple[int, int]) -> dict:
  """The arrays cached in `file`; ValueError unless it is whole and of this `key` and `shape`."""
  with np.load(file, allow_pickle=False) as data:
    meta = json.loads(str(data["meta"]))
    arrays = {"audio": np.asarray(data["audio"]), "cropped": np.asarray(data["cropped"]),
              "lengths": np.asarray(data["lengths"])}
  if meta.get("version") != _CACHE_VERSION:
    raise ValueError(f"cache format version {meta.get('version')!r}, expected {_CACHE_VERSION}")
  if meta.get("key") != key:
    raise ValueError(f"the file is the cache of key {meta.get('key')!r}, expected {key!r}")
  if arrays["audio"].dtype != np.int16 or arrays["audio"].shape != shape:
    raise ValueError(f"the cached audio is {arrays['audio'].dtype} {arrays['audio'].shape}, expected int16 {shape}")
  if arrays["cropped"].shape != shape[:1] or arrays["lengths"].shape != shape[:1]:
    raise ValueError("the cached cropped flags or lengths do not match the audio")
  arrays["seconds"] = float(meta["seconds"])
  return arrays


def _write_cache(file: str, key: str, arrays: dict) -> bool:
  """Writes the cache atomically; False (with a warning) if it cannot."""
  meta = {"version": _CACHE_VERSION, "key": key, "seconds": arrays["seconds"]}
  tmp = None
  try:
    os.makedirs(os.path.dirname(file), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(file), suffix=".npz.tmp")
    with os.fdopen(fd, "wb") as f:
      np.savez(f, audio=arrays["audio"], cropped=arrays["cropped"], lengths=arrays["lengths"],
               meta=np.asarray(json.dumps(meta)))
    os.chmod(tmp, 0o644)
    os.replace(tmp, file)  # Atomic: readers see the old file or the whole new one.
    return True
  except OSError as e:
    _log.warning("spoken_words: could not write the cache %s (%s); continuing without it.", file, e)
    if tmp and os.path.exists(tmp):
      os.remove(tmp)
    return False


# ----------------------------------------------------------------------------
# The source.


class SpokenWordsSource:
  """Speech Commands-style clips of synthetic speech (espeak-ng): one per (word, voice, rate, pitch) of a split.

  A grain ``RandomAccessDataSource``: `__len__` and `__getitem__`, deterministic
  (an index always gives the same example, bit for bit; see the module
  docstring) and picklable. Examples are ordered by voice, then word, rate and
  pitch.

  Attributes:
    split: "train", "valid" or "test".
    sample_rate: 16000.
    seconds: the clip length in seconds.
    class_names: the words, indexed by ``label``.
    voice_names: every voice of the selection (all splits), indexed by
      ``speaker``.
    split_voices: this split's voices, in the order of `voice_names`.
    rates, pitches: the selection's espeak-ng rates and pitches.
    summary: voices per split, examples, cropped clips, the longest word (s),
      how long rendering this split took (s; stored in the cache with it),
      whether this source read it from the cache (``from_cache``), and the
      backend versions.
  """

  def __init__(
      self,
      split: str = "train",
      *,
      words: Sequence[str] = WORDS,
      voices: Sequence[str] | None = None,
      rates: Sequence[int] = RATES,
      pitches: Sequence[int] = PITCHES,
      seconds: float = 1.0,
      cache_dir: str | bool | None = None,
  ):
    """Checks the arguments, then reads this split's clips from the cache or renders (and caches) them.

    Args:
      split: "train", "valid" or "test".
      words: the words, one class each, in label order; by default `WORDS`.
      voices: ``"{language}+{variant}"`` (or a bare language) names of
        `available_languages` and `available_variants`; None for `VOICES` (7
        English accents x 16 variants).
      rates: espeak-ng rates in words per minute, in [80, 450].
      pitches: espeak-ng pitch parameters, in [0, 100].
      seconds: clip length (> 0).
      cache_dir: folder of the rendered-split cache; None or True for
        `default_cache_dir()`, False for none (kept in memory only).

    Raises:
      ImportError: espeakng-loader or soxr is not installed (the message says
        what to pip install).
      RuntimeError: espeak-ng could not be loaded or failed.
      ValueError: a bad argument (the message starts with its name), or a
        split that gets no voice.
    """
    self.split = _checks.check_choice("split", split, SPLITS)
    self.class_names = _check_words(words)
    self.rates = _checks.check_ints("rates", rates, MIN_RATE, MAX_RATE, distinct=True)
    self.pitches = _checks.check_ints("pitches", pitches, 0, 100, distinct=True)
    self.seconds = _checks.check_number("seconds", seconds, 0.0, strict=True)
    num_samples = int(round(self.seconds * SAMPLE_RATE))
    if num_samples < 1:
      raise ValueError(f"seconds must be at least one sample at {SAMPLE_RATE} Hz, got {seconds!r}.")
    cache_dir = _cache_dir(cache_dir)
    versions = backend_versions()  # Fails here, naming the package, if the backend is missing.
    self.voice_names = _check_voices(VOICES if voices is None else voices)
    splits = voice_splits(self.voice_names)
    if not splits[self.split]:
      raise ValueError(f"voices: none of the {len(self.voice_names)} voices falls in split {self.split!r} "
                       f"(splits: { {s: len(v) for s, v in splits.items()} }); give more voices.")
    self.split_voices = splits[self.split]
    self.sample_rate = SAMPLE_RATE
    speaker = {v: i for i, v in enumerate(self.voice_names)}
    rows = list(itertools.product(self.split_voices, range(len(self.class_names)), self.rates, self.pitches))
    self._speaker = np.asarray([speaker[v] for v, _, _, _ in rows], np.int32)
    self._label = np.asarray([w for _, w, _, _ in rows], np.int32)
    self._rate = np.asarray([r for _, _, r, _ in rows], np.int16)
    self._pitch = np.asarray([p for _, _, _, p in rows], np.int16)
    self._shape = (len(rows), num_samples)
    self._key = _cache_key({
        "split": self.split, "words": list(self.class_names), "voices": list(self.split_voices),
        "rates": list(self.rates), "pitches": list(self.pitches), "num_samples": num_samples,
        "sample_rate": SAMPLE_RATE, "trim_db": TRIM_DB, "backend": versions})
    self._file = os.path.join(cache_dir, f"{self.split}-{self._key}.npz") if cache_dir else None
    self._lock = threading.Lock()
    arrays, from_cache = self._load_or_render()
    self._audio = arrays["audio"]
    self._cached = bool(self._file) and os.path.exists(self._file)
    self.summary = {
        "voices": {s: len(v) for s, v in splits.items()},
        "examples": len(rows),
        "cropped": int(arrays["cropped"].sum()),
        "longest_seconds": float(arrays["lengths"].max()),
        "render_seconds": arrays["seconds"],
        "from_cache": from_cache,
        "backend": versions,
    }
    self._repr = (
        f"SpokenWordsSource(split={self.split!r}, words={self.class_names!r}, voices={len(self.voice_names)} "
        f"({len(self.split_voices)} in split), rates={self.rates!r}, pitches={self.pitches!r}, "
        f"seconds={self.seconds!r}, len={len(rows)})")

  def _load_or_render(self) -> tuple[dict, bool]:
    """This split's arrays: from the cache file if it is sound, else rendered (and cached)."""
    if self._file and os.path.exists(self._file):
      try:
        return _read_cache(self._file, self._key, self._shape), True
      except Exception as e:  # pylint: disable=broad-except
        # Anything wrong with the file (truncated, not an npz, another format) means: rebuild it.
        _log.warning("spoken_words: rebuilding the damaged or foreign cache %s (%s).", self._file, e)
    clips = [(self.class_names[w], self.voice_names[s], int(r), int(p))
             for s, w, r, p in zip(self._speaker, self._label, self._rate, self._pitch)]
    _log.info("spoken_words: rendering %d clips of split %s ...", len(clips), self.split)
    start = time.perf_counter()
    audio, cropped, lengths = render(clips, self.seconds)
    arrays = {"audio": audio, "cropped": cropped, "lengths": lengths, "seconds": time.perf_counter() - start}
    _log.info("spoken_words: rendered %d clips in %.1f s.", len(clips), arrays["seconds"])
    if self._file:
      _write_cache(self._file, self._key, arrays)
    return arrays, False

  @property
  def num_classes(self) -> int:
    """Number of words."""
    return len(self.class_names)

  @property
  def num_speakers(self) -> int:
    """Number of voices over all splits: ``speaker`` is in ``[0, num_speakers)``."""
    return len(self.voice_names)

  def _check_index(self, index) -> int:
    if not _checks.is_int(index):
      raise TypeError(f"index must be an integer, got {index!r}.")
    n = len(self)
    if not -n <= index < n:
      raise IndexError(f"index {index} is out of range for a source of {n} clips.")
    return int(index) % n

  def clip(self, index: int) -> tuple[str, str, int, int]:
    """(word, voice, rate, pitch) of example `index`."""
    i = self._check_index(index)
    return (self.class_names[self._label[i]], self.voice_names[self._speaker[i]], int(self._rate[i]),
            int(self._pitch[i]))

  def word(self, index: int) -> str:
    """The word of example `index`: ``class_names[label]``."""
    return self.clip(index)[0]

  def _clips(self) -> np.ndarray:
    if self._audio is None:  # Unpickled without its audio: read it back from the cache (or render it again).
      with self._lock:
        if self._audio is None:
          self._audio = self._load_or_render()[0]["audio"]
    return self._audio

  def __len__(self) -> int:
    return len(self._label)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    i = self._check_index(index)
    return {
        "audio": self._clips()[i].astype(np.float32) / np.float32(_INT16_PEAK),
        "label": np.int32(self._label[i]),
        "speaker": np.int32(self._speaker[i]),
    }

  def __getstate__(self) -> dict:
    state = dict(self.__dict__)
    del state["_lock"]
    if self._cached:  # The audio is in the cache file: do not copy it into every pickle (grain workers).
      state["_audio"] = None
    return state

  def __setstate__(self, state: dict) -> None:
    self.__dict__.update(state)
    self._lock = threading.Lock()

  def __repr__(self) -> str:
    return self._repr
