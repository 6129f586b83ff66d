"""Tests of the unlabelled audio mix (`audio_mix`) and its registration as source "audio_mix".

Most tests mix small in-memory sources (lists of dicts) whose audio says which
source and example it came from. Through the registry, configs are only
validated, and the one mix that is built holds a small gm_notes selection
(rendered on demand in milliseconds); the default mix of three sources is
built in a slow test.
"""

import pickle

import numpy as np
import pytest

from experiments.configs import default
from shuffle_learn import config as config_lib
from shuffle_learn import job as job_lib
from shuffle_learn.data import audio_mix
from shuffle_learn.data import gm_notes
from shuffle_learn.data import loader
from shuffle_learn.data import sources

NUM_SAMPLES = 10
SIZES = (5, 12, 3)


def stub(j: int, size: int, dtype=np.float32) -> list[dict]:
  """Source ``j``: example k's audio is 1000 j + k + 0.001 t (t the sample), 5 to 16 samples long."""
  return [{"audio": (1000.0 * j + k + 0.001 * np.arange(5 + (7 * k + 3 * j) % 12)).astype(dtype),
           "label": np.int32(k)} for k in range(size)]


def stubs(sizes=SIZES) -> list[list[dict]]:
  return [stub(j, size) for j, size in enumerate(sizes)]


def mix_of(sizes=SIZES, **kwargs) -> audio_mix.AudioMixSource:
  kwargs = {"names": tuple(f"s{j}" for j in range(len(sizes))), "num_samples": NUM_SAMPLES, **kwargs}
  return audio_mix.AudioMixSource(stubs(sizes), **kwargs)


def expected_origins(sizes, per_source, seed) -> list[tuple[int, int]]:
  """(source, example) of every mix index, recomputed from the module docstring's rule."""
  origins = []
  for j, size in enumerate(sizes):
    order = np.random.default_rng([seed, j]).permutation(size)
    keep = size if not per_source else min(per_source, size)
    origins += [(j, int(k)) for k in order[:keep]]
  return origins


def fitted(audio: np.ndarray, num_samples: int) -> np.ndarray:
  out = np.zeros(num_samples, np.float32)
  out[:min(len(audio), num_samples)] = audio[:num_samples]
  return out


def all_examples(mix) -> list[dict]:
  return [mix[i] for i in range(len(mix))]


def assert_same_examples(a: list[dict], b: list[dict]) -> None:
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert set(x) == set(y) == {"audio", "source"}
    np.testing.assert_array_equal(x["audio"], y["audio"])
    assert x["source"] == y["source"]


# ----------------------------------------------------------------------------
# The source, on stub sources.


@pytest.mark.parametrize("per_source, counts", [(None, (5, 12, 3)), (0, (5, 12, 3)), (4, (4, 4, 3)),
                                                (1, (1, 1, 1)), (12, (5, 12, 3)), (100, (5, 12, 3))])
def test_counts_and_length(per_source, counts):
  mix = mix_of(per_source=per_source)
  assert mix.counts == counts and len(mix) == sum(counts)
  assert mix.names == ("s0", "s1", "s2") and mix.num_samples == NUM_SAMPLES and mix.sample_rate == 16000
  assert mix.per_source == (per_source or None)


@pytest.mark.parametrize("per_source, seed", [(None, 0), (4, 0), (4, 7), (2, 123)])
def test_examples_follow_the_selection_rule(per_source, seed):
  mix = mix_of(per_source=per_source, seed=seed)
  raw = stubs()
  origins = expected_origins(SIZES, per_source, seed)
  assert [mix.origin(i) for i in range(len(mix))] == origins
  for i, (j, k) in enumerate(origins):
    example = mix[i]
    assert set(example) == {"audio", "source"}  # The sub-sources' labels are dropped.
    assert example["source"] == j and example["audio"][0] == np.float32(1000 * j + k)
    np.testing.assert_array_equal(example["audio"], fitted(raw[j][k]["audio"], NUM_SAMPLES))
  for j in range(len(SIZES)):  # No example twice; all of a source without a cap.
    kept = [k for jj, k in origins if jj == j]
    assert len(set(kept)) == len(kept) == mix.counts[j]
    if not per_source:
      assert sorted(kept) == list(range(SIZES[j]))


def test_selection_is_per_source_and_nested():
  # A source's kept examples depend on its position, size, seed and cap, not on the other sources.
  a = audio_mix.AudioMixSource([stub(0, 12), stub(1, 30)], names=("a", "b"), num_samples=4, per_source=5, seed=3)
  b = audio_mix.AudioMixSource([stub(0, 12), stub(1, 2)], names=("a", "c"), num_samples=4, per_source=5, seed=3)
  assert [a.origin(i) for i in range(5)] == [b.origin(i) for i in range(5)]
  assert b.counts == (5, 2) and [b.origin(i) for i in range(5, 7)] in ([(1, 0), (1, 1)], [(1, 1), (1, 0)])
  # A smaller cap keeps a prefix of what a larger one keeps; another seed keeps others.
  large, small = mix_of(per_source=8, seed=3), mix_of(per_source=3, seed=3)
  assert [small.origin(i) for i in range(3)] == [large.origin(i) for i in range(3)]
  assert [small.origin(i) for i in range(3, 6)] == [large.origin(i) for i in range(5, 8)]
  other = mix_of(per_source=8, seed=4)
  assert [other.origin(i) for i in range(8)] != [large.origin(i) for i in range(8)]


def test_audio_is_cut_or_zero_padded_at_the_end():
  long, short, exact = np.arange(1, 13, dtype=np.float32), np.array([0.5, -0.5, 0.25], np.float64), np.ones(6)
  mix = audio_mix.AudioMixSource([[{"audio": long}], [{"audio": short}], [{"audio": exact}]],
                                 names=("long", "short", "exact"), num_samples=6)
  examples = all_examples(mix)
  for example in examples:
    assert example["audio"].dtype == np.float32 and example["audio"].shape == (6,)
    assert isinstance(example["source"], np.int32) and example["source"].shape == ()
  np.testing.assert_array_equal(examples[0]["audio"], [1, 2, 3, 4, 5, 6])
  np.testing.assert_array_equal(examples[1]["audio"], [0.5, -0.5, 0.25, 0, 0, 0])
  np.testing.assert_array_equal(examples[2]["audio"], np.ones(6))
  assert [int(e["source"]) for e in examples] == [0, 1, 2]
  examples[0]["audio"][:] = 0  # A copy: the sub-source's audio is not written through.
  assert long[0] == 1 and mix[0]["audio"][0] == 1


def test_negative_and_numpy_indices():
  mix = mix_of(per_source=4)
  assert_same_examples([mix[-1], mix[-len(mix)], mix[np.int64(2)]], [mix[len(mix) - 1], mix[0], mix[2]])


def test_same_arguments_same_examples_and_pickling():
  first, second = mix_of(per_source=4, seed=5), mix_of(per_source=4, seed=5)
  assert_same_examples(all_examples(first), all_examples(second))
  restored = pickle.loads(pickle.dumps(first))
  assert restored.counts == first.counts and restored.names == first.names and repr(restored) == repr(first)
  assert_same_examples(all_examples(restored), all_examples(first))
  assert repr(first) == ("AudioMixSource(names=('s0', 's1', 's2'), counts=(4, 4, 3), num_samples=10, "
                         "per_source=4, seed=5)")


def test_grain_batches_hold_every_source():
  mix = mix_of()
  batches = list(loader.note_batches(mix, batch_size=4, seed=0, num_epochs=1, shard_index=0, shard_count=1))
  assert len(batches) == len(mix) // 4
  assert all(b["audio"].shape == (4, NUM_SAMPLES) and b["source"].shape == (4,) for b in batches)
  sources_read = np.concatenate([b["source"] for b in batches])
  assert set(sources_read.tolist()) == {0, 1, 2}


@pytest.mark.parametrize("kwargs, message", [
    ({"sources": []}, "sources must be"),
    ({"sources": "abc"}, "sources must be"),
    ({"sources": [stub(0, 3), 5]}, r"sources\[1\] must be"),
    ({"sources": [stub(0, 3), []]}, r"sources\[1\] \('b'\) has no examples"),
    ({"names": ("a",)}, "names must name each of the 2 sources"),
    ({"names": ("a", "b", "c")}, "names must name each of the 2 sources"),
    ({"names": ("a", "a")}, "names has repeated entries"),
    ({"names": ("a", "")}, "names must be"),
    ({"names": "ab"}, "names must be"),
    ({"num_samples": 0}, "num_samples must be"),
    ({"num_samples": 2.5}, "num_samples must be"),
    ({"per_source": -1}, "per_source must be"),
    ({"per_source": 1.0}, "per_source must be"),
    ({"seed": -1}, "seed must be"),
])
def test_bad_arguments_name_themselves(kwargs, message):
  kwargs = {"sources": [stub(0, 3), stub(1, 4)], "names": ("a", "b"), "num_samples": 8, **kwargs}
  with pytest.raises(ValueError, match="^" + message):
    audio_mix.AudioMixSource(**kwargs)


def test_bad_indices_and_audio():
  mix = mix_of(per_source=2)
  for index in (len(mix), -len(mix) - 1, 10**9):
    with pytest.raises(IndexError, match=f"index {index} is out of range"):
      mix[index]
  for index in (1.0, "0", True, None, slice(0, 2)):
    with pytest.raises(TypeError, match="index must be an integer"):
      mix[index]
  with pytest.raises(IndexError):
    mix.origin(len(mix))
  stereo = audio_mix.AudioMixSource([[{"audio": np.zeros((2, 5), np.float32)}]], names=("x",), num_samples=5)
  with pytest.raises(ValueError, match=r"sources\[0\] \('x'\) example 0 has audio of shape \(2, 5\), not 1-D"):
    stereo[0]


# ----------------------------------------------------------------------------
# Registration: config checks and the builder.


def mix_config(mix=("gm_notes", "spoken_words", "sound_events"), mix_examples=(1000, 100, 100)):
  """The default pre-training config on an audio mix (its gm_notes selection small)."""
  config = default.get_config()
  config.data.source = "audio_mix"
  config.data.mix = mix
  config.data.mix_examples = mix_examples
  config.data.num_clips = (20, 4, 4)
  config.data.clip_seed = 0
  return config


def test_registered_as_unlabelled_audio():
  entry = sources.SOURCES["audio_mix"]
  assert entry.modality == "audio" and entry.labels == "none"
  assert job_lib.tasks_of("audio_mix") == ()


@pytest.mark.parametrize("mix", [("gm_notes", "spoken_words", "sound_events"), ("gm_notes",), ["spoken_words"],
                                 ("nsynth", "gm_notes")])
def test_valid_configs_pass(mix):
  config_lib.validate(mix_config(mix=mix))
  config_lib.validate(mix_config(mix=mix, mix_examples=(0, 0, 0)))


@pytest.mark.parametrize("mix", [("nothing",), ("audio_mix",), ("gm_notes", "emoji"), (), "gm_notes",
                                 ("gm_notes", "gm_notes"), ("gm_notes", 3), None])
def test_bad_mix_is_named(mix):
  with pytest.raises(ValueError, match=r"^config\.data\.mix (must|has repeated)"):
    config_lib.validate(mix_config(mix=mix))


@pytest.mark.parametrize("mix_examples", [(1, 2), (1, 2, 3, 4), (-1, 0, 0), (1.5, 0, 0), "abc", None, ()])
def test_bad_mix_examples_are_named(mix_examples):
  with pytest.raises(ValueError, match=r"^config\.data\.mix_examples must"):
    config_lib.validate(mix_config(mix_examples=mix_examples))


def test_missing_fields_are_named():
  config = default.get_config()
  config.data.source = "audio_mix"
  with pytest.raises(ValueError, match=r"^config\.data\.mix is missing"):
    config_lib.validate(config)
  config.data.mix = ("gm_notes",)
  with pytest.raises(ValueError, match=r"^config\.data\.mix_examples is missing"):
    config_lib.validate(config)
  config.data.mix_examples = (0, 0, 0)
  config_lib.validate(config)  # gm_notes alone reads no num_clips or clip_seed.
  config.data.mix = ("gm_notes", "sound_events")
  with pytest.raises(ValueError, match=r"^config\.data\.num_clips is missing"):
    config_lib.validate(config)


def test_the_mixed_sources_fields_are_checked():
  config = mix_config()
  config.data.num_clips = (0, 4, 4)
  with pytest.raises(ValueError, match=r"^config\.data\.num_clips must"):
    config_lib.validate(config)
  config = mix_config(mix=("gm_notes",))
  config.data.velocities = (0,)
  with pytest.raises(ValueError, match=r"^config\.data\.velocities must"):
    config_lib.validate(config)
  config.data.num_clips = (0, 4, 4)  # Not read without sound_events.
  config.data.velocities = (100,)
  config_lib.validate(config)


def test_the_builder_mixes_the_configs_sources(tmp_path, monkeypatch):
  monkeypatch.setenv("SHUFFLE_LEARN_CACHE", str(tmp_path))  # gm_notes' index of this selection.
  config = mix_config(mix=("gm_notes",), mix_examples=(40, 5, 0))
  config.seed = 3
  config.data.programs = (0, 40, 56)
  config.data.pitches = tuple(range(48, 73, 2))
  config.features.seconds = 0.3  # 4,800 samples.
  config_lib.validate(config)
  for split, cap in zip(("train", "valid", "test"), (40, 5, None)):
    mix = sources.make_source(config, split)
    notes = gm_notes.GMNotesSource(split, soundfonts="TimGM6mb", programs=config.data.programs,
                                   pitches=config.data.pitches, velocities=tuple(config.data.velocities),
                                   clip_seconds=0.3)
    assert isinstance(mix, audio_mix.AudioMixSource)
    assert mix.names == ("gm_notes",) and mix.num_samples == 4800 and mix.seed == 3
    assert mix.counts == (min(cap or len(notes), len(notes)),) and len(mix) == mix.counts[0]
    origins = expected_origins((len(notes),), cap, 3)
    for i in (0, len(mix) - 1):
      example = mix[i]
      assert example["source"] == 0 and example["audio"].shape == (4800,)
      np.testing.assert_array_equal(example["audio"], fitted(notes[origins[i][1]]["audio"], 4800))
      assert np.abs(example["audio"]).max() > 0  # A note, not padding.
  assert len(sources.make_source(config, "train")) == 40


@pytest.mark.slow
def test_the_default_mix_builds(tmp_path, monkeypatch):
  """gm_notes, spoken_words and sound_events, each built through its own builder (about 15 s, a fresh cache)."""
  monkeypatch.setenv("SHUFFLE_LEARN_CACHE", str(tmp_path))
  config = mix_config(mix_examples=(50, 10, 0))
  config.data.programs = (0, 40, 56)
  config_lib.validate(config)
  for split in ("train", "test"):
    mix = sources.make_source(config, split)
    subs = [sources.SOURCES[name].build(config, split) for name in mix.names]
    cap = 50 if split == "train" else None
    assert mix.counts == tuple(min(cap or len(s), len(s)) for s in subs)
    assert mix.num_samples == 16000 and len(mix) == sum(mix.counts)
    starts = np.cumsum((0,) + mix.counts[:-1])
    for j, sub in enumerate(subs):
      example = mix[int(starts[j])]
      assert example["source"] == j and example["audio"].shape == (16000,)
      np.testing.assert_array_equal(example["audio"], fitted(sub[mix.origin(int(starts[j]))[1]]["audio"], 16000))
