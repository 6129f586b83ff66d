"""Spectrogram front ends for 16 kHz mono audio in pure JAX.

All three front ends take audio of shape ``(..., samples)`` with any leading
batch dimensions, run under ``jit`` (their keyword arguments are static Python
numbers) and return ``(..., frames, bins)``: time on the second-to-last axis,
frequency on the last, lowest frequency first.

Framing: frame ``t`` holds samples ``[t * hop, t * hop + window)``; there is no
centring padding and the trailing samples that do not fill a frame are dropped,
so ``frames = 1 + (samples - window) // hop``. With the defaults (25 ms window =
400 samples, 10 ms hop = 160 samples at 16 kHz), a 4 s clip of 64000 samples
gives 398 frames. Window and hop lengths in milliseconds are rounded to the
nearest whole sample (Python's ``round``). Each frame is multiplied by a
periodic Hann window of ``window`` samples, zero-padded at the end to
``fft_size`` = 1024 samples, and transformed with ``jnp.fft.rfft``: 513 bins,
bin ``k`` at ``k * sample_rate / fft_size`` Hz.

References:
  Carr, Berthet, Blondel, Teboul, Zeghidour. Self-Supervised Learning of Audio
  Representations from Permutations with Differentiable Ranking. IEEE SPL 2021:
  log-compressed spectrograms.
  Saeed, Grangier, Zeghidour. Contrastive Learning of General-Purpose Audio
  Representations (COLA). ICASSP 2021: log mel filterbanks, 25 ms window,
  10 ms hop, 64 mel bins over 60-7800 Hz.
  Young et al. The HTK Book: the mel scale 1127 ln(1 + f / 700).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from shuffle_learn import _checks

_MEL_BREAK_HZ = 700.0
_MEL_HIGH_Q = 1127.0


def _frame_sizes(sample_rate, window_ms, hop_ms) -> tuple[int, int]:
  """Checks the framing arguments; returns (window, hop) in samples."""
  sample_rate = _checks.check_number("sample_rate", sample_rate, 0.0, strict=True)
  window_ms = _checks.check_number("window_ms", window_ms, 0.0, strict=True)
  hop_ms = _checks.check_number("hop_ms", hop_ms, 0.0, strict=True)
  window = int(round(sample_rate * window_ms / 1000.0))
  hop = int(round(sample_rate * hop_ms / 1000.0))
  if window < 1:
    raise ValueError(f"window_ms={window_ms} is less than one sample at sample_rate={sample_rate}.")
  if hop < 1:
    raise ValueError(f"hop_ms={hop_ms} is less than one sample at sample_rate={sample_rate}.")
  return window, hop


def _stft_sizes(sample_rate, window_ms, hop_ms, fft_size) -> tuple[int, int, int]:
  """Checks the STFT arguments; returns (window, hop, fft_size) in samples."""
  window, hop = _frame_sizes(sample_rate, window_ms, hop_ms)
  fft_size = _checks.check_int("fft_size", fft_size, 1)
  if fft_size < window:
    raise ValueError(f"fft_size must be >= the window length of {window} samples, got {fft_size}.")
  return window, hop, fft_size


def num_frames(num_samples: int, *, sample_rate: float = 16000, window_ms: float = 25.0, hop_ms: float = 10.0) -> int:
  """Number of STFT frames of a clip: ``1 + (num_samples - window) // hop``.

  Args:
    num_samples: length of the clip in samples, at least one window.
    sample_rate: in Hz.
    window_ms: window length in milliseconds, rounded to whole samples.
    hop_ms: hop length in milliseconds, rounded to whole samples.

  Returns:
    The frame count, e.g. 398 for 64000 samples with the defaults.
  """
  window, hop = _frame_sizes(sample_rate, window_ms, hop_ms)
  num_samples = _checks.check_int("num_samples", num_samples, 1)
  if num_samples < window:
    raise ValueError(f"num_samples must be at least one window of {window} samples, got {num_samples}.")
  return 1 + (num_samples - window) // hop


def _audio(audio: jax.typing.ArrayLike, window: int) -> jax.Array:
  """Checks the audio; returns it in float32 (float64 stays float64)."""
  audio = jnp.asarray(audio)
  if not jnp.issubdtype(audio.dtype, jnp.floating):
    raise ValueError(f"audio must be a floating-point array, got dtype {audio.dtype}.")
  if audio.ndim == 0 or audio.shape[-1] < window:
    raise ValueError(
        f"audio must have at least one window of {window} samples on its last axis, got shape {audio.shape}.")
  return audio.astype(jnp.promote_types(audio.dtype, jnp.float32))


@functools.lru_cache(maxsize=32)
def _hann(window: int) -> np.ndarray:
  """Periodic Hann window, 0.5 - 0.5 cos(2 pi n / window), n = 0 .. window - 1."""
  return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(window) / window)


@functools.lru_cache(maxsize=32)
def _frame_indices(num_samples: int, window: int, hop: int) -> np.ndarray:
  n = 1 + (num_samples - window) // hop
  return (hop * np.arange(n, dtype=np.int32)[:, None] + np.arange(window, dtype=np.int32)[None, :])


def stft_magnitude(audio: jax.typing.ArrayLike, *, sample_rate: float = 16000, window_ms: float = 25.0,
                   hop_ms: float = 10.0, fft_size: int = 1024) -> jax.Array:
  """Magnitude of the short-time Fourier transform, ``|STFT|``.

  Frames are cut without centring padding (see the module docstring), windowed
  by a periodic Hann window and zero-padded to ``fft_size``. No scaling is
  applied: a full-scale sinusoid on bin ``k`` has magnitude ``window / 4`` there.

  Args:
    audio: floating-point samples, shape ``(..., samples)`` with at least one
      window of samples. Half precision is computed in float32.
    sample_rate: in Hz.
    window_ms: window length in milliseconds (400 samples at the defaults),
      rounded to whole samples.
    hop_ms: hop in milliseconds (160 samples at the defaults), rounded to whole
      samples.
    fft_size: FFT length, at least the window length in samples.

  Returns:
    ``(..., frames, fft_size // 2 + 1)`` magnitudes, ``frames = 1 + (samples -
    window) // hop``: (..., 398, 513) for 4 s at the defaults. float32 (float64
    for float64 input with x64 enabled).

  Example:
    >>> stft_magnitude(jnp.zeros((2, 64000))).shape
    (2, 398, 513)
  """
  window, hop, fft_size = _stft_sizes(sample_rate, window_ms, hop_ms, fft_size)
  audio = _audio(audio, window)
  # One gather with constant indices: faster on CPU than reshaping into hops
  # and concatenating shifted copies (both are timed in benchmarks/frontend.py).
  frames = audio[..., _frame_indices(audio.shape[-1], window, hop)]
  frames = frames * jnp.asarray(_hann(window), audio.dtype)
  return jnp.abs(jnp.fft.rfft(frames, n=fft_size, axis=-1))


def log_spectrogram(audio: jax.typing.ArrayLike, *, sample_rate: float = 16000, window_ms: float = 25.0,
                    hop_ms: float = 10.0, fft_size: int = 1024, log_offset: float = 1e-6) -> jax.Array:
  """The paper's log-compressed spectrogram, ``log(|STFT| + log_offset)``.

  Args:
    audio: floating-point samples ``(..., samples)``, framed and transformed
      as in `stft_magnitude` with ``sample_rate``, ``window_ms``, ``hop_ms``
      and ``fft_size``.
    log_offset: added before the log (> 0), so silence gives ``log(log_offset)``.

  Returns:
    ``(..., frames, fft_size // 2 + 1)``: (..., 398, 513) for 4 s at the
    defaults; float32.

  References:
    Carr et al. Self-Supervised Learning of Audio Representations from
    Permutations with Differentiable Ranking. IEEE SPL 2021.
  """
  log_offset = _checks.check_number("log_offset", log_offset, 0.0, strict=True)
  magnitude = stft_magnitude(audio, sample_rate=sample_rate, window_ms=window_ms, hop_ms=hop_ms, fft_size=fft_size)
  return jnp.log(magnitude + log_offset)


def hertz_to_mel(frequencies_hz: np.ndarray | float) -> np.ndarray:
  """HTK mel scale: ``1127 ln(1 + f / 700)``, in NumPy."""
  return _MEL_HIGH_Q * np.log1p(np.asarray(frequencies_hz, np.float64) / _MEL_BREAK_HZ)


@functools.lru_cache(maxsize=32)
def _mel_filterbank(num_mel_bins, num_fft_bins, sample_rate, lower_hz, upper_hz) -> np.ndarray:
  nyquist = sample_rate / 2.0
  # Bin k of num_fft_bins evenly spaced bins is at k * nyquist / (num_fft_bins - 1) Hz.
  bins_mel = hertz_to_mel(np.linspace(0.0, nyquist, num_fft_bins))[:, None]
  edges = np.linspace(hertz_to_mel(lower_hz), hertz_to_mel(upper_hz), num_mel_bins + 2)
  lower, center, upper = edges[None, :-2], edges[None, 1:-1], edges[None, 2:]
  rising = (bins_mel - lower) / (center - lower)
  falling = (upper - bins_mel) / (upper - center)
  weights = np.maximum(0.0, np.minimum(rising, falling))
  weights[0] = 0.0  # The DC bin is in no band.
  weights = weights.astype(np.float32)
  weights.setflags(write=False)
  return weights


def mel_filterbank(
    num_mel_bins: int = 64,
    num_fft_bins: int = 513,
    sample_rate: float = 16000,
    lower_hz: float = 60.0,
    upper_hz: float = 7800.0,
) -> np.ndarray:
  """Triangular mel filterbank on the HTK mel scale, as a NumPy matrix.

  The convention of ``tf.signal.linear_to_mel_weight_matrix``: ``num_mel_bins
  + 2`` band edges evenly spaced on the HTK mel scale ``1127 ln(1 + f / 700)``
  from ``lower_hz`` to ``upper_hz``; band ``m`` is a triangle in the mel domain
  rising from edge ``m`` to 1 at edge ``m + 1`` and falling to 0 at edge ``m +
  2``. The FFT bins are at ``linspace(0, sample_rate / 2, num_fft_bins)`` and the
  DC bin gets zero weight. The triangles are not area-normalised (no Slaney
  normalisation): each band's peak weight is at most 1.

  Computed once per argument set in float64 and cached; the returned array is
  float32 and read-only.

  Args:
    num_mel_bins: number of mel bands, >= 1.
    num_fft_bins: number of FFT bins, ``fft_size // 2 + 1``, >= 2.
    sample_rate: in Hz.
    lower_hz: lower edge of the lowest band, >= 0 and < ``upper_hz``.
    upper_hz: upper edge of the highest band, at most ``sample_rate / 2``.

  Returns:
    ``(num_fft_bins, num_mel_bins)`` weights: ``mel = magnitudes @ weights``.
  """
  num_mel_bins = _checks.check_int("num_mel_bins", num_mel_bins, 1)
  num_fft_bins = _checks.check_int("num_fft_bins", num_fft_bins, 1)
  if num_fft_bins < 2:
    raise ValueError(f"num_fft_bins must be >= 2, got {num_fft_bins}.")
  sample_rate = _checks.check_number("sample_rate", sample_rate, 0.0, strict=True)
  lower_hz = _checks.check_number("lower_hz", lower_hz, 0.0)
  upper_hz = _checks.check_number("upper_hz", upper_hz, 0.0, strict=True)
  if lower_hz >= upper_hz:
    raise ValueError(f"lower_hz must be < upper_hz, got lower_hz={lower_hz} and upper_hz={upper_hz}.")
  if upper_hz > sample_rate / 2:
    raise ValueError(f"upper_hz must be <= the Nyquist frequency {sample_rate / 2} Hz, got {upper_hz}.")
  return _mel_filterbank(num_mel_bins, num_fft_bins, sample_rate, float(lower_hz), upper_hz)


def log_mel_spectrogram(audio: jax.typing.ArrayLike, *, sample_rate: float = 16000, window_ms: float = 25.0,
                        hop_ms: float = 10.0, fft_size: int = 1024, num_mel_bins: int = 64, lower_hz: float = 60.0,
                        upper_hz: float = 7800.0, log_offset: float = 1e-6) -> jax.Array:
  """Log mel filterbank energies, ``log(|STFT| @ mel_filterbank + log_offset)``.

  The front end of COLA and of the multiple-sampling pretext study: 25 ms
  window, 10 ms hop, 64 mel bands over 60-7800 Hz, the filterbank applied to
  STFT magnitudes (not powers).

  Args:
    audio: floating-point samples ``(..., samples)``, framed and transformed
      as in `stft_magnitude` with ``sample_rate``, ``window_ms``, ``hop_ms``
      and ``fft_size``.
    num_mel_bins: number of mel bands.
    lower_hz: lower edge of the lowest band, < ``upper_hz``.
    upper_hz: upper edge of the highest band, at most the Nyquist frequency.
    log_offset: added before the log (> 0).

  Returns:
    ``(..., frames, num_mel_bins)``: (..., 398, 64) for 4 s at the defaults;
    float32.

  References:
    Saeed, Grangier, Zeghidour. Contrastive Learning of General-Purpose Audio
    Representations. ICASSP 2021.
  """
  _checks.check_number("log_offset", log_offset, 0.0, strict=True)
  _, _, fft_size = _stft_sizes(sample_rate, window_ms, hop_ms, fft_size)
  magnitude = stft_magnitude(audio, sample_rate=sample_rate, window_ms=window_ms, hop_ms=hop_ms, fft_size=fft_size)
  return log_mel_from_magnitude(magnitude, sample_rate=sample_rate, num_mel_bins=num_mel_bins, lower_hz=lower_hz,
                                upper_hz=upper_hz, log_offset=log_offset)


def log_mel_from_magnitude(magnitude: jax.Array, *, sample_rate: float = 16000, num_mel_bins: int = 64,
                           lower_hz: float = 60.0, upper_hz: float = 7800.0, log_offset: float = 1e-6) -> jax.Array:
  """The second half of `log_mel_spectrogram`: STFT magnitudes ``(..., frames, fft_size // 2 + 1)`` -> log mel.

  For magnitudes changed between the two halves (a pitch shift along
  frequency, `shuffle_learn.pretext.contrastive.shift_spectrum`).

  Returns:
    ``(..., frames, num_mel_bins)``, ``log(magnitude @ mel_filterbank + log_offset)``.
  """
  log_offset = _checks.check_number("log_offset", log_offset, 0.0, strict=True)
  weights = mel_filterbank(num_mel_bins, magnitude.shape[-1], sample_rate, lower_hz, upper_hz)
  mel = jnp.matmul(magnitude, jnp.asarray(weights, magnitude.dtype), precision=jax.lax.Precision.HIGHEST)
  return jnp.log(mel + log_offset)
