"""Tests of the synthetic spoken-word clips (`spoken_words`): espeak-ng through espeakng-loader, soxr.

A small selection (3 words, 2-3 voices per split, 2 rates, 1 pitch) keeps the
rendering to a fraction of a second per source.
"""

import hashlib
import itertools
import os
import pickle
import sys

import numpy as np
import pytest

from shuffle_learn.data import images
from shuffle_learn.data import loader
from shuffle_learn.data import spoken_words

WORDS = ("yes", "no", "stop")
# Voices whose split (by images.split_of) is known; klatt3 draws noise from the C library's rand().
SPLIT_VOICES = {
    "train": ("en-us+m3", "en+klatt", "en-us+klatt3"),
    "valid": ("en-us+m1", "en+f1"),
    "test": ("en-us+m8", "en-gb-scotland+klatt3"),
}
VOICES = SPLIT_VOICES["train"] + SPLIT_VOICES["valid"] + SPLIT_VOICES["test"]
SMALL = dict(words=WORDS, voices=VOICES, rates=(150, 200), pitches=(50,), cache_dir=False)


@pytest.fixture(scope="module")
def splits():
  return {split: spoken_words.SpokenWordsSource(split, **SMALL) for split in spoken_words.SPLITS}


def all_audio(source) -> np.ndarray:
  return np.stack([source[i]["audio"] for i in range(len(source))])


def digest(source) -> str:
  return hashlib.sha256(all_audio(source).tobytes()).hexdigest()


# ----------------------------------------------------------------------------
# Examples.


def test_examples_are_centred_peak_normalised_clips(splits):
  source = splits["train"]
  assert len(source) == 3 * 3 * 2 and source.num_classes == 3 and source.class_names == WORDS
  assert source.voice_names == VOICES and source.num_speakers == len(VOICES) and source.sample_rate == 16000
  for i in range(len(source)):
    example = source[i]
    assert set(example) == {"audio", "label", "speaker"}
    audio = example["audio"]
    assert audio.dtype == np.float32 and audio.shape == (16000,)
    assert isinstance(example["label"], np.int32) and isinstance(example["speaker"], np.int32)
    assert np.max(np.abs(audio)) == 1.0  # Peak-normalised, not cropped.
    loud = np.flatnonzero(audio)
    before, after = loud[0], len(audio) - 1 - loud[-1]
    assert after - before in (0, 1), (i, before, after)  # Centred: the padding split evenly.
    assert 0.1 < (loud[-1] - loud[0]) / 16000 < 0.9  # A word, not silence or noise.
  assert source.summary["cropped"] == 0 and source.summary["examples"] == len(source)
  with pytest.raises(IndexError):
    source[len(source)]
  with pytest.raises(TypeError):
    source[1.0]


def test_labels_and_speakers_name_the_rendered_clip(splits):
  for split, source in splits.items():
    rows = [source.clip(i) for i in range(len(source))]
    assert sorted(rows) == sorted(itertools.product(WORDS, SPLIT_VOICES[split], (150, 200), (50,)))
    for i, (word, voice, _, _) in enumerate(rows):
      example = source[i]
      assert source.word(i) == word == source.class_names[example["label"]]
      assert source.voice_names[example["speaker"]] == voice


def test_splits_are_disjoint_by_voice_and_cover_every_voice(splits):
  seen = {split: {source.voice_names[source[i]["speaker"]] for i in range(len(source))}
          for split, source in splits.items()}
  for split, voices in seen.items():
    assert voices == set(SPLIT_VOICES[split]) == set(splits[split].split_voices)
    assert all(images.split_of(v) == split for v in voices)
  assert not (seen["train"] & seen["valid"] or seen["train"] & seen["test"] or seen["valid"] & seen["test"])
  assert set().union(*seen.values()) == set(VOICES)
  # The default voices leave no split empty.
  default = spoken_words.voice_splits(spoken_words.VOICES)
  assert all(default[s] for s in spoken_words.SPLITS)
  assert sorted(sum(default.values(), ())) == sorted(spoken_words.VOICES)


def test_different_words_and_voices_give_different_audio(splits):
  source = splits["train"]
  audio = all_audio(source)
  index = {source.clip(i): i for i in range(len(source))}
  for voice in SPLIT_VOICES["train"]:
    for a, b in itertools.combinations(WORDS, 2):
      x, y = audio[index[(a, voice, 150, 50)]], audio[index[(b, voice, 150, 50)]]
      assert np.mean((x - y) ** 2) > 0.1 * np.mean(x**2), (voice, a, b)
  assert len({hashlib.sha256(clip.tobytes()).hexdigest() for clip in audio}) == len(source)


# ----------------------------------------------------------------------------
# Determinism, cache, pickling, batches.


def test_rendering_is_deterministic_per_clip(splits):
  again = spoken_words.SpokenWordsSource("test", **SMALL)
  assert digest(again) == digest(splits["test"])
  # The same clip in another selection, rendered after other clips, in another order: the same bytes.
  other = spoken_words.SpokenWordsSource(
      "test", words=("go", "stop"), voices=("en-us+m3",) + SPLIT_VOICES["test"][::-1], rates=(200, 150),
      pitches=(50, 65), cache_dir=False)
  want = {splits["test"].clip(i): splits["test"][i]["audio"] for i in range(len(splits["test"]))}
  shared = [i for i in range(len(other)) if other.clip(i) in want]
  assert len(shared) == 4
  for i in shared:
    assert other[i]["audio"].tobytes() == want[other.clip(i)].tobytes()
  clips = [("no", "en-us+klatt3", 200, 50), ("yes", "en+klatt", 150, 50), ("no", "en-us+klatt3", 200, 50)]
  audio, _, _ = spoken_words.render(clips, workers=2)
  assert audio[0].tobytes() == audio[2].tobytes()


def test_cache_round_trip_and_damaged_file(tmp_path, monkeypatch, splits):
  monkeypatch.setenv("SHUFFLE_LEARN_CACHE", str(tmp_path))
  assert spoken_words.default_cache_dir() == os.path.join(str(tmp_path), "spoken_words")
  args = dict(SMALL, cache_dir=None)  # None: the default folder.
  first = spoken_words.SpokenWordsSource("valid", **args)
  files = os.listdir(tmp_path / "spoken_words")
  assert len(files) == 1 and files[0].startswith("valid-") and files[0].endswith(".npz")
  assert not first.summary["from_cache"]
  second = spoken_words.SpokenWordsSource("valid", **args)
  assert second.summary["from_cache"] and digest(second) == digest(first) == digest(splits["valid"])
  (tmp_path / "spoken_words" / files[0]).write_bytes(b"not an npz")
  third = spoken_words.SpokenWordsSource("valid", **args)
  assert not third.summary["from_cache"] and digest(third) == digest(first)
  assert spoken_words.SpokenWordsSource("valid", **args).summary["from_cache"]  # Rewritten.


def test_pickling(tmp_path, splits):
  source = splits["valid"]
  copy = pickle.loads(pickle.dumps(source))
  assert digest(copy) == digest(source) and copy.voice_names == source.voice_names
  cached = spoken_words.SpokenWordsSource("valid", **dict(SMALL, cache_dir=tmp_path))
  payload = pickle.dumps(cached)
  assert len(payload) < 20_000  # The audio stays in the cache file.
  assert digest(pickle.loads(payload)) == digest(source)


def test_grain_batches(splits):
  source = splits["train"]
  batches = list(loader.note_batches(source, batch_size=4, seed=0, num_epochs=1, shard_index=0, shard_count=1))
  assert len(batches) == len(source) // 4
  for batch in batches:
    assert batch["audio"].shape == (4, 16000) and batch["audio"].dtype == np.float32
    assert batch["label"].dtype == np.int32 and batch["speaker"].dtype == np.int32
  labels = np.concatenate([b["label"] for b in batches])
  assert set(labels.tolist()) <= set(range(len(WORDS))) and len(set(labels.tolist())) > 1


def test_short_window_keeps_the_centre_of_the_word(splits):
  short = spoken_words.SpokenWordsSource(
      "test", words=("stop",), voices=SPLIT_VOICES["test"], rates=(150,), pitches=(50,), seconds=0.25,
      cache_dir=False)
  assert short.summary["cropped"] == 2
  full = {splits["test"].clip(i): splits["test"][i]["audio"] for i in range(len(splits["test"]))}
  for i in range(len(short)):
    cropped = short[i]["audio"]
    assert cropped.shape == (4000,) and np.max(np.abs(cropped)) <= 1.0
    whole = full[short.clip(i)]  # The same word, centred in 1 s.
    loud = np.flatnonzero(whole)
    start = loud[0] + (loud[-1] + 1 - loud[0] - 4000) // 2
    assert cropped.tobytes() == whole[start:start + 4000].tobytes()


# ----------------------------------------------------------------------------
# Errors.


@pytest.mark.parametrize("module, package", [("espeakng_loader", "espeakng-loader"), ("soxr", "soxr")])
def test_missing_backend_names_the_pip_package(monkeypatch, module, package):
  monkeypatch.setitem(sys.modules, module, None)  # Makes `import module` raise ImportError.
  with pytest.raises(ImportError, match=f"'{package}'.*pip install espeakng-loader soxr"):
    spoken_words.SpokenWordsSource("train", **SMALL)


@pytest.mark.parametrize("name, value", [
    ("split", "dev"),
    ("words", ()),
    ("words", "yes"),
    ("words", ("yes", "yes")),
    ("words", ("yes", " no")),
    ("voices", ("en-us+m3", "en-us+m3")),
    ("voices", ("en-us+nosuch",)),
    ("voices", ("en-gb+m1",)),  # en-gb is a language code, not a voice name: espeak-ng would not find it.
    ("voices", "en-us+m3"),
    ("rates", (50,)),
    ("rates", (150, 150)),
    ("pitches", (101,)),
    ("pitches", ()),
    ("seconds", 0),
    ("seconds", 1e-5),
    ("cache_dir", 3),
])
def test_bad_arguments(name, value):
  with pytest.raises(ValueError, match=f"^{name}"):
    spoken_words.SpokenWordsSource(**{"split": "train", **SMALL, name: value})


def test_a_split_without_voices_is_an_error():
  with pytest.raises(ValueError, match="^voices: none of the 3 voices falls in split 'test'"):
    spoken_words.SpokenWordsSource("test", **dict(SMALL, voices=SPLIT_VOICES["train"]))
