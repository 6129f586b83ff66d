"""NSynth through TFDS (with `tfds.testing.mock_data`, no download) and the grain loader."""

import numpy as np
import pytest

from shuffle_learn.data import loader
from shuffle_learn.data import nsynth
from shuffle_learn.data import schema

tfds = pytest.importorskip("tensorflow_datasets")


class _Notes:
  """A small in-memory source in the common schema; example i has pitch i."""

  def __init__(self, n):
    self.n = n

  def __len__(self):
    return self.n

  def __getitem__(self, index):
    rng = np.random.default_rng(index)
    return {"audio": rng.standard_normal(schema.NUM_SAMPLES).astype(np.float32) * 0.1,
            "pitch": np.int32(index), "velocity": np.int32(100), "instrument/label": np.int32(index % 3),
            "instrument/family": np.int32(index % 11), "instrument/source": np.int32(0)}


@pytest.mark.parametrize("config", nsynth.CONFIGS)
@pytest.mark.parametrize("split", nsynth.SPLITS)
def test_nsynth_mock_examples_have_the_common_schema(config, split):
  with tfds.testing.mock_data(num_examples=4):
    source = nsynth.NSynthSource(split, config=config)
    assert len(source) == 4
    note = source[3]
  assert set(note) == {"audio"} | set(schema.NOTE_LABELS)
  assert note["audio"].shape == (64000,) and note["audio"].dtype == np.float32
  for key in schema.NOTE_LABELS:
    assert note[key].dtype == np.int32
  assert 0 <= note["instrument/family"] < len(schema.FAMILIES)
  assert 0 <= note["pitch"] < 128


@pytest.mark.parametrize("config", nsynth.CONFIGS)
def test_nsynth_is_a_note_source_with_the_dataset_instruments(config):
  with tfds.testing.mock_data(num_examples=4):
    source = nsynth.NSynthSource("valid", config=config)
  assert isinstance(source, schema.NoteSource)
  assert source.num_instruments == 1006  # NSynth's instrument/label classes, from the TFDS dataset info.
  assert source.num_families == len(schema.FAMILIES) == 11


def test_nsynth_mock_batches_through_grain():
  with tfds.testing.mock_data(num_examples=10):
    batches = loader.note_batches(nsynth.NSynthSource("train"), batch_size=4, seed=0, num_epochs=1)
    shapes = [batch["audio"].shape for batch in batches]
  assert shapes == [(4, 64000), (4, 64000)]


def test_nsynth_rejects_bad_arguments():
  with pytest.raises(ValueError, match="split must be one of"):
    nsynth.NSynthSource("training")
  with pytest.raises(ValueError, match="config must be one of"):
    nsynth.NSynthSource("train", config="gansynth")


def test_to_note_rejects_short_or_corrupt_audio():
  good = _Notes(1)[0]
  with pytest.raises(ValueError, match="shape"):
    nsynth.to_note({**good, "audio": good["audio"][:16000]})
  with pytest.raises(ValueError, match="NaN"):
    nsynth.to_note({**good, "audio": np.full(64000, np.nan, np.float32)})
  with pytest.raises(ValueError, match="lacks"):
    nsynth.to_note({"audio": good["audio"]})
  nested = {"audio": good["audio"], "pitch": 60, "velocity": 100,
            "instrument": {"label": 5, "family": 2, "source": 1}}
  assert nsynth.to_note(nested)["instrument/family"] == 2


def test_one_epoch_reads_every_example_once_in_a_seeded_order():
  pitches = lambda seed: np.concatenate(
      [b["pitch"] for b in loader.note_batches(_Notes(12), batch_size=4, seed=seed, num_epochs=1)])
  first = pitches(0)
  assert sorted(first) == list(range(12))
  assert not np.array_equal(first, np.arange(12))
  np.testing.assert_array_equal(first, pitches(0))
  assert not np.array_equal(first, pitches(1))


def test_epochs_are_shuffled_differently():
  batches = list(loader.note_batches(_Notes(8), batch_size=8, seed=0, num_epochs=2))
  assert sorted(batches[0]["pitch"]) == sorted(batches[1]["pitch"]) == list(range(8))
  assert not np.array_equal(batches[0]["pitch"], batches[1]["pitch"])


def test_hosts_read_their_rows_of_the_one_host_batches():
  """3 hosts reading 2 rows each together read the one-host batches of 6, and their positions are its."""
  one = lambda **kw: iter(loader.note_batches(_Notes(14), batch_size=6, seed=0, shard_index=0, shard_count=1, **kw))
  host = lambda i, **kw: iter(loader.note_batches(_Notes(14), batch_size=2, seed=0, shard_index=i, shard_count=3,
                                                  **kw))
  whole = [b["pitch"] for b in one(num_epochs=1)]
  hosts = [[b["pitch"] for b in host(i, num_epochs=1)] for i in range(3)]
  assert len(whole) == 2 and [len(h) for h in hosts] == [2, 2, 2]  # 14 notes: 2 batches of 6, 2 notes dropped.
  for g, batch in enumerate(whole):
    np.testing.assert_array_equal(np.concatenate([h[g] for h in hosts]), batch)
  iterator, resumed, reference = host(1), one(), one()
  next(iterator), next(reference)
  resumed.set_state(iterator.get_state())
  np.testing.assert_array_equal(next(resumed)["pitch"], next(reference)["pitch"])


def test_restored_iterator_state_resumes_exactly():
  make = lambda: iter(loader.note_batches(_Notes(20), batch_size=3, seed=5))
  uninterrupted = [next(it)["pitch"] for it in [make()] for _ in range(8)]
  it = make()
  for _ in range(3):
    next(it)
  state = it.get_state()
  resumed = make()
  resumed.set_state(state)
  np.testing.assert_array_equal(np.stack([next(resumed)["pitch"] for _ in range(5)]), np.stack(uninterrupted[3:]))


def test_num_examples_fixes_a_seeded_subset_for_every_epoch():
  read = lambda seed, shuffle=True: [set(b["pitch"]) for b in loader.note_batches(
      _Notes(20), batch_size=5, seed=seed, num_epochs=3, num_examples=5, shuffle=shuffle)]
  epochs = read(0)
  assert len(epochs) == 3 and epochs[0] == epochs[1] == epochs[2]  # The same 5 notes each epoch.
  assert epochs[0] != set(range(5))  # A shuffled subset, not the first five.
  assert read(0) == epochs and read(1)[0] != epochs[0]
  assert read(0, shuffle=False)[0] == set(range(5))
  with pytest.raises(ValueError, match="num_examples"):
    loader.note_batches(_Notes(4), batch_size=1, seed=0, num_examples=0)


def test_loader_rejects_bad_arguments():
  with pytest.raises(ValueError, match="batch_size"):
    loader.note_batches(_Notes(4), batch_size=0, seed=0)
  with pytest.raises(ValueError, match="batch_size 8 exceeds"):
    loader.note_batches(_Notes(4), batch_size=8, seed=0)
  with pytest.raises(ValueError, match="shard_index"):
    loader.note_batches(_Notes(4), batch_size=1, seed=0, shard_index=2, shard_count=2)
  with pytest.raises(ValueError, match="drop_remainder"):
    loader.note_batches(_Notes(4), batch_size=1, seed=0, drop_remainder=False, shard_index=0, shard_count=2)
  with pytest.raises(ValueError, match="no examples"):
    loader.note_batches(_Notes(0), batch_size=1, seed=0)
  with pytest.raises(ValueError, match="num_epochs"):
    loader.note_batches(_Notes(4), batch_size=1, seed=0, num_epochs=0)


def test_worker_processes_need_parsed_flags_and_deliver_the_same_batches():
  from absl import flags  # pylint: disable=g-import-not-at-top
  if not flags.FLAGS.is_parsed():
    with pytest.raises(ValueError, match="needs absl flags parsed"):
      loader.note_batches(_Notes(16), batch_size=4, seed=3, worker_count=2)
    flags.FLAGS.mark_as_parsed()  # As a command-line program (shuffle_learn.cli) has them.
  # _Notes is defined at module level, so it pickles into grain's workers.
  read = lambda workers: [b["pitch"] for b in loader.note_batches(
      _Notes(16), batch_size=4, seed=3, num_epochs=1, worker_count=workers)]
  np.testing.assert_array_equal(np.stack(read(2)), np.stack(read(0)))
