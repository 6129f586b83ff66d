"""Frozen embeddings of examples (notes, images, clips), computed once and cached.

Embedders map a batch of raw inputs (for audio, the clip the pre-training
config's front end uses) to embeddings. One vector per example, for the
probes of `shuffle_learn.evaluators.probes`:

- `cfn_embedder`: the pooled convolutional features (`CFN.conv_embed`, the
  default), the fc6 features (`CFN.fc6_embed`) or the fc7 embedding
  (`CFN.embed`) of the unshuffled patches (the identity permutation), from a
  checkpoint's parameters or, for the ``random_embedding`` baseline, from the
  untrained initialisation;
- `logmel_embedder`: the ``logmel_baseline``: the mean and the standard
  deviation over time of every log-mel band (2 x 64 numbers).

One vector per frame, ``(batch, frames, d)``, for the frame-level probe of
sound event detection (`shuffle_learn.evaluators.sed`):

- `frame_embedder`: `CFN.frame_embed` of the unshuffled patches: every
  patch's last feature map averaged over frequency, the columns' frames
  concatenated along time and the rows' channels along features;
- `logmel_frame_embedder`: the log-mel frames themselves (64 bands by
  default), or every band's mean and std over windows of frames, the
  frame-level counterpart of `logmel_embedder`.

`sampling_embedder` gives either of a contrastive peer network (its frame
embeddings ``h``, or their mean over frames).

`embed_examples` reads a source through grain in a fixed order and returns the
embeddings with every label of the examples; `cached` keeps them in an ``.npz``
file so that a second evaluation of the same checkpoint reads them back.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from shuffle_learn.data import frontend
from shuffle_learn.data import loader
from shuffle_learn.models import cfn


# The CFN layers an embedding can be read from (`cfn_embedder`'s ``layer``).
LAYERS = {"conv": cfn.CFN.conv_embed, "fc6": cfn.CFN.fc6_embed, "fc7": cfn.CFN.embed}


def cfn_embedder(model, params, input_, layer: str = "conv") -> Callable[[np.ndarray], np.ndarray]:
  """Raw inputs ``(batch, ...)`` -> the embedding ``(batch, d)`` of a CFN, of the unshuffled patches.

  Args:
    model: the CFN.
    params: its variables.
    input_: the pretext input that cuts raw inputs into the model's patches
      (`shuffle_learn.pretext.INPUTS`); used without augmentation.
    layer: ``"conv"`` (`CFN.conv_embed`), ``"fc6"`` (`CFN.fc6_embed`) or ``"fc7"`` (`CFN.embed`).
  """
  if layer not in LAYERS:
    raise ValueError(f"layer must be one of {tuple(LAYERS)}, got {layer!r}.")

  @jax.jit
  def embed(raw):
    return model.apply(params, input_(raw), method=LAYERS[layer])

  return lambda raw: np.asarray(embed(jnp.asarray(input_.host({input_.raw_key: raw}))))


def logmel_embedder(num_samples: int, num_mel_bins: int = 64) -> Callable[[np.ndarray], np.ndarray]:
  """Audio -> per-band mean and std over time of the log-mel, ``(batch, 2 * num_mel_bins)``."""

  @jax.jit
  def embed(audio):
    spec = frontend.log_mel_spectrogram(audio, num_mel_bins=num_mel_bins)  # (batch, frames, bins)
    return jnp.concatenate([spec.mean(axis=-2), spec.std(axis=-2)], axis=-1)

  return lambda audio: np.asarray(embed(jnp.asarray(audio[:, :num_samples], jnp.float32)))


def frame_embedder(model, params, input_) -> Callable[[np.ndarray], np.ndarray]:
  """Raw inputs ``(batch, samples)`` -> per-frame embeddings ``(batch, T', d)`` of a CFN (`CFN.frame_embed`).

  Args:
    model: the CFN.
    params: its variables.
    input_: the pretext input that cuts raw inputs into the model's patches
      (a `shuffle_learn.pretext.audio.AudioInput`), used without
      augmentation; its ``n_cols`` (patches along time) arranges the frames.

  Returns:
    A function of raw inputs giving float32 NumPy ``(batch, n_cols * w',
    n_rows * c)``: ``w'`` frames per time segment (the width of the last
    feature map of a patch) and ``c`` channels per frequency band (see
    `CFN.frame_embed`).
  """

  @jax.jit
  def embed(raw):
    return model.apply(params, input_(raw), n_cols=input_.n_cols, method=cfn.CFN.frame_embed)

  return lambda raw: np.asarray(embed(jnp.asarray(input_.host({input_.raw_key: raw}))), np.float32)


def sampling_embedder(model, params, input_, *, frames: bool = False) -> Callable[[np.ndarray], np.ndarray]:
  """Audio ``(batch, samples)`` -> a contrastive peer network's embedding (`SamplingNet.frames`).

  The whole clip's log-mel (``input_.spectrogram``, no segments, no shift)
  through the encoder: its frame embeddings ``h``, ``(batch, T', d)`` with
  ``frames``, else their mean over frames, ``(batch, d)`` (Kuroyanagi et al.
  2022 probe the frozen ``h``). Clips are cut or zero-padded to
  ``input_.seconds``.

  Args:
    model: the `shuffle_learn.models.sampling.SamplingNet`.
    params: its variables.
    input_: a `shuffle_learn.pretext.sampling.SegmentsInput` (its front end and clip length).
    frames: per-frame embeddings instead of the clip's.
  """
  from shuffle_learn.models import sampling  # pylint: disable=g-import-not-at-top

  @jax.jit
  def embed(audio):
    h = model.apply(params, input_.spectrogram(audio), method=sampling.SamplingNet.frames)
    return h if frames else h.mean(axis=1)

  return lambda audio: np.asarray(embed(jnp.asarray(input_.host({input_.raw_key: audio}))), np.float32)


def logmel_frame_embedder(num_samples: int, num_mel_bins: int = 64,
                          pool: int = 1) -> Callable[[np.ndarray], np.ndarray]:
  """Audio -> log-mel frames, ``(batch, frames, num_mel_bins)``, or their statistics over windows of ``pool`` frames.

  The frame-level counterpart of `logmel_embedder`: the log-mel of the first
  ``num_samples`` samples at the front end's defaults (25 ms windows, 10 ms
  hop, `frontend.log_mel_spectrogram`). With ``pool > 1``, every run of
  ``pool`` frames (the last one shorter if need be) gives the mean and the
  standard deviation of every band, ``(batch, ceil(frames / pool), 2 *
  num_mel_bins)``, as `logmel_embedder` does for the whole clip; a coarser
  frame rate, closer to the encoders' (and a frame-level probe 16 times
  cheaper at ``pool=16``).
  """
  if not isinstance(pool, int) or pool < 1:
    raise ValueError(f"pool must be an integer >= 1, got {pool!r}.")

  @jax.jit
  def embed(audio):
    spec = frontend.log_mel_spectrogram(audio, num_mel_bins=num_mel_bins)
    if pool == 1:
      return spec
    frames = spec.shape[-2]
    windows = -(-frames // pool)
    index = jnp.arange(frames) // pool  # The window of every frame.
    counts = jnp.bincount(index, length=windows)[:, None].astype(spec.dtype)
    total = jax.vmap(lambda x: jax.ops.segment_sum(x, index, windows))
    mean = total(spec) / counts
    var = total(jnp.square(spec - mean[:, index])) / counts  # Two passes: no cancellation.
    return jnp.concatenate([mean, jnp.sqrt(var)], axis=-1)

  return lambda audio: np.asarray(embed(jnp.asarray(audio[:, :num_samples], jnp.float32)), np.float32)


def embed_examples(source, embed: Callable[[np.ndarray], np.ndarray], *, num_examples: int | None = None,
                   seed: int = 0, batch_size: int = 256,
                   raw_key: str = "audio") -> tuple[np.ndarray, dict[str, np.ndarray]]:
  """Embeds a fixed subset of a source.

  Args:
    source: a random-access source (`shuffle_learn.data.sources`).
    embed: raw batch -> embeddings.
    num_examples: the first ``num_examples`` notes after a shuffle by
      ``seed`` (`loader.Subset`); None for all notes, in order.
    seed: fixes the subset.
    batch_size: notes per call of ``embed``.
    raw_key: the batch field ``embed`` reads; every other field is a label.

  Returns:
    ``(embeddings (M, d) float32, labels {key: (M, ...) int32})``.
  """
  if num_examples is not None:
    num_examples = min(num_examples, len(source))
  batches = loader.note_batches(source, batch_size=batch_size, seed=seed, shuffle=num_examples is not None,
                                num_epochs=1, drop_remainder=False, num_examples=num_examples,
                                shard_index=0, shard_count=1)
  outputs, labels = [], {}
  for batch in batches:
    outputs.append(embed(batch[raw_key]))
    for k in batch.keys() - {raw_key}:
      labels.setdefault(k, []).append(np.asarray(batch[k], np.int32))
  return (np.concatenate(outputs).astype(np.float32), {k: np.concatenate(v) for k, v in labels.items()})


def cached(path: str, compute: Callable[[], tuple[np.ndarray, dict]],
           label_keys: Sequence[str] | None = None) -> tuple[np.ndarray, dict]:
  """``compute()``, or its result read back from ``path`` (an ``.npz``) if already there.

  The file is written atomically. One that is unreadable, lacks a label of
  ``label_keys`` (when given) or whose arrays disagree in length is
  recomputed.
  """
  if os.path.exists(path):
    try:
      with np.load(path) as data:
        embeddings = data["embeddings"]
        labels = {k: data[k] for k in data.files if k != "embeddings"}
      if (label_keys is None or set(label_keys) <= set(labels)) and all(
          len(v) == len(embeddings) for v in labels.values()):
        return embeddings, labels
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error):
      pass  # Corrupt or from another version: recompute.
  embeddings, labels = compute()
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = path + ".tmp.npz"
  np.savez(tmp, embeddings=embeddings, **labels)
  os.replace(tmp, path)
  return embeddings, labels
