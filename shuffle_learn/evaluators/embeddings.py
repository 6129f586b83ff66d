"""Frozen embeddings of examples (notes, images, clips), computed once and cached.

Three kinds, all from the same input (for audio, the clip the pre-training
config's front end uses):

- `cfn_embedder`: the pooled convolutional features (`CFN.conv_embed`, the
  default) or the fc7 embedding (`CFN.embed`) of the unshuffled patches (the
  identity permutation), from a checkpoint's parameters or, for the
  ``random_embedding`` baseline, from the untrained initialisation;
- `logmel_embedder`: the ``logmel_baseline``: the mean and the standard
  deviation over time of every log-mel band (2 x 64 numbers).

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
