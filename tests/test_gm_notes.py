"""Tests of the General-MIDI SoundFont notes: `gm_notes`, `gm_index`, `soundfonts`, `gm_programs`.

They render with TimGM6mb.sf2 (shipped inside pretty_midi) and small
selections, so they need no download and no FluidR3.
"""

import hashlib
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import tinysoundfont

from shuffle_learn.data import gm_index
from shuffle_learn.data import gm_notes
from shuffle_learn.data import gm_programs
from shuffle_learn.data import loader
from shuffle_learn.data import nsynth
from shuffle_learn.data import schema
from shuffle_learn.data import soundfonts

TIM = soundfonts.default_soundfonts().split(",")[0]
# Piano, nylon guitar, violin, trumpet, alto sax, flute: clear pitch, one each of
# six families.
PROGRAMS = (0, 24, 40, 56, 65, 73)
PITCHES = (57, 60, 69, 72)
SMALL = dict(soundfonts=TIM, programs=PROGRAMS, pitches=PITCHES, cache_dir=None)


@pytest.fixture(scope="module")
def train():
  return gm_notes.GMNotesSource("train", **SMALL)


@pytest.fixture(scope="module")
def splits():
  return {split: gm_notes.GMNotesSource(split, **SMALL) for split in gm_index.SPLITS}


def yin_f0(audio: np.ndarray, sample_rate: int = 16000, fmin: float = 40.0, fmax: float = 2000.0) -> float:
  """Fundamental frequency of a steady segment by YIN (de Cheveigne & Kawahara 2002)."""
  window, max_lag = 2048, int(sample_rate / fmin)
  seg = audio[sample_rate // 2 : sample_rate // 2 + window + max_lag].astype(np.float64)
  lags = np.arange(1, max_lag)
  diff = np.array([np.sum((seg[:window] - seg[lag : lag + window]) ** 2) for lag in lags])
  cmnd = diff * lags / np.maximum(np.cumsum(diff), 1e-20)
  low = int(sample_rate / fmax)
  below = np.flatnonzero(cmnd[low:] < 0.15)
  i = low + (below[0] if below.size else np.argmin(cmnd[low:]))
  while i + 1 < len(cmnd) and cmnd[i + 1] < cmnd[i]:
    i += 1
  a, b, c = cmnd[i - 1], cmnd[i], cmnd[min(i + 1, len(cmnd) - 1)]
  offset = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c else 0.0
  return sample_rate / (lags[i] + offset)


# ----------------------------------------------------------------------------
# Schema and audio.


def test_common_schema(train):
  example = train[0]
  assert set(example) == {"audio"} | set(schema.NOTE_LABELS)
  assert example["audio"].dtype == np.float32 and example["audio"].shape == (schema.NUM_SAMPLES,)
  for key in schema.NOTE_LABELS:
    assert isinstance(example[key], np.int32), key
  source, program, pitch, velocity = train.note(0)
  assert (example["pitch"], example["velocity"]) == (pitch, velocity)
  assert pitch in PITCHES and velocity in gm_programs.VELOCITIES
  family = gm_programs.GM_PROGRAM_FAMILY[program]
  assert schema.FAMILIES[example["instrument/family"]] == family
  assert example["instrument/source"] == 0 and train.source_names[0] == source == "TimGM6mb"
  assert train.instrument_names[example["instrument/label"]].startswith(f"TimGM6mb:{program:03d} ")
  assert train.note_id(0) == f"{family}_TimGM6mb_{program:03d}-{pitch:03d}-{velocity:03d}"
  converted = nsynth.to_note(example)  # The common schema's own check.
  assert all(np.array_equal(converted[k], example[k]) for k in example)


def test_is_a_note_source(train):
  assert isinstance(train, schema.NoteSource)
  assert train.num_families == len(schema.FAMILIES)
  assert train.num_instruments == len(train.instrument_names)


def test_labels_and_families(train):
  assert train.num_instruments == len(PROGRAMS) and train.num_families == 11
  seen = {}
  for i in range(len(train)):
    _, program, _, _ = train.note(i)
    seen.setdefault(program, set()).add(int(train._label[i]))
  assert all(len(labels) == 1 for labels in seen.values())
  assert sorted(label for labels in seen.values() for label in labels) == list(range(len(PROGRAMS)))
  for label, name in enumerate(train.instrument_names):
    program = int(name.split(":")[1][:3])
    assert name.startswith("TimGM6mb:") and program in PROGRAMS
    example = train[[i for i in range(len(train)) if train._label[i] == label][0]]
    assert schema.FAMILIES[example["instrument/family"]] == gm_programs.GM_PROGRAM_FAMILY[program]


def test_audio_is_audible_finite_and_bounded(train):
  for i in range(0, len(train), 7):
    audio = train[i]["audio"]
    assert np.all(np.isfinite(audio))
    assert np.max(np.abs(audio)) <= 1.0
    assert np.max(np.abs(audio)) >= 10 ** (-60 / 20)
    # Note off at 3 s: the last 0.1 s is quieter than the held part.
    assert np.sqrt(np.mean(audio[-1600:] ** 2)) < np.sqrt(np.mean(audio[:48000] ** 2))


@pytest.mark.parametrize("program", PROGRAMS)
def test_pitch(program):
  for pitch in PITCHES:
    f0 = yin_f0(soundfonts.render_note(TIM, program, pitch, 100))
    semitones = 12 * np.log2(f0 / (440.0 * 2 ** ((pitch - 69) / 12)))
    assert abs(semitones) < 1.0, (program, pitch, f0)


def test_deterministic(train):
  first = [train[i]["audio"] for i in (0, 5)]
  for j in range(10, 20):  # Other notes in between must not change a note.
    train[j]
  assert np.array_equal(train[0]["audio"], first[0])
  assert np.array_equal(train[5]["audio"], first[1])
  _, program, pitch, velocity = train.note(5)
  assert np.array_equal(soundfonts.render_note(TIM, program, pitch, velocity), first[1])


def test_render_note_from_a_synth_matches_the_path():
  synth = tinysoundfont.Synth(samplerate=16000)
  synth.sfload(TIM)
  synth.program_select(0, 0, 0, 40)
  synth.noteon(0, 60, 100)  # Playing state in the synth does not leak into notes.
  from_synth = soundfonts.render_note(synth, 40, 64, 75)
  assert np.array_equal(from_synth, soundfonts.render_note(TIM, 40, 64, 75))
  with pytest.raises(ValueError, match="sample_rate"):
    soundfonts.render_note(synth, 40, 64, 75, sample_rate=22050)


def test_render_note_lengths_and_rate():
  audio = soundfonts.render_note(TIM, 0, 60, 100, sample_rate=8000, held_seconds=0.5, release_seconds=0.25)
  assert audio.shape == (6000,) and audio.dtype == np.float32
  assert soundfonts.render_note(TIM, 0, 60, 100, release_seconds=0.0).shape == (48000,)


def test_velocity_raises_loudness_on_average():
  def loudness(program, pitch, velocity):
    return np.sqrt(np.mean(soundfonts.render_note(TIM, program, pitch, velocity)[:48000] ** 2))

  rms = np.array([[loudness(p, k, v) for v in gm_programs.VELOCITIES] for p in PROGRAMS for k in (60, 69)])
  assert np.all(np.diff(rms.mean(axis=0)) > 0)
  assert np.mean(np.diff(rms, axis=1) > 0) > 0.9


def test_pickled_source_renders_the_same(train):
  clone = pickle.loads(pickle.dumps(train))
  assert repr(clone) == repr(train) and len(clone) == len(train)
  assert np.array_equal(clone[3]["audio"], train[3]["audio"])


def test_batches_through_the_loader(train):
  # Four read threads render at once: each note must still be its own.
  batches = list(loader.note_batches(train, batch_size=8, seed=0, num_epochs=1, num_threads=4))
  assert len(batches) == len(train) // 8
  assert batches[0]["audio"].shape == (8, 64000) and batches[0]["instrument/label"].dtype == np.int32
  expected = {train.note(i)[1:]: train[i]["audio"] for i in range(len(train))}
  for batch in batches[:2]:
    for row in range(8):
      label = int(batch["instrument/label"][row])
      program = int(train.instrument_names[label].split(":")[1][:3])
      key = (program, int(batch["pitch"][row]), int(batch["velocity"][row]))
      assert np.array_equal(batch["audio"][row], expected[key])


# ----------------------------------------------------------------------------
# The family table.


def test_family_table():
  expected = {
      0: "keyboard", 7: "keyboard", 16: "organ", 24: "guitar", 31: "guitar", 32: "bass", 39: "bass",
      40: "string", 46: "string", 48: "string", 52: "vocal", 56: "brass", 63: "brass", 64: "reed",
      65: "reed", 71: "reed", 73: "flute", 79: "flute", 80: "synth_lead", 105: "guitar", 110: "string",
  }
  expected.update({p: "mallet" for p in range(8, 16)})
  for program, family in expected.items():
    assert gm_programs.GM_PROGRAM_FAMILY[program] == family, program
  for program in (47, 55, 86, *range(88, 104), 104, 106, 107, 108, 109, *range(112, 128)):
    assert program in gm_programs.EXCLUDED_PROGRAMS
  assert set(gm_programs.GM_PROGRAM_FAMILY) | set(gm_programs.EXCLUDED_PROGRAMS) == set(range(128))
  assert not set(gm_programs.GM_PROGRAM_FAMILY) & set(gm_programs.EXCLUDED_PROGRAMS)
  assert set(gm_programs.GM_PROGRAM_FAMILY.values()) == set(schema.FAMILIES)
  assert schema.FAMILIES == (
      "bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed", "string", "synth_lead", "vocal")
  for family, (low, high) in gm_programs.FAMILY_PITCHES.items():
    assert family in schema.FAMILIES and 21 <= low < high <= 108


def test_default_pitches_follow_the_family_ranges():
  source = gm_notes.GMNotesSource("train", soundfonts=TIM, programs=(32,), velocities=(100,), cache_dir=None)
  low, high = gm_programs.FAMILY_PITCHES["bass"]
  assert source.summary["total"]["rendered"] == high - low + 1
  assert {source.note(i)[2] for i in range(len(source))} <= set(range(low, high + 1))


def test_default_soundfonts(monkeypatch, tmp_path):
  paths = soundfonts.default_soundfonts().split(",")
  assert os.path.isfile(paths[0]) and paths[0].endswith("TimGM6mb.sf2")
  assert (soundfonts._DEBIAN_FLUID in paths) == os.path.isfile(soundfonts._DEBIAN_FLUID)
  monkeypatch.setattr(soundfonts, "_DEBIAN_FLUID", str(tmp_path / "FluidR3_GM.sf2"))
  assert soundfonts.default_soundfonts() == TIM
  monkeypatch.setattr(soundfonts, "_PYTHON_MIDI_SOUNDFONT", "nothing.sf2")
  with pytest.raises(FileNotFoundError, match="no default SoundFont"):
    soundfonts.default_soundfonts()


@pytest.mark.skipif(not os.path.isfile(soundfonts._DEBIAN_FLUID), reason="FluidR3_GM is not installed")
def test_fluid_soundfont_beside_tim():
  # FluidR3's contrabass has no samples above MIDI 57.
  fonts = f"{TIM},{soundfonts._DEBIAN_FLUID}"
  kwargs = dict(soundfonts=fonts, programs=(43,), pitches=(40, 50, 57, 58, 70), cache_dir=None)
  source = gm_notes.GMNotesSource("train", **kwargs)
  fluid = source.summary["soundfonts"]["FluidR3_GM"]
  assert (fluid["kept"], fluid["silent"]) == (15, 10)
  assert source.summary["soundfonts"]["TimGM6mb"]["silent"] == 0
  assert source.instrument_names == ("TimGM6mb:043 Contrabass", "FluidR3_GM:043 Contrabass")
  assert source.source_names == ("TimGM6mb", "FluidR3_GM")
  for i in range(len(source)):
    example = source[i]
    assert example["instrument/source"] == example["instrument/label"]  # One program per SoundFont here.
    assert source.note(i)[0] == source.source_names[example["instrument/source"]]


# ----------------------------------------------------------------------------
# Splits.


def _notes(source):
  return {source.note(i) for i in range(len(source))}


def test_splits_are_disjoint_cover_and_share_instruments(splits):
  notes = {name: _notes(source) for name, source in splits.items()}
  assert not notes["train"] & notes["valid"] and not notes["train"] & notes["test"]
  assert not notes["valid"] & notes["test"]
  summary = splits["train"].summary
  assert sum(len(n) for n in notes.values()) == summary["total"]["kept"] == len(PROGRAMS) * len(PITCHES) * 5
  assert {k: len(v) for k, v in notes.items()} == summary["splits"]
  instruments = {name: {n[:2] for n in v} for name, v in notes.items()}
  assert instruments["test"] <= instruments["train"] and instruments["valid"] <= instruments["train"]
  assert len(notes["train"]) > len(notes["valid"]) and len(notes["train"]) > len(notes["test"])
  # Labels are shared by the splits.
  for source in splits.values():
    assert source.instrument_names == splits["train"].instrument_names


def test_split_rule_is_the_documented_hash(splits):
  for name, source in splits.items():
    for sf, program, pitch, velocity in _notes(source):
      digest = hashlib.sha256(f"{sf}|{program}|{pitch}|{velocity}".encode()).digest()
      u = int.from_bytes(digest[:8], "big") / 2**64
      expected = "train" if u < 0.8 else "valid" if u < 0.9 else "test"
      assert expected == name  # No instrument here needed the move to train.


def test_split_of_moves_one_note_to_train_when_none_is():
  assert gm_index.split_of(np.array([0.95, 0.85, 0.99])).tolist() == [2, 0, 2]
  assert gm_index.split_of(np.array([0.1, 0.85, 0.95])).tolist() == [0, 1, 2]
  assert gm_index.split_of(np.array([0.93])).tolist() == [0]


def test_a_one_note_instrument_is_in_train():
  kwargs = dict(soundfonts=TIM, programs=(0,), pitches=(60,), velocities=(25,), cache_dir=None)
  assert len(gm_notes.GMNotesSource("train", **kwargs)) == 1
  with pytest.raises(ValueError, match="split 'test' is empty"):
    gm_notes.GMNotesSource("test", **kwargs)


def test_splits_are_stable_across_processes(splits):
  code = (
      "from shuffle_learn.data import gm_notes as g;"
      f"s = g.GMNotesSource('test', soundfonts={TIM!r}, programs={PROGRAMS!r}, pitches={PITCHES!r}, cache_dir=None);"
      "print(sorted(s.note(i) for i in range(len(s))))"
  )
  for seed in ("1", "2"):
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONHASHSEED": seed}, cwd=os.path.dirname(os.path.dirname(__file__)),
    ).stdout
    assert out.strip() == str(sorted(_notes(splits["test"])))


# ----------------------------------------------------------------------------
# Silent notes.


def test_unplayable_pitch_is_left_out():
  # TimGM6mb's oboe has no samples below MIDI 36: those notes render silent.
  kwargs = dict(soundfonts=TIM, programs=(68,), pitches=(30, 60, 62, 64, 65, 67), cache_dir=None)
  source = gm_notes.GMNotesSource("train", **kwargs)
  stats = source.summary["soundfonts"]["TimGM6mb"]
  assert (stats["rendered"], stats["kept"], stats["silent"]) == (30, 25, 5)
  assert np.max(np.abs(soundfonts.render_note(TIM, 68, 30, 127))) < 1e-3
  for split in gm_index.SPLITS:
    notes = _notes(gm_notes.GMNotesSource(split, **kwargs))
    assert all(pitch != 30 for _, _, pitch, _ in notes)


def test_silent_renders_are_detected(monkeypatch):
  render = soundfonts._render_raw

  def quiet_at_64(template, bank, program, pitch, velocity, *args):
    audio = render(template, bank, program, pitch, velocity, *args)
    return audio * 1e-4 if pitch == 64 else audio  # Peak well below -60 dBFS.

  monkeypatch.setattr(soundfonts, "_render_raw", quiet_at_64)
  monkeypatch.setattr(gm_index, "_SCANS", {})
  source = gm_notes.GMNotesSource("train", soundfonts=TIM, programs=(0, 40), pitches=(60, 64, 67), cache_dir=None)
  assert source.summary["total"]["silent"] == 2 * 5
  assert source.summary["total"]["kept"] == 2 * 2 * 5
  assert 64 not in {pitch for _, _, pitch, _ in _notes(source)}


def test_all_silent_is_an_error():
  with pytest.raises(ValueError, match="empty selection"):
    gm_notes.GMNotesSource("train", soundfonts=TIM, programs=(68,), pitches=(21, 25, 30), cache_dir=None)


# ----------------------------------------------------------------------------
# The index cache.


def test_index_cache_is_written_and_reused(tmp_path, monkeypatch):
  monkeypatch.setattr(gm_index, "_SCANS", {})
  kwargs = dict(soundfonts=TIM, programs=(0, 40), pitches=(60, 64), cache_dir=str(tmp_path))
  first = gm_notes.GMNotesSource("train", **kwargs)
  files = list(tmp_path.iterdir())
  assert len(files) == 1 and files[0].name.startswith("TimGM6mb-") and files[0].suffix == ".npz"

  def no_render(*args):
    raise AssertionError("the cached index was not used")

  monkeypatch.setattr(gm_index, "_SCANS", {})
  monkeypatch.setattr(gm_index, "_compute_scan", no_render)
  again = gm_notes.GMNotesSource("train", **kwargs)
  assert _notes(again) == _notes(first) and again.summary["total"] == first.summary["total"]
  # Another silence threshold reuses the same cache.
  gm_notes.GMNotesSource("train", **kwargs, silence_db=-70.0)
  # Other render parameters do not.
  with pytest.raises(AssertionError, match="not used"):
    gm_notes.GMNotesSource("train", **kwargs, gain_db=-3.0)


def _in_order(source):
  """The source's notes and labels, in index order."""
  return [(source.note(i), int(source._label[i])) for i in range(len(source))]


def _truncated(file):
  file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


def _random_bytes(file):
  file.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())


def _rewritten(file, **changes):
  """Rewrites the cache npz with `changes` to its arrays or, for `meta_*`, to its meta fields."""
  with np.load(file) as data:
    arrays = {k: data[k] for k in data.files}
  meta = json.loads(str(arrays["meta"]))
  for key, value in changes.items():
    if key.startswith("meta_") and value is None:
      del meta[key[5:]]
    elif key.startswith("meta_"):
      meta[key[5:]] = value
    elif value is None:
      del arrays[key]
    else:
      arrays[key] = value
  arrays["meta"] = np.asarray(json.dumps(meta))
  with open(file, "wb") as f:
    np.savez(f, **arrays)


DAMAGES = {
    "truncated": _truncated,
    "random_bytes": _random_bytes,
    # All peaks 0: trusting the file would make every note silent.
    "other_version": lambda f: _rewritten(f, peaks=np.zeros(15, np.float32), meta_version=1),
    "no_version": lambda f: _rewritten(f, peaks=np.zeros(15, np.float32), meta_version=None),
    "copied_from_another_key": lambda f: _rewritten(f, peaks=np.zeros(15, np.float32), meta_key="0" * 24),
    "missing_peaks": lambda f: _rewritten(f, peaks=None),
    "short_peaks": lambda f: _rewritten(f, peaks=np.ones(3, np.float32)),
    "other_notes": lambda f: _rewritten(f, notes=np.zeros((15, 3), np.int16)),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_index_cache_is_rebuilt_not_trusted(tmp_path, monkeypatch, damage):
  kwargs = dict(soundfonts=TIM, programs=(0,), pitches=(60, 64, 67))
  monkeypatch.setattr(gm_index, "_SCANS", {})
  reference = gm_notes.GMNotesSource("train", **kwargs, cache_dir=None)
  monkeypatch.setattr(gm_index, "_SCANS", {})
  gm_notes.GMNotesSource("train", **kwargs, cache_dir=str(tmp_path))
  (file,) = tmp_path.iterdir()
  DAMAGES[damage](file)
  monkeypatch.setattr(gm_index, "_SCANS", {})
  rebuilt = gm_notes.GMNotesSource("train", **kwargs, cache_dir=str(tmp_path))
  assert _in_order(rebuilt) == _in_order(reference)
  assert rebuilt.instrument_names == reference.instrument_names
  assert rebuilt.summary["total"] == reference.summary["total"]
  assert rebuilt.summary["splits"] == reference.summary["splits"]
  assert [f.name for f in tmp_path.iterdir()] == [file.name]  # Rewritten in place, no temporary left.
  with np.load(file) as data:  # Readable again, and of this format.
    assert data["peaks"].shape == (15,) and np.all(data["peaks"] > 0)
    assert json.loads(str(data["meta"]))["version"] == gm_index._CACHE_VERSION
  # The rewritten file is trusted: the next source renders nothing.
  monkeypatch.setattr(gm_index, "_SCANS", {})
  monkeypatch.setattr(gm_index, "_compute_scan", lambda *args: pytest.fail("the rewritten cache was not used"))
  assert _in_order(gm_notes.GMNotesSource("train", **kwargs, cache_dir=str(tmp_path))) == _in_order(reference)


def test_changed_soundfont_is_detected(tmp_path):
  copy = tmp_path / "Copy.sf2"
  copy.write_bytes(open(TIM, "rb").read())
  source = gm_notes.GMNotesSource("train", soundfonts=str(copy), programs=(0,), pitches=(60, 64, 67), cache_dir=None)
  source[0]
  os.utime(copy, ns=(0, 0))
  with pytest.raises(ValueError, match="changed since"):
    source[0]


# ----------------------------------------------------------------------------
# Hostile input.


def test_clip_seconds_renders_exactly_the_start_of_each_note():
  whole = gm_notes.GMNotesSource("train", **SMALL)
  for seconds, samples in ((1.0, 16000), (3.5, 56000), (4.0, 64000)):
    clipped = gm_notes.GMNotesSource("train", clip_seconds=seconds, **SMALL)
    assert len(clipped) == len(whole)
    for i in (0, len(whole) - 1):
      assert clipped[i]["audio"].shape == (samples,)
      np.testing.assert_array_equal(clipped[i]["audio"], whole[i]["audio"][:samples])
      assert clipped[i]["pitch"] == whole[i]["pitch"]
  for bad in (0.0, -1.0, float("nan"), 1e-5):
    with pytest.raises(ValueError, match="clip_seconds"):
      gm_notes.GMNotesSource("train", clip_seconds=bad, **SMALL)


def test_soundfonts_by_name():
  source = gm_notes.GMNotesSource("train", soundfonts="TimGM6mb", programs=(0,), pitches=(60, 64, 67), cache_dir=None)
  assert source.soundfonts == (TIM,)
  assert soundfonts.known_soundfonts()["TimGM6mb"] == TIM
  with pytest.raises(FileNotFoundError, match="NoSuchFont.*neither a file nor an installed known SoundFont"):
    gm_notes.GMNotesSource("train", soundfonts="NoSuchFont", programs=(0,), pitches=(60,), cache_dir=None)


def test_missing_soundfont(tmp_path):
  missing = str(tmp_path / "nope.sf2")
  with pytest.raises(FileNotFoundError, match="nope.sf2"):
    gm_notes.GMNotesSource("train", soundfonts=f"{TIM},{missing}", cache_dir=None, programs=(0,), pitches=(60,))
  with pytest.raises(FileNotFoundError, match="nope.sf2"):
    soundfonts.render_note(missing, 0, 60, 100)


def test_corrupt_soundfont(tmp_path, rng):
  bad = tmp_path / "corrupt.sf2"
  bad.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
  with pytest.raises(ValueError, match="corrupt.sf2"):
    gm_notes.GMNotesSource("train", soundfonts=str(bad), cache_dir=None, programs=(0,), pitches=(60,))
  with pytest.raises(ValueError, match="corrupt.sf2"):
    soundfonts.render_note(str(bad), 0, 60, 100)
  with pytest.raises(ValueError, match="directory"):
    soundfonts.render_note(str(tmp_path), 0, 60, 100)


def _wav_bytes():
  """A valid RIFF file that is not a SoundFont: 0.1 s of 16-bit WAV silence."""
  data = bytes(3200)
  fmt = (16).to_bytes(4, "little") + (1).to_bytes(2, "little") * 2 + (16000).to_bytes(4, "little")
  fmt += (32000).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
  body = b"WAVE" + b"fmt " + fmt + b"data" + len(data).to_bytes(4, "little") + data
  return b"RIFF" + len(body).to_bytes(4, "little") + body


BAD_FILES = {
    # name: (how the file is made, the error, what its message says besides the file's name)
    "missing": (lambda path: None, FileNotFoundError, "not found"),
    "directory": (lambda path: path.mkdir(), ValueError, "is a directory"),
    "empty": (lambda path: path.write_bytes(b""), ValueError, "is an empty file"),
    "random_bytes": (lambda path: path.write_bytes(np.random.default_rng(0).integers(
        0, 256, 4096, dtype=np.uint8).tobytes()), ValueError, "no RIFF 'sfbk' header"),
    "truncated": (lambda path: path.write_bytes(open(TIM, "rb").read()[:1_000_000]), ValueError,
                  "is truncated: its header declares 5994284 bytes, the file has 1000000"),
    "wav": (lambda path: path.write_bytes(_wav_bytes()), ValueError, "no RIFF 'sfbk' header"),
    # A whole RIFF sfbk header over garbage: TinySoundFont's own parser rejects it.
    "garbage_body": (lambda path: path.write_bytes(open(TIM, "rb").read()[:12] + np.random.default_rng(1).integers(
        0, 256, 5994284 - 12, dtype=np.uint8).tobytes()), ValueError, "is not a readable .sf2/.sf3 file"),
}


@pytest.mark.parametrize("kind", BAD_FILES)
def test_bad_soundfont_file_is_named_before_any_work(tmp_path, monkeypatch, kind):
  make, error, message = BAD_FILES[kind]
  bad = tmp_path / f"bad_{kind}.sf2"
  make(bad)
  cache = tmp_path / "cache"
  monkeypatch.setattr(gm_index, "_SCANS", {})
  monkeypatch.setattr(soundfonts, "_render_raw", lambda *args: pytest.fail("a note was rendered"))
  with pytest.raises(error) as raised:
    # The bad file comes second: TimGM6mb is neither scanned nor cached first.
    gm_notes.GMNotesSource("train", soundfonts=f"{TIM},{bad}", programs=(0,), pitches=(60,), cache_dir=str(cache))
  assert repr(str(bad)) in str(raised.value) and message in str(raised.value), str(raised.value)
  assert not cache.exists()
  with pytest.raises(error) as raised:
    soundfonts.render_note(str(bad), 0, 60, 100)
  assert repr(str(bad)) in str(raised.value) and message in str(raised.value)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(split="training"), "split must be one of"),
        (dict(soundfonts=" , "), "soundfonts names no file"),
        (dict(soundfonts=[TIM]), "soundfonts must be a string"),
        (dict(soundfonts=f"{TIM},{TIM}"), "two files named 'TimGM6mb'"),
        (dict(programs=(120,)), "program 120 has no NSynth family"),
        (dict(programs=()), r"programs must be a non-empty tuple of integers in \[0, 127\]"),
        (dict(programs=(0, 0)), "programs has repeated entries"),
        (dict(pitches=()), "pitches must be a non-empty tuple"),
        (dict(pitches=(128,)), r"pitches must be a non-empty tuple of integers in \[0, 127\], got \(128,\)"),
        (dict(velocities=(0, 100)), r"velocities must be a non-empty tuple of integers in \[1, 127\]"),
        (dict(sample_rate=0), "sample_rate must be an integer in"),
        (dict(held_seconds=0.0), "held_seconds must be a finite number > 0"),
        (dict(held_seconds=1e-5), "held_seconds must be at least one sample at 16000 Hz"),
        (dict(release_seconds=-1.0), "release_seconds must be a finite number >= 0"),
        (dict(silence_db=float("nan")), "silence_db must be a finite number"),
        (dict(gain_db=float("inf")), "gain_db must be a finite number"),
        (dict(cache_dir=3), "cache_dir must be a path"),
    ],
)
def test_bad_arguments(kwargs, match):
  args = {**SMALL, "split": "train", **kwargs}
  with pytest.raises(ValueError, match=match):
    gm_notes.GMNotesSource(args.pop("split"), **args)


def test_bad_render_arguments():
  with pytest.raises(ValueError, match=r"velocity must be an integer in \[1, 127\], got 0"):
    soundfonts.render_note(TIM, 0, 60, 0)
  with pytest.raises(ValueError, match=r"pitch must be an integer in \[0, 127\], got 128"):
    soundfonts.render_note(TIM, 0, 128, 100)
  with pytest.raises(ValueError, match="program 0 is not in bank 1"):
    soundfonts.render_note(TIM, 0, 60, 100, bank=1)
  with pytest.raises(ValueError, match="synth_or_soundfont must be a tinysoundfont.Synth or an .sf2/.sf3 path"):
    soundfonts.render_note(3, 0, 60, 100)


def test_index_out_of_range(train):
  assert np.array_equal(train[-1]["audio"], train[len(train) - 1]["audio"])
  with pytest.raises(IndexError):
    train[len(train)]
  with pytest.raises(TypeError):
    train[1.0]
