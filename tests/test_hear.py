"""Tests of `shuffle_learn.hear`: hear-validator's rules, checked here without torch.

hear-validator (`make hear`) passes 2 sounds of 1.07, 1.98 and 4.0 s to
`get_timestamp_embeddings` and 4 of 2.74 s to `get_scene_embeddings`, as
``int(seconds * sample_rate)`` samples of white noise in [-1, 1), and checks
the shapes, float32, timestamps at regular intervals (to 1 ms) of at most
50 ms, the last within two hops of the end and not past it.
"""

import jax.numpy as jnp
import numpy as np
import pytest

from shuffle_learn import checkpoints
from shuffle_learn import hear
from shuffle_learn import pretrained

LENGTHS = (1.07, 1.98, 2.74, 4.0)


@pytest.fixture(scope="module")
def exported(tiny_checkpoint, tmp_path_factory):
  """A tiny run of 2 steps, exported as the shipped model is."""
  out = str(tmp_path_factory.mktemp("exported"))
  checkpoints.export(tiny_checkpoint, out)
  return out


@pytest.fixture(scope="module")
def model(exported):
  return hear.load_model(exported)


def noise(num_sounds, seconds, seed=0):
  return np.random.default_rng(seed).uniform(-1, 1, (num_sounds, int(seconds * 16000))).astype(np.float32)


def check_timestamp_rules(embeddings, timestamps, num_sounds, seconds, size):
  """hear-validator's checks of get_timestamp_embeddings, and 50 ms as the hop."""
  assert embeddings.dtype == np.float32 and embeddings.ndim == 3 and timestamps.ndim == 2
  assert embeddings.shape[0] == num_sounds and embeddings.shape[:2] == timestamps.shape
  assert embeddings.shape[2] == size
  differences = np.diff(timestamps, axis=1)
  assert np.max(differences) <= 50.0 and np.max(np.abs(differences - differences.mean())) <= 1e-9
  assert np.all(timestamps[:, 0] == 0.0)
  end = 1000 * seconds
  assert end - differences.mean() <= timestamps.max() <= end  # Within one hop of the end (the rule says two).
  assert np.all(np.isfinite(embeddings))


@pytest.mark.parametrize("seconds", LENGTHS)
def test_timestamp_and_scene_embeddings_follow_the_rules(model, seconds):
  audio = noise(3, seconds)
  embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
  check_timestamp_rules(embeddings, timestamps, 3, seconds, model.timestamp_embedding_size)
  assert timestamps.shape[1] == -(-audio.shape[1] // 800)
  scene = hear.get_scene_embeddings(audio, model)
  assert scene.dtype == np.float32 and scene.shape == (3, model.scene_embedding_size)
  np.testing.assert_allclose(scene, embeddings.mean(axis=1), rtol=1e-6, atol=1e-7)
  assert not np.allclose(scene[0], scene[1])  # Each sound its own.
  # One sound alone gives its row of the batch.
  np.testing.assert_allclose(hear.get_timestamp_embeddings(audio[1:2], model)[0][0], embeddings[1],
                             rtol=1e-5, atol=1e-6)


def test_model_attributes(model):
  assert model.sample_rate == 16000
  assert model.scene_embedding_size == model.timestamp_embedding_size == 128  # The tiny CFN's conv_embed.
  assert isinstance(model.scene_embedding_size, int) and isinstance(model.timestamp_embedding_size, int)
  assert model.hop_seconds == 0.05
  with pytest.raises(ValueError, match="hop_seconds"):
    hear.Model(model.embedder, 128, 128, hop_seconds=0.06)


def test_outputs_are_deterministic_and_any_array_type_is_accepted(model):
  audio = noise(2, 1.07, seed=1)
  embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)

  class TorchLike:  # What the validator passes: a torch tensor, maybe on a GPU.
    def detach(self):
      return self

    def cpu(self):
      return self

    def numpy(self):
      return audio

  class TensorFlowLike:
    def numpy(self):
      return audio

  for same in (audio, jnp.asarray(audio), audio.tolist(), TorchLike(), TensorFlowLike(), audio.astype(np.float64)):
    again, again_timestamps = hear.get_timestamp_embeddings(same, model)
    np.testing.assert_array_equal(again, embeddings)
    np.testing.assert_array_equal(again_timestamps, timestamps)
  np.testing.assert_array_equal(hear.get_scene_embeddings(TorchLike(), model), hear.get_scene_embeddings(audio, model))


def test_bad_audio_raises(model):
  for audio in (np.zeros(16000, np.float32), np.zeros((1, 2, 16000), np.float32), np.zeros((2, 0), np.float32)):
    for function in (hear.get_timestamp_embeddings, hear.get_scene_embeddings):
      with pytest.raises(ValueError, match=r"\(n_sounds, n_samples\)"):
        function(audio, model)
  audio = noise(2, 1.0)
  audio[1, 100] = np.nan
  with pytest.raises(ValueError, match="NaN"):
    hear.get_scene_embeddings(audio, model)


def test_an_empty_path_is_the_shipped_model(exported, model, monkeypatch):
  monkeypatch.setattr(pretrained, "DIRECTORY", exported)
  shipped = hear.load_model("")
  audio = noise(1, 0.3)
  np.testing.assert_array_equal(hear.get_scene_embeddings(audio, shipped), hear.get_scene_embeddings(audio, model))


def test_the_tensorflow_module_for_the_validator(exported, model):
  tf = pytest.importorskip("tensorflow")
  from shuffle_learn import hear_tf  # pylint: disable=g-import-not-at-top
  wrapped = hear_tf.load_model(exported)
  assert isinstance(wrapped, tf.Module)
  assert (wrapped.sample_rate, wrapped.scene_embedding_size, wrapped.timestamp_embedding_size) == (16000, 128, 128)
  audio = tf.random.uniform((2, int(1.07 * wrapped.sample_rate))) * 2 - 1.0  # As the validator makes it.
  embeddings, timestamps = hear_tf.get_timestamp_embeddings(audio, wrapped)
  assert embeddings.dtype == tf.float32
  check_timestamp_rules(embeddings.numpy(), timestamps.numpy(), 2, 1.07, 128)
  np.testing.assert_array_equal(embeddings.numpy(), hear.get_timestamp_embeddings(audio.numpy(), model)[0])
  scene = hear_tf.get_scene_embeddings(audio, wrapped)
  assert scene.dtype == tf.float32 and scene.shape == (2, 128)
