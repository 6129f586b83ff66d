"""The contrastive losses of the peer method: clip-level (COLA), frame-level and pitch-shift sampling.

Pure functions on representations, the building blocks of the peer objectives
(Kuroyanagi et al. 2022, Section 2, with COLA of Saeed et al. 2021):

- `bilinear_similarity`: ``s(a, b) = a^T W b`` for every pair of rows
  (Eqs. 1 and 3); `cosine_similarity`: cosine over a temperature (Eq. 8, the
  paper's Table 2 alternative, temperature 0.2);
- `clip_loss`: Eq. 2, the multiclass cross-entropy of each anchor segment
  against the positive segment of its own clip and the positives of every
  other clip of the batch (the negatives), averaged over the batch;
- `frame_positive_mask` and `frame_loss`: Eq. 4, for each anchor frame ``t``
  of the encoder's time axis, the frames ``t + tau``, ``|tau| <= m``, are
  positives (``T''``, ``M = 2m + 1`` of them, fewer at the edges) and every
  frame of the same clip is in the denominator; per example, then averaged,
  scaled by ``1 / M`` as the paper writes it;
- `pitch_loss`: Eq. 6, the squared error between the pitch head's per-frame
  difference ``g(x_hat) - g(x)`` and the shift of ``x_hat`` (we regress the
  shift in semitones, ``12 log2(ratio)``, so that no shift is 0; the paper
  calls it the shift width ``a`` and draws ratios in 0.8-1.2);
- `shift_spectrum`: the pitch shift on device, by resampling a linear-frequency
  magnitude spectrum along frequency (bin ``k`` of the output reads bin
  ``k / ratio`` of the input, linearly interpolated; zero beyond the top), so
  a partial at bin ``k`` moves to bin ``k * ratio``; applied before the mel
  filterbank.

References:
  Kuroyanagi, Hayashi, Takeda, Toda. Self-Supervised Learning Method Using
  Multiple Sampling Strategies for General-Purpose Audio Representation.
  ICASSP 2022.
  Saeed, Grangier, Zeghidour. Contrastive Learning of General-Purpose Audio
  Representations. ICASSP 2021 (COLA).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from shuffle_learn import _checks

COSINE_TEMPERATURE = 0.2  # The paper's (Section 3.3).


def bilinear_similarity(a: jax.Array, b: jax.Array, w: jax.Array) -> jax.Array:
  """``a @ w @ b^T`` over the last two axes: ``(..., n, d)``, ``(..., k, d)``, ``(d, d)`` -> ``(..., n, k)``."""
  return jnp.einsum("...nd,de,...ke->...nk", a, w, b)


def cosine_similarity(a: jax.Array, b: jax.Array, temperature: float = COSINE_TEMPERATURE) -> jax.Array:
  """Cosine similarity of every row pair over ``temperature``: ``(..., n, d)``, ``(..., k, d)`` -> ``(..., n, k)``."""
  _checks.check_number("temperature", temperature, 0.0, strict=True)
  normalize = lambda x: x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), 1e-12))
  return jnp.einsum("...nd,...kd->...nk", normalize(a), normalize(b)) / temperature


def clip_loss(similarity: jax.Array) -> jax.Array:
  """Eq. 2: mean over anchors ``i`` of ``-log softmax(similarity[i])[i]`` (clip ``i``'s positive on the diagonal).

  Args:
    similarity: ``(batch, batch)``, ``similarity[i, j] = s(anchor_i, positive_j)``.
  """
  if similarity.ndim != 2 or similarity.shape[0] != similarity.shape[1]:
    raise ValueError(f"similarity must be a square (batch, batch) matrix, got shape {similarity.shape}.")
  log_probs = jax.nn.log_softmax(similarity, axis=-1)
  return -jnp.mean(jnp.diagonal(log_probs))


def frame_positive_mask(num_frames: int, m: int) -> np.ndarray:
  """``mask[t, i]``: frame ``i`` is a positive of anchor frame ``t``, ``|i - t| <= m`` (bool ``(T', T')``)."""
  _checks.check_int("num_frames", num_frames, 1)
  _checks.check_int("m", m, 0)
  t = np.arange(num_frames)
  return np.abs(t[:, None] - t[None, :]) <= m


def frame_loss(similarity: jax.Array, m: int) -> jax.Array:
  """Eq. 4: the frame-level loss of a batch, averaged over examples and anchor frames.

  Args:
    similarity: ``(batch, T', T')``, ``similarity[n, t, i] = s(x_t, x_i)`` within example ``n``.
    m: positives are the ``2m + 1`` frames around the anchor (``M = 2m + 1``).

  Returns:
    ``-(1 / M) mean_{n, t} log(sum_{|i - t| <= m} exp s[n, t, i] / sum_i exp s[n, t, i])``.
  """
  if similarity.ndim != 3 or similarity.shape[1] != similarity.shape[2]:
    raise ValueError(f"similarity must be (batch, frames, frames), got shape {similarity.shape}.")
  mask = jnp.asarray(frame_positive_mask(similarity.shape[1], m))
  positives = jax.nn.logsumexp(jnp.where(mask, similarity, -jnp.inf), axis=-1)
  return -jnp.mean(positives - jax.nn.logsumexp(similarity, axis=-1)) / (2 * m + 1)


def pitch_loss(shifted: jax.Array, anchor: jax.Array, ratio: jax.Array) -> jax.Array:
  """Eq. 6: ``mean_n ||shifted[n] - anchor[n] - 12 log2(ratio[n])||^2`` over the pitch head's frames.

  Args:
    shifted, anchor: the pitch head's outputs ``(batch, T')`` for the shifted and the original segment.
    ratio: ``(batch,)`` frequency ratios of the shifts.
  """
  if shifted.shape != anchor.shape or shifted.ndim != 2:
    raise ValueError(f"shifted and anchor must both be (batch, frames), got {shifted.shape} and {anchor.shape}.")
  semitones = 12.0 * jnp.log2(jnp.asarray(ratio, shifted.dtype))
  return jnp.mean(jnp.sum(jnp.square(shifted - anchor - semitones[:, None]), axis=-1))


def shift_spectrum(magnitudes: jax.Array, ratio: jax.Array) -> jax.Array:
  """Pitch-shifts linear-frequency magnitudes ``(..., frames, bins)`` by ``ratio`` (a scalar or one per leading row).

  Output bin ``k`` is input bin ``k / ratio`` interpolated linearly; bins
  that read beyond the last input bin are 0. A ratio of 1 returns the input.
  """
  magnitudes = jnp.asarray(magnitudes)
  ratio = jnp.asarray(ratio, magnitudes.dtype)
  num_bins = magnitudes.shape[-1]
  ratio = ratio.reshape(ratio.shape + (1,) * (magnitudes.ndim - ratio.ndim))  # Broadcast over frames and bins.
  source = jnp.arange(num_bins, dtype=magnitudes.dtype) / ratio  # (..., 1, bins) or (bins,).
  low = jnp.clip(jnp.floor(source).astype(jnp.int32), 0, num_bins - 1)
  high = jnp.clip(low + 1, 0, num_bins - 1)
  frac = source - low
  gather = lambda index: jnp.take_along_axis(magnitudes, jnp.broadcast_to(index, magnitudes.shape), axis=-1)
  out = (1 - frac) * gather(low) + frac * gather(high)
  return jnp.where(source <= num_bins - 1, out, 0.0)
