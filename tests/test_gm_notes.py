"""Tests of the General-MIDI SoundFont notes (`shuffle_learn.data.gm_notes`).

They render with TimGM6mb.sf2 (shipped inside pretty_midi) and small
selections, so they need no download and no FluidR3.
"""

import hashlib
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import tinysoundfont

from shuffle_learn.data import gm_notes
from shuffle_learn.data import loader
from shuffle_learn.data import nsynth

TIM = gm_notes.default_soundfonts().split(",")[0]
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
  return {split: gm_notes.GMNotesSource(split, **SMALL) for split in gm_notes.SPLITS}


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
  assert set(example) == {"audio"} | set(nsynth.INT_FEATURES)
  assert example["audio"].dtype == np.float32 and example["audio"].shape == (nsynth.NUM_SAMPLES,)
  for key in nsynth.INT_FEATURES:
    assert isinstance(example[key], np.int32), key
  source, program, pitch, velocity = train.note(0)
  assert (example["pitch"], example["velocity"]) == (pitch, velocity)
  assert pitch in PITCHES and velocity in gm_notes.VELOCITIES
  family = gm_notes.GM_PROGRAM_FAMILY[program]
  assert gm_notes.FAMILIES[example["instrument/family"]] == family
  assert example["instrument/source"] == 0 and train.source_names[0] == source == "TimGM6mb"
  assert train.instrument_names[example["instrument/label"]].startswith(f"TimGM6mb:{program:03d} ")
  assert train.note_id(0) == f"{family}_TimGM6mb_{program:03d}-{pitch:03d}-{velocity:03d}"
  converted = nsynth.to_note(example)  # The common schema's own check.
  assert all(np.array_equal(converted[k], example[k]) for k in example)
  assert gm_notes.FAMILIES is nsynth.FAMILIES


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
    assert gm_notes.FAMILIES[example["instrument/family"]] == gm_notes.GM_PROGRAM_FAMILY[program]


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
    f0 = yin_f0(gm_notes.render_note(TIM, program, pitch, 100))
    semitones = 12 * np.log2(f0 / (440.0 * 2 ** ((pitch - 69) / 12)))
    assert abs(semitones) < 1.0, (program, pitch, f0)


def test_deterministic(train):
  first = [train[i]["audio"] for i in (0, 5)]
  for j in range(10, 20):  # Other notes in between must not change a note.
    train[j]
  assert np.array_equal(train[0]["audio"], first[0])
  assert np.array_equal(train[5]["audio"], first[1])
  _, program, pitch, velocity = train.note(5)
  assert np.array_equal(gm_notes.render_note(TIM, program, pitch, velocity), first[1])


def test_render_note_from_a_synth_matches_the_path():
  synth = tinysoundfont.Synth(samplerate=16000)
  synth.sfload(TIM)
  synth.program_select(0, 0, 0, 40)
  synth.noteon(0, 60, 100)  # Playing state in the synth does not leak into notes.
  from_synth = gm_notes.render_note(synth, 40, 64, 75)
  assert np.array_equal(from_synth, gm_notes.render_note(TIM, 40, 64, 75))
  with pytest.raises(ValueError, match="sample_rate"):
    gm_notes.render_note(synth, 40, 64, 75, sample_rate=22050)


def test_render_note_lengths_and_rate():
  audio = gm_notes.render_note(TIM, 0, 60, 100, sample_rate=8000, held_seconds=0.5, release_seconds=0.25)
  assert audio.shape == (6000,) and audio.dtype == np.float32
  assert gm_notes.render_note(TIM, 0, 60, 100, release_seconds=0.0).shape == (48000,)


def test_velocity_raises_loudness_on_average():
  def loudness(program, pitch, velocity):
    return np.sqrt(np.mean(gm_notes.render_note(TIM, program, pitch, velocity)[:48000] ** 2))

  rms = np.array([[loudness(p, k, v) for v in gm_notes.VELOCITIES] for p in PROGRAMS for k in (60, 69)])
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
    assert gm_notes.GM_PROGRAM_FAMILY[program] == family, program
  for program in (47, 55, 86, *range(88, 104), 104, 106, 107, 108, 109, *range(112, 128)):
    assert program in gm_notes.EXCLUDED_PROGRAMS
  assert set(gm_notes.GM_PROGRAM_FAMILY) | set(gm_notes.EXCLUDED_PROGRAMS) == set(range(128))
  assert not set(gm_notes.GM_PROGRAM_FAMILY) & set(gm_notes.EXCLUDED_PROGRAMS)
  assert set(gm_notes.GM_PROGRAM_FAMILY.values()) == set(gm_notes.FAMILIES)
  assert gm_notes.FAMILIES == (
      "bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed", "string", "synth_lead", "vocal")
  for family, (low, high) in gm_notes.FAMILY_PITCHES.items():
    assert family in gm_notes.FAMILIES and 21 <= low < high <= 108


def test_default_pitches_follow_the_family_ranges():
  source = gm_notes.GMNotesSource("train", soundfonts=TIM, programs=(32,), velocities=(100,), cache_dir=None)
  low, high = gm_notes.FAMILY_PITCHES["bass"]
  assert source.summary["total"]["rendered"] == high - low + 1
  assert {source.note(i)[2] for i in range(len(source))} <= set(range(low, high + 1))


def test_default_soundfonts(monkeypatch, tmp_path):
  paths = gm_notes.default_soundfonts().split(",")
  assert os.path.isfile(paths[0]) and paths[0].endswith("TimGM6mb.sf2")
  assert (gm_notes._DEBIAN_FLUID in paths) == os.path.isfile(gm_notes._DEBIAN_FLUID)
  monkeypatch.setattr(gm_notes, "_DEBIAN_FLUID", str(tmp_path / "FluidR3_GM.sf2"))
  assert gm_notes.default_soundfonts() == TIM
  monkeypatch.setattr(gm_notes, "_PYTHON_MIDI_SOUNDFONT", "nothing.sf2")
  with pytest.raises(FileNotFoundError, match="no default SoundFont"):
    gm_notes.default_soundfonts()


@pytest.mark.skipif(not os.path.isfile(gm_notes._DEBIAN_FLUID), reason="FluidR3_GM is not installed")
def test_fluid_soundfont_beside_tim():
  # FluidR3's contrabass has no samples above MIDI 57.
  soundfonts = f"{TIM},{gm_notes._DEBIAN_FLUID}"
  kwargs = dict(soundfonts=soundfonts, programs=(43,), pitches=(40, 50, 57, 58, 70), cache_dir=None)
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
  assert gm_notes.split_of(np.array([0.95, 0.85, 0.99])).tolist() == [2, 0, 2]
  assert gm_notes.split_of(np.array([0.1, 0.85, 0.95])).tolist() == [0, 1, 2]
  assert gm_notes.split_of(np.array([0.93])).tolist() == [0]


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
  assert np.max(np.abs(gm_notes.render_note(TIM, 68, 30, 127))) < 1e-3
  for split in gm_notes.SPLITS:
    notes = _notes(gm_notes.GMNotesSource(split, **kwargs))
    assert all(pitch != 30 for _, _, pitch, _ in notes)


def test_silent_renders_are_detected(monkeypatch):
  render = gm_notes._render_raw

  def quiet_at_64(template, bank, program, pitch, velocity, *args):
    audio = render(template, bank, program, pitch, velocity, *args)
    return audio * 1e-4 if pitch == 64 else audio  # Peak well below -60 dBFS.

  monkeypatch.setattr(gm_notes, "_render_raw", quiet_at_64)
  monkeypatch.setattr(gm_notes, "_SCANS", {})
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
  monkeypatch.setattr(gm_notes, "_SCANS", {})
  kwargs = dict(soundfonts=TIM, programs=(0, 40), pitches=(60, 64), cache_dir=str(tmp_path))
  first = gm_notes.GMNotesSource("train", **kwargs)
  files = list(tmp_path.iterdir())
  assert len(files) == 1 and files[0].name.startswith("TimGM6mb-") and files[0].suffix == ".npz"

  def no_render(*args):
    raise AssertionError("the cached index was not used")

  monkeypatch.setattr(gm_notes, "_SCANS", {})
  monkeypatch.setattr(gm_notes, "_compute_scan", no_render)
  again = gm_notes.GMNotesSource("train", **kwargs)
  assert _notes(again) == _notes(first) and again.summary["total"] == first.summary["total"]
  # Another silence threshold reuses the same cache.
  gm_notes.GMNotesSource("train", **kwargs, silence_db=-70.0)
  # Other render parameters do not.
  with pytest.raises(AssertionError, match="not used"):
    gm_notes.GMNotesSource("train", **kwargs, gain_db=-3.0)


def test_corrupt_index_cache_is_rebuilt(tmp_path, monkeypatch):
  monkeypatch.setattr(gm_notes, "_SCANS", {})
  kwargs = dict(soundfonts=TIM, programs=(0,), pitches=(60, 64, 67), cache_dir=str(tmp_path))
  first = gm_notes.GMNotesSource("train", **kwargs)
  (file,) = tmp_path.iterdir()
  file.write_bytes(b"not an npz")
  monkeypatch.setattr(gm_notes, "_SCANS", {})
  assert _notes(gm_notes.GMNotesSource("train", **kwargs)) == _notes(first)
  assert np.load(file)["peaks"].shape == (15,)


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
  assert gm_notes.known_soundfonts()["TimGM6mb"] == TIM
  with pytest.raises(FileNotFoundError, match="NoSuchFont.*neither a file nor an installed known SoundFont"):
    gm_notes.GMNotesSource("train", soundfonts="NoSuchFont", programs=(0,), pitches=(60,), cache_dir=None)


def test_missing_soundfont(tmp_path):
  missing = str(tmp_path / "nope.sf2")
  with pytest.raises(FileNotFoundError, match="nope.sf2"):
    gm_notes.GMNotesSource("train", soundfonts=f"{TIM},{missing}", cache_dir=None, programs=(0,), pitches=(60,))
  with pytest.raises(FileNotFoundError, match="nope.sf2"):
    gm_notes.render_note(missing, 0, 60, 100)


def test_corrupt_soundfont(tmp_path, rng):
  bad = tmp_path / "corrupt.sf2"
  bad.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
  with pytest.raises(ValueError, match="corrupt.sf2"):
    gm_notes.GMNotesSource("train", soundfonts=str(bad), cache_dir=None, programs=(0,), pitches=(60,))
  with pytest.raises(ValueError, match="corrupt.sf2"):
    gm_notes.render_note(str(bad), 0, 60, 100)
  with pytest.raises(ValueError, match="directory"):
    gm_notes.render_note(str(tmp_path), 0, 60, 100)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(split="training"), "split must be one of"),
        (dict(soundfonts=" , "), "soundfonts names no file"),
        (dict(soundfonts=[TIM]), "soundfonts must be a comma-separated string"),
        (dict(soundfonts=f"{TIM},{TIM}"), "two files named 'TimGM6mb'"),
        (dict(programs=(120,)), "program 120 has no NSynth family"),
        (dict(programs=()), "programs is empty"),
        (dict(programs=(0, 0)), "repeated"),
        (dict(pitches=()), "pitches is empty"),
        (dict(pitches=(128,)), r"pitches\[0\] must be an integer in \[0, 127\]"),
        (dict(velocities=(0, 100)), "velocities"),
        (dict(sample_rate=0), "sample_rate"),
        (dict(held_seconds=0.0), "held_seconds"),
        (dict(release_seconds=-1.0), "release_seconds"),
        (dict(silence_db=float("nan")), "silence_db"),
        (dict(cache_dir=3), "cache_dir"),
    ],
)
def test_bad_arguments(kwargs, match):
  args = {**SMALL, "split": "train", **kwargs}
  with pytest.raises(ValueError, match=match):
    gm_notes.GMNotesSource(args.pop("split"), **args)


def test_bad_render_arguments():
  with pytest.raises(ValueError, match="velocity"):
    gm_notes.render_note(TIM, 0, 60, 0)
  with pytest.raises(ValueError, match="pitch"):
    gm_notes.render_note(TIM, 0, 128, 100)
  with pytest.raises(ValueError, match="not in bank 1"):
    gm_notes.render_note(TIM, 0, 60, 100, bank=1)
  with pytest.raises(ValueError, match="synth_or_soundfont"):
    gm_notes.render_note(3, 0, 60, 100)


def test_index_out_of_range(train):
  assert np.array_equal(train[-1]["audio"], train[len(train) - 1]["audio"])
  with pytest.raises(IndexError):
    train[len(train)]
  with pytest.raises(TypeError):
    train[1.0]
