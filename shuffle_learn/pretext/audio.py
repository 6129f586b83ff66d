"""Audio input of the pretext task: a spectrogram cut into frequency bands, time segments or tiles.

Pure JAX, traced inside the jitted steps:

    audio (batch, samples)
      -> the first ``seconds`` of each note
      -> log-mel or log spectrogram, (batch, frequency, time), lowest frequency
         first, optionally standardised per example
      -> an ``n_rows x n_cols`` grid (`shuffle_learn.data.patches.to_patches`):
         frequency bands (n_rows x 1), time segments (1 x n_cols) or tiles; the
         remainders at the top of the spectrum and the end of the clip are cropped
      -> patches (batch, n, h, w, 1), in order.

References:
  Carr, Berthet, Blondel, Teboul, Zeghidour. Self-Supervised Learning of Audio
  Representations from Permutations with Differentiable Ranking. IEEE SPL 2021
  (log spectrogram, frequency bands, time frames, tiles).
  Saeed, Grangier, Zeghidour. Contrastive Learning of General-Purpose Audio
  Representations. ICASSP 2021 (the 64-bin log-mel).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from shuffle_learn import _checks
from shuffle_learn.data import frontend
from shuffle_learn.data import patches as patches_lib
from shuffle_learn.data import schema

FRONTENDS = ("log_mel", "log_spectrogram")
NORMALIZATIONS = ("none", "example")
# Added to the variance before the square root in the per-example standardisation.
NORMALIZE_EPS = 1e-6


def standardize(spec: jax.Array) -> jax.Array:
  """Every spectrogram ``(..., a, b)`` minus its mean over the last two axes, over ``sqrt(var + NORMALIZE_EPS)``."""
  mean = spec.mean(axis=(-2, -1), keepdims=True)
  var = spec.var(axis=(-2, -1), keepdims=True)
  return (spec - mean) * jax.lax.rsqrt(var + NORMALIZE_EPS)


@dataclasses.dataclass(frozen=True)
class AudioInput:
  """Notes -> spectrogram patches. The defaults are those of ``experiments/configs/default.py``.

  Attributes:
    kind: ``"log_mel"`` (`frontend.log_mel_spectrogram`) or
      ``"log_spectrogram"`` (the paper's, `frontend.log_spectrogram`).
    seconds: audio kept from the start of each note (the rest is cut before
      the STFT), at most the notes' `schema.NOTE_SECONDS`.
    num_mel_bins: mel bands of ``"log_mel"``.
    fft_size: FFT length; the log spectrogram has ``fft_size // 2 + 1`` bins.
    normalization: ``"example"`` standardises each spectrogram (its mean over
      frequency and time subtracted, divided by its std), which keeps the level
      of a band relative to the others; ``"none"`` leaves log magnitudes as they
      are. Per-patch standardisation is the model's (`CFN.normalize_patches`).
    n_rows: patches along frequency (bands).
    n_cols: patches along time (segments); ``n = n_rows * n_cols``.
  """

  kind: str = "log_mel"
  seconds: float = 1.0
  num_mel_bins: int = 64
  fft_size: int = 1024
  normalization: str = "example"
  n_rows: int = 10
  n_cols: int = 1
  raw_key: ClassVar[str] = schema.RAW_KEYS["audio"]
  # Argument -> its field in a pre-training config.
  config_fields: ClassVar[dict[str, str]] = {
      "kind": "features.kind", "seconds": "features.seconds", "num_mel_bins": "features.num_mel_bins",
      "fft_size": "features.fft_size", "normalization": "features.normalization", "n_rows": "pretext.n_rows",
      "n_cols": "pretext.n_cols"}
  sample_rate: ClassVar[int] = schema.SAMPLE_RATE

  def __post_init__(self):
    _checks.check_choice("kind", self.kind, FRONTENDS)
    _checks.check_number("seconds", self.seconds, 0.0, strict=True)
    if self.seconds > schema.NOTE_SECONDS:
      raise ValueError(f"seconds must be at most the notes' {schema.NOTE_SECONDS:g} s, got {self.seconds!r}.")
    _checks.check_int("num_mel_bins", self.num_mel_bins, 1)
    _checks.check_int("fft_size", self.fft_size, 400)  # At least the 25 ms window.
    _checks.check_choice("normalization", self.normalization, NORMALIZATIONS)
    _checks.check_int("n_rows", self.n_rows, 1)
    _checks.check_int("n_cols", self.n_cols, 1)
    if self.num_patches < 2:
      raise ValueError(f"n_rows times n_cols must be at least 2 patches, got {self.n_rows} x {self.n_cols}.")
    if self.num_samples < 400:
      raise ValueError(f"seconds must hold at least one 25 ms window, got {self.seconds!r}.")
    frequency, frames = self.spectrogram_shape
    if self.n_rows > frequency:
      raise ValueError(f"n_rows must be at most the spectrogram's {frequency} bins, got {self.n_rows}.")
    if self.n_cols > frames:
      raise ValueError(f"n_cols must be at most the spectrogram's {frames} frames, got {self.n_cols}.")

  @property
  def num_samples(self) -> int:
    """Samples per note fed to the device."""
    return min(int(round(self.seconds * self.sample_rate)), schema.NUM_SAMPLES)

  @property
  def num_patches(self) -> int:
    return self.n_rows * self.n_cols

  @property
  def spectrogram_shape(self) -> tuple[int, int]:
    """``(frequency, time)`` of the spectrogram."""
    bins = self.num_mel_bins if self.kind == "log_mel" else self.fft_size // 2 + 1
    return bins, frontend.num_frames(self.num_samples, sample_rate=self.sample_rate)

  @property
  def patch_shape(self) -> tuple[int, int, int]:
    """``(height, width, channels)`` of one patch: (frequency, time, 1)."""
    frequency, frames = self.spectrogram_shape
    return frequency // self.n_rows, frames // self.n_cols, 1

  def spectrogram(self, audio: jax.Array) -> jax.Array:
    """``(batch, samples)`` audio -> ``(batch, frequency, time)`` float32."""
    audio = jnp.asarray(audio, jnp.float32)
    if audio.shape[-1] > self.num_samples:
      audio = audio[..., :self.num_samples]
    if self.kind == "log_mel":
      spec = frontend.log_mel_spectrogram(
          audio, sample_rate=self.sample_rate, fft_size=self.fft_size, num_mel_bins=self.num_mel_bins)
    else:
      spec = frontend.log_spectrogram(audio, sample_rate=self.sample_rate, fft_size=self.fft_size)
    spec = jnp.swapaxes(spec, -1, -2)  # (..., frequency, time), lowest frequency first.
    return standardize(spec) if self.normalization == "example" else spec

  def __call__(self, audio: jax.Array, key: jax.Array | None = None) -> jax.Array:
    """``(batch, samples)`` audio -> patches ``(batch, n, h, w, 1)`` in order; ``key`` is unused (no augmentation)."""
    del key
    return patches_lib.to_patches(self.spectrogram(audio), self.n_rows, self.n_cols, crop="end")[..., None]

  def dummy(self, batch_size: int = 1) -> np.ndarray:
    """Zeros of the raw input's shape, for initialising a model."""
    return np.zeros((batch_size, self.num_samples), np.float32)

  def host(self, batch: Mapping[str, np.ndarray]) -> np.ndarray:
    """The raw input of a host batch as fed to the device: the clip's samples, float32."""
    return np.asarray(batch[self.raw_key][:, :self.num_samples], np.float32)
