"""The HEAR 2021 common API for this project's audio models (hearbenchmark.com/hear-api.html).

  from shuffle_learn import hear
  model = hear.load_model()          # the shipped model; or a training workdir or exported model
  scene = hear.get_scene_embeddings(audio, model)                   # (n_sounds, d) float32
  frames, timestamps_ms = hear.get_timestamp_embeddings(audio, model)  # (n_sounds, T, d), (n_sounds, T)

``audio`` is ``(n_sounds, n_samples)`` at 16 kHz: NumPy, JAX, or a torch or
TensorFlow tensor (read through ``.numpy()``, neither is imported here); the
outputs are NumPy. Timestamp embeddings are `embed.embed_frames`'s: windows
of the model's clip centred every ``model.hop_seconds`` (50 ms) from 0 ms,
``T = ceil(n_samples / 800)``, the last within one hop of the end; the
scene embedding is their mean (`embed.embed_clip`).

hear-validator and hear-eval-kit take only torch or TensorFlow models:
`shuffle_learn.hear_tf` is this API with a ``tf.Module`` model and tensor
outputs, for them.

References:
  Turian et al. HEAR: Holistic Evaluation of Audio Representations. PMLR 176, 2022.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar

import numpy as np

from shuffle_learn import embed
from shuffle_learn.data.schema import SAMPLE_RATE

MAX_HOP_SECONDS = 0.05  # HEAR's largest hop between timestamps.


@dataclasses.dataclass
class Model:
  """A loaded model and what HEAR asks of it.

  Attributes:
    embedder: `embed.load_embedder`'s function.
    scene_embedding_size: ``d`` of `get_scene_embeddings`.
    timestamp_embedding_size: ``d`` of `get_timestamp_embeddings`.
    hop_seconds: between timestamps, in (0, 0.05].
    batch_size: windows per call of the model.
  """
  embedder: Callable[[np.ndarray], np.ndarray]
  scene_embedding_size: int
  timestamp_embedding_size: int
  hop_seconds: float = embed.HOP_SECONDS
  batch_size: int = embed.BATCH_SIZE
  sample_rate: ClassVar[int] = SAMPLE_RATE

  def __post_init__(self):
    if not 0 < self.hop_seconds <= MAX_HOP_SECONDS:
      raise ValueError(f"hop_seconds must be in (0, {MAX_HOP_SECONDS}] for HEAR, got {self.hop_seconds!r}.")


def load_model(model_file_path: str = "") -> Model:
  """The model of a training workdir or an exported model directory; ``""`` for the shipped model.

  Raises:
    FileNotFoundError: no checkpoint there, or no shipped model.
  """
  embedder = embed.load_embedder(model_file_path or None)
  size = int(embedder(np.zeros((1, embedder.num_samples), np.float32)).shape[1])
  return Model(embedder, size, size)


def as_audio(audio: Any) -> np.ndarray:
  """``(n_sounds, n_samples)`` float32 NumPy from NumPy, JAX, torch or TensorFlow.

  Raises:
    ValueError: not 2-D, no samples, or NaN or infinite samples.
  """
  if hasattr(audio, "detach"):  # torch, maybe on an accelerator.
    audio = audio.detach().cpu().numpy()
  elif hasattr(audio, "numpy"):  # TensorFlow eager tensors.
    audio = audio.numpy()
  audio = np.asarray(audio, np.float32)
  if audio.ndim != 2 or audio.shape[1] == 0:
    raise ValueError(f"audio must be (n_sounds, n_samples) with n_samples > 0, got shape {audio.shape}.")
  if not np.all(np.isfinite(audio)):
    raise ValueError("audio contains NaN or infinite samples.")
  return audio


def get_timestamp_embeddings(audio: Any, model: Model) -> tuple[np.ndarray, np.ndarray]:
  """Embeddings every ``model.hop_seconds`` and their times.

  Args:
    audio: ``(n_sounds, n_samples)`` at 16 kHz.
    model: from `load_model`.

  Returns:
    ``(embeddings (n_sounds, T, timestamp_embedding_size) float32,
    timestamps_ms (n_sounds, T) float64)``: window centres ``0, hop, 2 hop,
    ...`` below ``n_samples`` (`embed.embed_frames`).
  """
  frames = [embed.embed_frames(model.embedder, sound, model.hop_seconds, model.batch_size)
            for sound in as_audio(audio)]
  return np.stack([e for e, _ in frames]), np.stack([t for _, t in frames])


def get_scene_embeddings(audio: Any, model: Model) -> np.ndarray:
  """One embedding per sound, ``(n_sounds, scene_embedding_size)`` float32: the mean of its timestamp embeddings."""
  return np.stack([embed.embed_clip(model.embedder, sound, model.hop_seconds, model.batch_size)
                   for sound in as_audio(audio)])
