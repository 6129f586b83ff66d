"""`shuffle_learn.hear` for hear-validator and hear-eval-kit, which take torch or TensorFlow models only.

  hear-validator shuffle_learn.hear_tf --model DIR   # an exported model or a training workdir
  hear-validator shuffle_learn.hear_tf               # the shipped model

The same functions and numbers as `shuffle_learn.hear`; the model is a
``tf.Module`` and the outputs are ``tf.Tensor``s (the validator and the kit
call ``.numpy()`` on them). The network still runs in JAX; TensorFlow only
carries the arrays in and out.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from shuffle_learn import hear


class Model(tf.Module):
  """A `hear.Model` in a ``tf.Module``, with its HEAR attributes."""

  def __init__(self, model: hear.Model):
    super().__init__(name="shuffle_learn_hear")
    self.model = model
    self.sample_rate = model.sample_rate
    self.scene_embedding_size = model.scene_embedding_size
    self.timestamp_embedding_size = model.timestamp_embedding_size


def load_model(model_file_path: str = "") -> Model:
  """`hear.load_model` in a ``tf.Module``."""
  return Model(hear.load_model(model_file_path))


def get_timestamp_embeddings(audio: Any, model: Model) -> tuple[tf.Tensor, tf.Tensor]:
  """`hear.get_timestamp_embeddings` as tensors: float32 ``(n_sounds, T, d)`` and float64 ``(n_sounds, T)``."""
  embeddings, timestamps = hear.get_timestamp_embeddings(audio, model.model)
  return tf.convert_to_tensor(embeddings), tf.convert_to_tensor(timestamps)


def get_scene_embeddings(audio: Any, model: Model) -> tf.Tensor:
  """`hear.get_scene_embeddings` as a float32 tensor ``(n_sounds, d)``."""
  return tf.convert_to_tensor(hear.get_scene_embeddings(audio, model.model))
