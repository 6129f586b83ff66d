"""Which General-MIDI notes a `GMNotesSource` holds, and in which split.

Selection: every program of the selection (keys of
`gm_programs.GM_PROGRAM_FAMILY`, bank 0) at the pitches of its family's range
in `gm_programs.FAMILY_PITCHES` (or the pitches given) and the velocities given
(by default NSynth's five, Engel et al. 2017). SoundFont zones often cover only
part of the keyboard, so some of these candidates render silent: a note whose
peak (gain applied, before clipping) is below ``silence_db`` dBFS is left out,
and one above 1 is kept and counted as ``clipped``. A program the SoundFont does
not have in bank 0 is left out and listed as missing.

Scan and its cache: checking a note means rendering it, which is too slow to
redo on every construction and in every grain worker. So each SoundFont's peaks
(its scan) are kept in memory per process and cached on disk in
``{cache_dir}/{stem}-{key}.npz``, the key hashing the cache format
(`_CACHE_VERSION`), the SoundFont's real path, size and mtime, and the
rendering and selection parameters; the silence threshold is applied on load,
so it is not in the key. The file is written atomically. On load, the file's
own ``version`` and ``key`` fields and its notes must match, so a damaged file,
a file of another format, or one copied under another name is rebuilt (and
rewritten), never trusted.

Splits: within each instrument (SoundFont x program), the note (soundfont,
program, pitch, velocity) goes to train if u < 0.8, valid if u < 0.9, else test,
where u is the first 8 bytes of sha256("{source}|{program}|{pitch}|{velocity}")
read as a big-endian integer over 2**64 (source = SoundFont file stem). An
instrument none of whose kept notes fall in train gets its note with the
smallest u moved to train, so every instrument of valid and test also occurs in
train (NSynth itself keeps instruments disjoint across splits; here instrument
classification must be evaluable on test). A note's split depends only on its
own name (and, for that one moved note, on its instrument's other kept notes):
it is stable across runs, machines and Python hash seeds.

References:
  Engel et al., "Neural Audio Synthesis of Musical Notes with WaveNet
  Autoencoders", ICML 2017 (the NSynth dataset).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import time
from typing import Mapping, Sequence

import numpy as np

from shuffle_learn.data import gm_programs
from shuffle_learn.data import schema
from shuffle_learn.data import soundfonts

_log = logging.getLogger(__name__)

SPLITS = schema.SPLITS
_CACHE_VERSION = 2  # 2: the meta holds the version and the key.


def default_cache_dir() -> str:
  """$SHUFFLE_LEARN_CACHE/gm_notes, by default ~/.cache/shuffle_learn/gm_notes."""
  root = os.environ.get("SHUFFLE_LEARN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "shuffle_learn")
  return os.path.join(root, "gm_notes")


def candidates(programs: Sequence[int], pitches: Sequence[int] | None, velocities: Sequence[int]) -> np.ndarray:
  """The selection's notes before the silence check, int16 (n, 3) rows (program, pitch, velocity) in a fixed order.

  Args:
    programs: keys of `gm_programs.GM_PROGRAM_FAMILY`.
    pitches: MIDI pitches tried for every program; None for each program's
      `gm_programs.FAMILY_PITCHES` range.
    velocities: MIDI velocities.
  """
  rows = []
  for program in programs:
    family = gm_programs.GM_PROGRAM_FAMILY[program]
    low, high = gm_programs.FAMILY_PITCHES[family]
    keys = pitches if pitches is not None else range(low, high + 1)
    rows.extend((program, pitch, velocity) for pitch in keys for velocity in velocities)
  return np.asarray(rows, np.int16).reshape(-1, 3)


# ----------------------------------------------------------------------------
# The silence scan and its cache.


@dataclasses.dataclass(frozen=True)
class _Scan:
  """Every candidate note of one SoundFont and its peak (gain applied, unclipped)."""

  notes: np.ndarray  # int16 (n, 3): program, pitch, velocity.
  peaks: np.ndarray  # float32 (n,); NaN where the render was not finite, -1 where the program is missing.
  preset_names: dict[int, str]  # program -> the SoundFont's preset name.
  missing: tuple[int, ...]  # requested programs not in bank 0.
  seconds: float  # Time the scan took when it was computed.


_SCANS: dict[str, _Scan] = {}


def _scan_key(fingerprint, notes: np.ndarray, render: Mapping) -> str:
  payload = {
      "version": _CACHE_VERSION,
      "soundfont": list(fingerprint),
      "render": dict(render),
      "notes": hashlib.sha256(notes.tobytes()).hexdigest(),
  }
  return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def _compute_scan(path: str, notes: np.ndarray, render: Mapping) -> _Scan:
  start = time.perf_counter()
  template = soundfonts.load_soundfont(path, sample_rate=render["sample_rate"]).soundfonts[0]
  held, release = soundfonts.note_lengths(render["sample_rate"], render["held_seconds"], render["release_seconds"])
  gain = 10.0 ** (render["gain_db"] / 20.0)
  programs = sorted(set(notes[:, 0].tolist()))
  missing = tuple(p for p in programs if template.get_preset_index(0, p) < 0)
  names = {p: template.get_preset_name(0, p) for p in programs if p not in missing}
  peaks = np.full(len(notes), np.nan, np.float32)
  for i, (program, pitch, velocity) in enumerate(notes.tolist()):
    if program in missing:
      continue
    audio = soundfonts._render_raw(  # pylint: disable=protected-access
        template, 0, program, pitch, velocity, held, release, gain)
    peak = float(np.max(np.abs(audio)))
    peaks[i] = peak if np.isfinite(peak) else np.nan
  peaks[np.isin(notes[:, 0], missing)] = -1.0  # Not rendered: the preset is missing.
  return _Scan(notes, peaks, names, missing, time.perf_counter() - start)


def _read_scan(file: str, key: str, notes: np.ndarray) -> _Scan:
  """The scan cached in `file`; ValueError unless it is whole and of this `key` and `notes`."""
  with np.load(file, allow_pickle=False) as data:
    meta = json.loads(str(data["meta"]))
    scan = _Scan(
        np.asarray(data["notes"]),
        np.asarray(data["peaks"]),
        {int(k): str(v) for k, v in meta["preset_names"].items()},
        tuple(int(p) for p in meta["missing"]),
        float(meta["seconds"]),
    )
  if meta.get("version") != _CACHE_VERSION:
    raise ValueError(f"cache format version {meta.get('version')!r}, expected {_CACHE_VERSION}")
  if meta.get("key") != key:
    raise ValueError(f"the file is the cache of key {meta.get('key')!r}, expected {key!r}")
  if scan.notes.dtype != notes.dtype or not np.array_equal(scan.notes, notes):
    raise ValueError("the cached notes differ from the selection")
  if scan.peaks.dtype != np.float32 or scan.peaks.shape != (len(notes),):
    raise ValueError(f"the cached peaks are {scan.peaks.dtype} {scan.peaks.shape}, expected float32 ({len(notes)},)")
  played = set(notes[:, 0].tolist()) - set(scan.missing)
  if not played <= set(scan.preset_names):
    raise ValueError(f"the cache names no preset for programs {sorted(played - set(scan.preset_names))}")
  return scan


def _write_scan(file: str, key: str, scan: _Scan) -> None:
  meta = {"version": _CACHE_VERSION, "key": key, "preset_names": scan.preset_names, "missing": list(scan.missing),
          "seconds": scan.seconds}
  tmp = None
  try:
    os.makedirs(os.path.dirname(file), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(file), suffix=".npz.tmp")
    with os.fdopen(fd, "wb") as f:
      np.savez(f, notes=scan.notes, peaks=scan.peaks, meta=np.asarray(json.dumps(meta)))
    os.chmod(tmp, 0o644)
    os.replace(tmp, file)  # Atomic: readers see the old file or the whole new one.
  except OSError as e:
    _log.warning("gm_index: could not write the index cache %s (%s); continuing without it.", file, e)
    if tmp and os.path.exists(tmp):
      os.remove(tmp)


def _scan(path: str, notes: np.ndarray, render: Mapping, cache_dir: str | None) -> _Scan:
  """The scan of one SoundFont: from memory, from `cache_dir`, or computed (and then cached)."""
  key = _scan_key(soundfonts.fingerprint(path), notes, render)
  if key in _SCANS:
    return _SCANS[key]
  stem = os.path.splitext(os.path.basename(path))[0]
  file = os.path.join(cache_dir, f"{stem}-{key}.npz") if cache_dir else None
  scan = None
  if file and os.path.exists(file):
    try:
      scan = _read_scan(file, key, notes)
    except Exception as e:  # pylint: disable=broad-except
      # Anything wrong with the file (truncated, not an npz, another format) means: rebuild it.
      _log.warning("gm_index: rebuilding the damaged or foreign index cache %s (%s).", file, e)
  if scan is None:
    _log.info("gm_index: checking %d notes of %s ...", len(notes), path)
    scan = _compute_scan(path, notes, render)
    _log.info("gm_index: checked %d notes of %s in %.1f s.", len(notes), path, scan.seconds)
    if file:
      _write_scan(file, key, scan)
  _SCANS[key] = scan
  return scan


# ----------------------------------------------------------------------------
# Splits and the index.


def _unit_hash(source: str, program: int, pitch: int, velocity: int) -> float:
  return schema.unit_hash(f"{source}|{program}|{pitch}|{velocity}")


def split_of(unit_hashes: np.ndarray) -> np.ndarray:
  """Splits (indices into SPLITS) of one instrument's notes from their hashes.

  Args:
    unit_hashes: float64 (n,) in [0, 1), one per kept note of one instrument.

  Returns:
    int8 (n,): 0 (train) where u < 0.8, 1 (valid) where u < 0.9, else 2 (test);
    if none is train, the note with the smallest u is train.
  """
  u = np.asarray(unit_hashes, np.float64)
  split = np.searchsorted(np.asarray(schema.SPLIT_BOUNDS), u, side="right").astype(np.int8)
  if u.size and not np.any(split == 0):
    split[np.argmin(u)] = 0
  return split


@dataclasses.dataclass(frozen=True)
class Index:
  """Every kept note of a selection, with its instrument and split."""

  source: np.ndarray  # int16 (n,) index into the SoundFonts.
  notes: np.ndarray  # int16 (n, 3): program, pitch, velocity.
  label: np.ndarray  # int32 (n,) instrument label.
  split: np.ndarray  # int8 (n,) index into SPLITS.
  instrument_names: tuple[str, ...]  # Indexed by label: "{source}:{program:03d} {preset name}".
  summary: dict  # Per SoundFont and in total: notes rendered, kept, silent, clipped; splits.


def build_index(paths: Sequence[str], names: Sequence[str], notes: np.ndarray, render: Mapping, silence_db: float,
                cache_dir: str | None) -> Index:
  """Scans every SoundFont's candidate notes and indexes the audible ones.

  Args:
    paths: the SoundFont files; a note's ``source`` is an index into them.
    names: their names (file stems), which the split hash reads.
    notes: the `candidates`, int16 (n, 3).
    render: the rendering parameters (``sample_rate``, ``held_seconds``,
      ``release_seconds``, ``gain_db``, ``max_voices``), part of the cache key.
    silence_db: a note whose peak is below this (dBFS) is left out.
    cache_dir: directory of the per-SoundFont scan cache; None for none.

  Returns:
    The kept notes in a fixed order (SoundFont, then program, then candidate
    order), labelled one instrument per SoundFont x program.

  Raises:
    ValueError: no note is audible.
  """
  threshold = 10.0 ** (silence_db / 20.0)
  sources, kept_notes, labels, splits, instrument_names = [], [], [], [], []
  per_font = {}
  for s, (path, name) in enumerate(zip(paths, names)):
    scan = _scan(path, notes, render, cache_dir)
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
      kept_notes.append(scan.notes[rows])
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
        "gm_index: %s: %d notes rendered, %d kept, %d silent, %d clipped, %d instruments; missing programs %s.",
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
  return Index(np.concatenate(sources), np.concatenate(kept_notes), np.concatenate(labels), split,
               tuple(instrument_names), summary)
