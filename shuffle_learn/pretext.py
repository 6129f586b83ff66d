"""The permutation pretext task on device: audio -> patches -> shuffle -> loss.

Everything here is pure JAX, traced inside the jitted train and eval steps:

    audio (batch, samples)
      -> `features`: log-mel or log spectrogram, (batch, frequency, time),
         optionally standardised per example
      -> `to_patches`: frequency bands (n_rows x 1), time segments (1 x n_cols)
         or tiles, (batch, n, h, w); the remainders at the top of the spectrum
         and at the end of the note are cropped
      -> `Pretext.shuffle`: a permutation per example, sampled in the step
      -> network outputs: n scores (ranking objectives) or k logits
      -> `Pretext.loss`, `Pretext.accuracy` (partial ranks)

The objectives (`LOSSES`, config ``pretext.loss``), as in Carr et al. 2021:

- ``perturbed_fy``: the perturbed Fenchel-Young loss on the scores with
  ``num_samples`` normal perturbations of scale ``sigma`` (the paper: 10, 0.1);
- ``fast_soft_rank``: 1/2 ||soft_rank(scores) - target||^2, L2 soft ranks of
  strength ``regularization_strength`` (Blondel et al. 2020);
- ``mse``: 1/2 ||scores - target||^2, regressing the ranks directly;
- ``fixed_permutation``: cross-entropy over ``num_permutations`` permutations
  of maximal minimum Hamming distance (Noroozi & Favaro 2016), the examples'
  permutations drawn uniformly from that set.

Targets are the ascending 1-based ranks ``perm + 1`` of
`shuffle_learn.data.permutations.permutation_ranks`: sorting the slots by score
restores the original order. The pretext metric is the fraction of patches put
back in their place (partial ranks accuracy); its chance level is 1/n.

References:
  Carr, Berthet, Blondel, Teboul, Zeghidour. Self-Supervised Learning of Audio
  Representations from Permutations with Differentiable Ranking. IEEE SPL 2021.
  Noroozi, Favaro. Unsupervised Learning of Visual Representations by Solving
  Jigsaw Puzzles. ECCV 2016.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from shuffle_learn import ranking
from shuffle_learn.data import frontend
from shuffle_learn.data import patches as patches_lib
from shuffle_learn.data import permutations as permutations_lib

LOSSES = ("perturbed_fy", "fast_soft_rank", "mse", "fixed_permutation")
FRONTENDS = ("log_mel", "log_spectrogram")
NORMALIZATIONS = ("none", "example")
# Added to the variance before the square root in the per-example standardisation.
NORMALIZE_EPS = 1e-6


@dataclasses.dataclass(frozen=True)
class Features:
  """The front end: which spectrogram, and how it is standardised.

  Attributes:
    kind: ``"log_mel"`` (`frontend.log_mel_spectrogram`) or
      ``"log_spectrogram"`` (the paper's, `frontend.log_spectrogram`).
    sample_rate: audio rate in Hz.
    num_samples: samples kept from the start of each note (the rest is cut
      before the STFT); None keeps them all.
    num_mel_bins: mel bands of ``"log_mel"``.
    fft_size: FFT length; the log spectrogram has ``fft_size // 2 + 1`` bins.
    normalization: ``"example"`` standardises each spectrogram (its mean over
      frequency and time subtracted, divided by its std), which keeps the level
      of a band relative to the others; ``"none"`` leaves log magnitudes as they
      are. Per-patch standardisation is the model's (`CFN.normalize_patches`).
  """

  kind: str = "log_mel"
  sample_rate: int = 16000
  num_samples: int | None = None
  num_mel_bins: int = 64
  fft_size: int = 1024
  normalization: str = "example"

  def __post_init__(self):
    if self.kind not in FRONTENDS:
      raise ValueError(f"kind must be one of {FRONTENDS}, got {self.kind!r}.")
    if self.normalization not in NORMALIZATIONS:
      raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}.")
    if self.num_samples is not None and self.num_samples < 1:
      raise ValueError(f"num_samples must be >= 1 or None, got {self.num_samples!r}.")

  def __call__(self, audio: jax.Array) -> jax.Array:
    """``(batch, samples)`` audio -> ``(batch, frequency, time)`` float32."""
    audio = jnp.asarray(audio, jnp.float32)
    if self.num_samples is not None:
      audio = audio[..., :self.num_samples]
    if self.kind == "log_mel":
      spec = frontend.log_mel_spectrogram(
          audio, sample_rate=self.sample_rate, fft_size=self.fft_size, num_mel_bins=self.num_mel_bins)
    else:
      spec = frontend.log_spectrogram(audio, sample_rate=self.sample_rate, fft_size=self.fft_size)
    spec = jnp.swapaxes(spec, -1, -2)  # (..., frequency, time), lowest frequency first.
    if self.normalization == "example":
      mean = spec.mean(axis=(-2, -1), keepdims=True)
      var = spec.var(axis=(-2, -1), keepdims=True)
      spec = (spec - mean) * jax.lax.rsqrt(var + NORMALIZE_EPS)
    return spec

  def shape(self, num_samples: int) -> tuple[int, int]:
    """``(frequency, time)`` of the spectrogram of ``num_samples`` samples."""
    if self.num_samples is not None:
      num_samples = min(num_samples, self.num_samples)
    bins = self.num_mel_bins if self.kind == "log_mel" else self.fft_size // 2 + 1
    return bins, frontend.num_frames(num_samples, sample_rate=self.sample_rate)


@dataclasses.dataclass(frozen=True)
class Pretext:
  """Patches, permutations, objective and metric of the pretext task.

  Attributes:
    n_rows: patches along frequency (bands).
    n_cols: patches along time (segments). ``n = n_rows * n_cols``.
    loss_name: one of `LOSSES`.
    num_samples: perturbations of ``perturbed_fy``.
    sigma: noise scale of ``perturbed_fy``.
    regularization_strength: strength of ``fast_soft_rank``'s soft ranks.
    num_permutations: k of ``fixed_permutation``.
    permutation_seed: seed of the Hamming-maximal set.
  """

  n_rows: int = 10
  n_cols: int = 1
  loss_name: str = "perturbed_fy"
  num_samples: int = 10
  sigma: float = 0.1
  regularization_strength: float = 1.0
  num_permutations: int = 100
  permutation_seed: int = 0

  def __post_init__(self):
    if self.loss_name not in LOSSES:
      raise ValueError(f"loss must be one of {LOSSES}, got {self.loss_name!r}.")
    if self.num_patches < 2:
      raise ValueError(f"the grid n_rows x n_cols must have at least 2 patches, got {self.n_rows} x {self.n_cols}.")
    if self.loss_name == "fixed_permutation" and not 2 <= self.num_permutations <= math.factorial(self.num_patches):
      raise ValueError(
          f"num_permutations must be in [2, n!] = [2, {math.factorial(self.num_patches)}] for "
          f"n={self.num_patches} patches, got {self.num_permutations}.")

  @property
  def num_patches(self) -> int:
    return self.n_rows * self.n_cols

  @property
  def num_outputs(self) -> int:
    """Width of the network's head: n scores, or k logits for ``fixed_permutation``."""
    return self.num_permutations if self.loss_name == "fixed_permutation" else self.num_patches

  def permutation_set(self) -> np.ndarray:
    """int32 ``(k, n)``: the fixed permutations of ``fixed_permutation``."""
    return permutations_lib.hamming_permutation_set(self.num_patches, self.num_permutations,
                                                     seed=self.permutation_seed)

  def patches(self, spec: jax.Array) -> jax.Array:
    """``(batch, frequency, time)`` -> ``(batch, n, h, w)``, patches in order."""
    return patches_lib.to_patches(spec, self.n_rows, self.n_cols, crop="end")

  def shuffle(self, key: jax.Array, patches: jax.Array, permutation_set: jax.Array | None = None):
    """Shuffles the patches of every example with its own random permutation.

    Args:
      key: PRNG key.
      patches: ``(batch, n, ...)``.
      permutation_set: the ``(k, n)`` set, for ``fixed_permutation``.

    Returns:
      ``(shuffled, labels)``: ``labels`` is the int32 ``(batch, n)``
      permutations, or for ``fixed_permutation`` the int32 ``(batch,)`` indices
      into the set.
    """
    batch = patches.shape[0]
    if self.loss_name == "fixed_permutation":
      labels = jax.random.randint(key, (batch,), 0, permutation_set.shape[0], dtype=jnp.int32)
      perms = permutation_set[labels]
    else:
      perms = labels = permutations_lib.sample_permutations(key, batch, self.num_patches)
    return permutations_lib.shuffle_patches(patches, perms), labels

  def loss(self, key: jax.Array, outputs: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example loss, float32 ``(batch,)``; ``key`` drives ``perturbed_fy``'s noise."""
    outputs = outputs.astype(jnp.float32)
    if self.loss_name == "fixed_permutation":
      return optax.softmax_cross_entropy_with_integer_labels(outputs, labels)
    target = permutations_lib.permutation_ranks(labels)
    if self.loss_name == "perturbed_fy":
      return ranking.fenchel_young_loss(key, outputs, target, num_samples=self.num_samples, sigma=self.sigma)
    if self.loss_name == "fast_soft_rank":
      return ranking.soft_rank_loss(outputs, target, regularization_strength=self.regularization_strength)
    return ranking.rank_mse_loss(outputs, target)

  def accuracy(self, outputs: jax.Array, labels: jax.Array, permutation_set: jax.Array | None = None) -> jax.Array:
    """Per-example partial ranks accuracy, float32 ``(batch,)``; chance is 1/n.

    For the ranking objectives, the hard ranks of the scores against ``perm +
    1``; for ``fixed_permutation``, the positions where the permutation of the
    arg-max logit agrees with the true one.
    """
    if self.loss_name == "fixed_permutation":
      predicted = permutation_set[jnp.argmax(outputs, axis=-1)]
      return jnp.mean((predicted == permutation_set[labels]).astype(jnp.float32), axis=-1)
    return ranking.partial_ranks_accuracy(outputs, permutations_lib.permutation_ranks(labels))
