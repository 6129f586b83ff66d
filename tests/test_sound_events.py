"""Tests of the sound event detection source `sound_events`: labels, events, scores, mixtures, splits, errors.

The mixtures are tiny (a few of 2 s); the event files (1,468 short SoundFont
renders and 36 backgrounds) are built once per cache folder, in 1-3 s.
"""

import json
import os
import pickle
import sys

import numpy as np
import pytest

from shuffle_learn.data import images
from shuffle_learn.data import loader
from shuffle_learn.data import sound_events

NAMES = ("a", "b", "c")
TINY = dict(num_examples=6, seconds=2.0)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  return str(tmp_path_factory.mktemp("sound_events"))


@pytest.fixture(scope="module")
def train(cache):
  return sound_events.SoundEventsSource("train", cache_dir=cache, **TINY)


@pytest.fixture(scope="module")
def test_split(cache):
  return sound_events.SoundEventsSource("test", cache_dir=cache, **TINY)


def _random_events(rng, num, seconds, names=NAMES):
  onsets = rng.uniform(-0.2, seconds, num)
  return [(float(on), float(on + rng.uniform(0.0, 1.0)), str(rng.choice(names))) for on in onsets]


def test_frame_labels_match_a_brute_force_loop(rng):
  for _ in range(20):
    hop, num_frames = float(rng.choice([0.02, 0.1, 0.25])), int(rng.integers(1, 50))
    events = _random_events(rng, int(rng.integers(0, 6)), num_frames * hop * 1.1)
    expected = np.zeros((num_frames, len(NAMES)), np.uint8)
    for t in range(num_frames):
      for onset, offset, name in events:
        if onset / hop < t + 1 - 1e-6 and offset / hop > t + 1e-6:
          expected[t, NAMES.index(name)] = 1
    got = sound_events.frame_labels(events, num_frames, hop, NAMES)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, expected)
  # Boundaries: an event on frame edges marks exactly the frames between them, a zero-length one none.
  labels = sound_events.frame_labels([(0.3, 0.5, "b"), (0.7, 0.7, "a")], 10, 0.1, NAMES)
  assert np.flatnonzero(labels[:, 1]).tolist() == [3, 4] and not labels[:, 0].any()


def test_frames_to_events_round_trips_frame_labels(rng):
  for _ in range(20):
    hop, num_frames = float(rng.choice([0.02, 0.1, 0.3])), int(rng.integers(1, 60))
    labels = sound_events.frame_labels(_random_events(rng, 5, num_frames * hop), num_frames, hop, NAMES)
    events = sound_events.frames_to_events(labels, hop, NAMES)
    np.testing.assert_array_equal(sound_events.frame_labels(events, num_frames, hop, NAMES), labels)
  on_grid = [(0.2, 0.5, "a"), (0.3, 0.4, "c"), (0.6, 0.9, "a")]
  labels = sound_events.frame_labels(on_grid, 12, 0.1, NAMES)
  back = sound_events.frames_to_events(labels.astype(np.float32) * 0.9, 0.1, NAMES, threshold=0.5)
  assert [(round(a, 9), round(b, 9), c) for a, b, c in back] == on_grid
  blip = np.zeros((9, 3))
  blip[4, 1] = blip[1:8, 2] = 1.0
  blip[5, 2] = 0.0  # A one-frame gap.
  assert sound_events.frames_to_events(blip, 1.0, NAMES, median_frames=3) == [(1.0, 8.0, "c")]


def test_evaluate_perfect_empty_and_collar():
  reference = [[(0.5, 1.0, "a"), (1.5, 2.5, "b")], [(0.2, 0.4, "c")], [(1.0, 3.0, "a"), (2.0, 2.2, "c")]]
  perfect = sound_events.evaluate(reference, reference, NAMES)
  assert perfect == {"event_onset_f1": 1.0, "event_onset_error_rate": 0.0, "segment_f1": 1.0,
                     "segment_error_rate": 0.0}
  empty = sound_events.evaluate(reference, [[] for _ in reference], NAMES)
  assert empty["event_onset_f1"] == 0.0 and empty["segment_f1"] == 0.0 and empty["event_onset_error_rate"] == 1.0
  # Onsets within 0.2 s match, whatever the offsets; onsets 0.3 s off do not.
  near = [[(on + 0.15, off + 0.7, c) for on, off, c in events] for events in reference]
  far = [[(on + 0.3, off + 0.3, c) for on, off, c in events] for events in reference]
  assert sound_events.evaluate(reference, near, NAMES)["event_onset_f1"] == 1.0
  assert sound_events.evaluate(reference, far, NAMES)["event_onset_f1"] == 0.0
  with pytest.raises(ValueError, match="^estimated"):
    sound_events.evaluate(reference, reference[:2])


def test_frame_label_and_event_arguments_are_checked():
  with pytest.raises(ValueError, match="^events: class 'd'"):
    sound_events.frame_labels([(0.0, 1.0, "d")], 10, 0.1, NAMES)
  with pytest.raises(ValueError, match="^events:.*ends before it starts"):
    sound_events.frame_labels([(1.0, 0.5, "a")], 10, 0.1, NAMES)
  with pytest.raises(ValueError, match="^num_frames"):
    sound_events.frame_labels([], 0, 0.1, NAMES)
  with pytest.raises(ValueError, match="^hop_seconds"):
    sound_events.frame_labels([], 10, 0.0, NAMES)
  with pytest.raises(ValueError, match="^class_names"):
    sound_events.frame_labels([], 10, 0.1, ("a", "a"))
  with pytest.raises(ValueError, match="^probabilities"):
    sound_events.frames_to_events(np.zeros((5, 2)), 0.1, NAMES)
  with pytest.raises(ValueError, match="^median_frames"):
    sound_events.frames_to_events(np.zeros((5, 3)), 0.1, NAMES, median_frames=2)


def test_examples_follow_the_schema_and_the_events(train):
  assert len(train) == 6 and train.num_classes == 11 == len(train.class_names)
  assert train.num_frames == 20 and train.frame_hop == 0.1
  for i in range(len(train)):
    example = train[i]
    assert set(example) == {"audio", "frame_labels"}
    assert example["audio"].shape == (32000,) and example["audio"].dtype == np.float32
    assert np.all(np.abs(example["audio"]) <= 1.0) and np.std(example["audio"]) > 1e-4
    events = train.events(i)
    assert 1 <= len(events) <= 4 and all(0.0 <= on < off <= 2.0 + 1e-9 for on, off, _ in events)
    np.testing.assert_array_equal(example["frame_labels"],
                                  sound_events.frame_labels(events, 20, 0.1, train.class_names))
    assert example["frame_labels"].any()
  with pytest.raises(IndexError):
    train[6]
  batch = next(iter(loader.note_batches(train, batch_size=4, seed=0, shuffle=False, num_epochs=1)))
  assert batch["audio"].shape == (4, 32000) and batch["frame_labels"].shape == (4, 20, 11)
  np.testing.assert_array_equal(batch["frame_labels"][3], train[3]["frame_labels"])


def test_same_arguments_same_bytes_in_a_fresh_cache(train, tmp_path):
  again = sound_events.SoundEventsSource("train", cache_dir=str(tmp_path), **TINY)  # Renders and mixes anew.
  for i in range(len(train)):
    assert train[i]["audio"].tobytes() == again[i]["audio"].tobytes()
    assert train.events(i) == again.events(i) and train.event_files(i) == again.event_files(i)
  copy = pickle.loads(pickle.dumps(again))
  assert copy[2]["audio"].tobytes() == again[2]["audio"].tobytes()
  other = sound_events.SoundEventsSource("train", cache_dir=str(tmp_path), seed=1, **TINY)
  assert not np.array_equal(other[0]["audio"], train[0]["audio"])


def test_damaged_cache_is_rebuilt(train, cache):
  stem = train._audio_path[: -len(".npz")]  # pylint: disable=protected-access
  with open(stem + ".json", "w") as f:
    f.write("{not json")
  rebuilt = sound_events.SoundEventsSource("train", cache_dir=cache, **TINY)
  assert rebuilt[1]["audio"].tobytes() == train[1]["audio"].tobytes()
  with open(stem + ".json") as f:
    assert json.load(f)["num_examples"] == 6


def test_splits_use_disjoint_event_files(train, test_split, cache):
  index_paths = [os.path.join(cache, d, "index.json") for d in os.listdir(cache) if d.startswith("events-")]
  assert len(index_paths) == 1
  with open(index_paths[0]) as f:
    index = json.load(f)
  sound = lambda item: item.rsplit("-h", 1)[0]  # "class/preset-key-tuning": a file's sound key.
  by_split = {split: set() for split in sound_events.SPLITS}
  for entry in index["files"]:
    key = sound(f"{entry['class']}/{entry['file']}")
    assert entry["split"] == images.split_of(f"sound_events/{key}")
    by_split[entry["split"]].add(key)
  assert not by_split["train"] & by_split["test"] and not by_split["train"] & by_split["valid"]
  for source in (train, test_split):
    for i in range(len(source)):
      used = source.event_files(i)
      assert [u.split("/")[0] for u in used] == [e[2] for e in source.events(i)]
      assert {sound(u) for u in used} <= by_split[source.split]
      assert source.background(i).split("/")[1].startswith(source.split + "-")


def _band_rise_db(audio, at, window, sample_rate=16000):
  """The largest rise, in dB, of an octave band's energy (62.5 Hz to 8 kHz) from before `at` to after it."""
  taper = np.hanning(window)
  before = np.abs(np.fft.rfft(audio[at - window : at] * taper)) ** 2
  after = np.abs(np.fft.rfft(audio[at : at + window] * taper)) ** 2
  frequencies = np.fft.rfftfreq(window, 1.0 / sample_rate)
  edges = 62.5 * 2.0 ** np.arange(8)
  bands = [(frequencies >= low) & (frequencies < high) for low, high in zip(edges[:-1], edges[1:])]
  return max(10 * np.log10((after[band].sum() + 1e-20) / (before[band].sum() + 1e-20)) for band in bands)


def test_annotated_onsets_agree_with_the_audio(cache):
  """One event per mixture, 20 dB over the background: some octave band's energy jumps at the annotated onset.

  Bands, not the total energy: the SNR is in LUFS, whose K-weighting all but
  ignores the lows that hold most of the brown noise's energy. And nothing
  rises in the window before the onset, so the annotation is not late either.
  """
  source = sound_events.SoundEventsSource("valid", num_examples=8, seconds=2.0, cache_dir=cache,
                                          events_per_mixture=(1, 1), snr_db=(20.0, 20.0))
  checked = 0
  for i in range(len(source)):
    audio = source[i]["audio"].astype(np.float64)
    (onset, _, _), = source.events(i)
    at = int(round(onset * source.sample_rate))
    window = min(800, at // 2)  # 50 ms, or less for an onset in the first 100 ms.
    if window < 160:
      continue
    checked += 1
    assert _band_rise_db(audio, at, window) > 10.0, (i, source.events(i))
    assert _band_rise_db(audio, at - window, window) < 10.0, (i, source.events(i))
  assert checked >= 6


def test_bad_arguments_name_themselves(cache):
  for name, value in [("split", "dev"), ("num_examples", 0), ("seconds", -1.0), ("seconds", 100.0),
                      ("frame_hop", 3.0), ("seed", -1), ("events_per_mixture", (3, 1)),
                      ("events_per_mixture", (0, 2)), ("snr_db", (5.0,)), ("snr_db", (6.0, -6.0)),
                      ("cache_dir", 3)]:
    kwargs = {"split": "train", "cache_dir": cache, **TINY, name: value}
    with pytest.raises(ValueError, match=f"^{name}"):
      sound_events.SoundEventsSource(kwargs.pop("split"), **kwargs)


def test_missing_packages_are_named(monkeypatch, tmp_path):
  monkeypatch.setitem(sys.modules, "scaper", None)  # `import scaper` now raises ImportError.
  with pytest.raises(ImportError, match=r"pip package scaper \(pip install --no-deps scaper"):
    sound_events.SoundEventsSource("train", cache_dir=str(tmp_path), **TINY)
  assert not os.listdir(tmp_path)  # It failed before rendering anything.
  monkeypatch.setitem(sys.modules, "sed_eval", None)
  with pytest.raises(ImportError, match=r"pip package sed_eval \(pip install sed_eval\)"):
    sound_events.evaluate([[(0.0, 1.0, "a")]], [[]])


def test_the_sox_stand_in_converts_nothing_and_refuses_effects():
  transformer = sound_events._IdentityTransformer()  # pylint: disable=protected-access
  samples = np.zeros((10, 1), np.float32)
  transformer.convert(samplerate=16000, n_channels=1)
  np.testing.assert_array_equal(transformer.build_array(input_array=samples, sample_rate_in=16000), samples)
  with pytest.raises(sound_events.SoxUnavailableError, match="convert audio"):
    transformer.build_array(input_array=samples, sample_rate_in=22050)
  with pytest.raises(sound_events.SoxUnavailableError, match="'pitch'"):
    transformer.pitch(2.0)
