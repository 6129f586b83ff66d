"""Tests of the spectrogram front ends against float64 SciPy and NumPy references."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

from shuffle_learn.data import frontend

SR = 16000
WINDOW, HOP, NFFT = 400, 160, 1024


def ref_stft_magnitude(audio):
  """|STFT| by scipy.signal.stft: no boundary padding, no trailing padding, unscaled."""
  window = scipy.signal.get_window("hann", WINDOW)  # Periodic by default.
  _, _, z = scipy.signal.stft(
      np.asarray(audio, np.float64), window=window, nperseg=WINDOW, noverlap=WINDOW - HOP, nfft=NFFT,
      boundary=None, padded=False, detrend=False)
  return np.swapaxes(np.abs(z) * window.sum(), -1, -2)  # scipy scales by 1 / sum(window).


def ref_stft_magnitude_shorttimefft(audio):
  """|STFT| by scipy.signal.ShortTimeFFT, whose slice p is centred on sample p * hop.

  Our frame t covers [t * hop, t * hop + 400), centred on t * hop + 200: with 120
  zeros in front, it is ShortTimeFFT's slice t + 2 (2 * 160 - 200 = 120).
  """
  audio = np.asarray(audio, np.float64)
  frames = 1 + (audio.shape[-1] - WINDOW) // HOP
  stft = scipy.signal.ShortTimeFFT(scipy.signal.windows.hann(WINDOW, sym=False), HOP, SR, mfft=NFFT)
  padded = np.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(120, 0)])
  return np.swapaxes(np.abs(stft.stft(padded, p0=2, p1=frames + 2, axis=-1)), -1, -2)


def ref_mel_matrix(num_mel_bins=64, num_fft_bins=513, sample_rate=SR, lower_hz=60.0, upper_hz=7800.0):
  """HTK triangular filterbank, written out bin by bin from the formula."""
  def mel(f):
    return 1127.0 * np.log(1.0 + f / 700.0)

  lo, hi = mel(lower_hz), mel(upper_hz)
  edges = [lo + (hi - lo) * i / (num_mel_bins + 1) for i in range(num_mel_bins + 2)]
  out = np.zeros((num_fft_bins, num_mel_bins))
  for k in range(1, num_fft_bins):  # The DC bin stays 0.
    m_k = mel(k * (sample_rate / 2) / (num_fft_bins - 1))
    for m in range(num_mel_bins):
      left, center, right = edges[m], edges[m + 1], edges[m + 2]
      if left < m_k <= center:
        out[k, m] = (m_k - left) / (center - left)
      elif center < m_k < right:
        out[k, m] = (right - m_k) / (right - center)
  return out


def mel_to_hz(m):
  return 700.0 * (np.exp(m / 1127.0) - 1.0)


@pytest.fixture
def audio(rng):
  return rng.standard_normal((3, 16000)).astype(np.float32)


def test_frame_count():
  assert frontend.num_frames(64000) == 398
  assert frontend.num_frames(400) == 1
  assert frontend.num_frames(559) == 1
  assert frontend.num_frames(560) == 2
  def shape(samples):
    return jax.eval_shape(frontend.log_mel_spectrogram, jax.ShapeDtypeStruct((2, samples), jnp.float32)).shape

  assert shape(64000) == (2, 398, 64)
  for samples in (400, 559, 560, 1000, 16001):
    assert shape(samples) == (2, 1 + (samples - 400) // 160, 64)
  assert frontend.num_frames(44100, sample_rate=44100, window_ms=25.0, hop_ms=10.0) == 1 + (44100 - 1102) // 441


@pytest.mark.parametrize("reference", [ref_stft_magnitude, ref_stft_magnitude_shorttimefft])
def test_stft_matches_scipy(audio, reference):
  ref = reference(audio)
  out = np.asarray(frontend.stft_magnitude(audio))
  assert out.shape == ref.shape == (3, 98, 513)
  np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5 * ref.max())


def test_scipy_references_agree(audio):
  np.testing.assert_allclose(ref_stft_magnitude_shorttimefft(audio), ref_stft_magnitude(audio), atol=1e-9)


def test_log_spectrogram_matches_reference(audio):
  ref = np.log(ref_stft_magnitude(audio) + 1e-6)
  out = np.asarray(frontend.log_spectrogram(audio))
  assert out.dtype == np.float32
  np.testing.assert_allclose(out, ref, atol=2e-3)  # Where |STFT| ~ 1e-3, float32 rounding shows in the log.
  assert np.mean(np.abs(out - ref)) < 1e-5
  np.testing.assert_allclose(frontend.log_spectrogram(audio, log_offset=1.0), np.log1p(ref_stft_magnitude(audio)),
                             rtol=1e-5, atol=1e-5)


def test_mel_matrix_matches_formula():
  weights = frontend.mel_filterbank()
  assert weights.shape == (513, 64) and weights.dtype == np.float32
  np.testing.assert_allclose(weights, ref_mel_matrix(), atol=1e-6)
  assert not weights.flags.writeable
  for args in [dict(num_mel_bins=40, num_fft_bins=257, sample_rate=8000, lower_hz=0.0, upper_hz=4000.0),
               dict(num_mel_bins=128, num_fft_bins=1025, sample_rate=44100, lower_hz=20.0, upper_hz=20000.0)]:
    np.testing.assert_allclose(frontend.mel_filterbank(**args), ref_mel_matrix(**args), atol=1e-6)


def test_mel_matrix_matches_tensorflow():
  tf = pytest.importorskip("tensorflow")
  for args in [(64, 513, SR, 60.0, 7800.0), (40, 257, 8000, 0.0, 4000.0)]:
    tf_weights = tf.signal.linear_to_mel_weight_matrix(*args, dtype=tf.float64).numpy()
    np.testing.assert_allclose(frontend.mel_filterbank(*args), tf_weights, atol=1e-6)


def test_mel_bands_shape():
  weights = ref_mel_matrix()
  peaks = weights.argmax(axis=0)
  assert np.all(np.diff(peaks) >= 0)  # Band centres rise.
  assert np.all(weights.max(axis=0) <= 1.0) and np.all(weights.max(axis=0) > 0.5)
  freqs = np.arange(513) * SR / NFFT
  assert np.all(weights[(freqs < 60.0) | (freqs > 7800.0)] == 0.0)


def test_log_mel_matches_reference(audio):
  ref = np.log(ref_stft_magnitude(audio) @ ref_mel_matrix() + 1e-6)
  out = np.asarray(frontend.log_mel_spectrogram(audio))
  assert out.shape == (3, 98, 64) and out.dtype == np.float32
  np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_log_mel_other_settings(rng):
  audio = rng.standard_normal(8000)
  kwargs = dict(num_mel_bins=40, lower_hz=100.0, upper_hz=4000.0, log_offset=1e-3)
  ref = np.log(ref_stft_magnitude(audio) @ ref_mel_matrix(40, 513, SR, 100.0, 4000.0) + 1e-3)
  np.testing.assert_allclose(frontend.log_mel_spectrogram(audio, **kwargs), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fn,bins", [(frontend.stft_magnitude, 513), (frontend.log_spectrogram, 513),
                                     (frontend.log_mel_spectrogram, 64)])
def test_batch_shapes_and_jit(fn, bins, rng):
  audio = rng.standard_normal((2, 3, 4000)).astype(np.float32)
  out = fn(audio)
  assert out.shape == (2, 3, 23, bins) and out.dtype == jnp.float32
  np.testing.assert_allclose(jax.jit(fn)(audio), out, rtol=1e-5, atol=1e-5)
  for i in range(2):
    for j in range(3):
      np.testing.assert_allclose(out[i, j], fn(audio[i, j]), rtol=1e-5, atol=1e-5)
  assert fn(audio[0, 0]).shape == (23, bins)
  assert fn(np.zeros((0, 4000), np.float32)).shape == (0, 23, bins)


def test_jit_with_static_settings(audio):
  fn = jax.jit(functools.partial(frontend.log_mel_spectrogram, num_mel_bins=32, hop_ms=20.0))
  out = fn(audio)
  assert out.shape == (3, 1 + (16000 - 400) // 320, 32)
  np.testing.assert_allclose(out, frontend.log_mel_spectrogram(audio, num_mel_bins=32, hop_ms=20.0),
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32])
def test_float32_output(dtype):
  audio = jnp.zeros((2, 1000), dtype)
  for fn in (frontend.stft_magnitude, frontend.log_spectrogram, frontend.log_mel_spectrogram):
    assert fn(audio).dtype == jnp.float32


def test_float64_under_x64(x64, audio):
  out = frontend.log_mel_spectrogram(audio.astype(np.float64))
  assert out.dtype == jnp.float64
  ref = np.log(ref_stft_magnitude(audio) @ ref_mel_matrix() + 1e-6)
  np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)  # The mel matrix is float32.


def test_silence():
  np.testing.assert_allclose(frontend.log_spectrogram(jnp.zeros(1000)), np.log(1e-6), rtol=1e-6)
  np.testing.assert_allclose(frontend.log_mel_spectrogram(jnp.zeros(1000)), np.log(1e-6), rtol=1e-6)


@pytest.mark.parametrize("freq", [440.0, 1000.0, 3000.0, 7000.0])
def test_tone_peaks_at_its_bin(freq):
  t = np.arange(16000) / SR
  spec = np.asarray(frontend.log_spectrogram(np.sin(2 * np.pi * freq * t).astype(np.float32)))
  assert np.all(spec.argmax(axis=-1) == round(freq * NFFT / SR))
  if freq == 1000.0:  # On bin 64 exactly: the Hann window's peak gain is sum(window) / 2 = 100.
    np.testing.assert_allclose(np.exp(spec[:, 64]), 100.0, rtol=1e-3)


@pytest.mark.parametrize("band", [10, 20, 40, 60])
def test_tone_peaks_in_its_mel_band(band):
  edges = np.linspace(1127.0 * np.log1p(60.0 / 700.0), 1127.0 * np.log1p(7800.0 / 700.0), 66)
  center_hz = mel_to_hz(edges[band + 1])
  t = np.arange(16000) / SR
  spec = np.asarray(frontend.log_mel_spectrogram(np.sin(2 * np.pi * center_hz * t).astype(np.float32)))
  assert np.all(spec.argmax(axis=-1) == band)


def test_errors():
  audio = jnp.zeros(1000)
  with pytest.raises(ValueError, match="audio"):
    frontend.log_spectrogram(jnp.zeros(399))
  with pytest.raises(ValueError, match="audio"):
    frontend.log_mel_spectrogram(jnp.zeros((2, 0)))
  with pytest.raises(ValueError, match="audio"):
    frontend.stft_magnitude(jnp.zeros(1000, jnp.int32))
  with pytest.raises(ValueError, match="audio"):
    frontend.stft_magnitude(jnp.zeros(1000, jnp.complex64))
  with pytest.raises(ValueError, match="audio"):
    frontend.stft_magnitude(jnp.float32(1.0))
  with pytest.raises(ValueError, match="fft_size"):
    frontend.stft_magnitude(audio, fft_size=256)
  with pytest.raises(ValueError, match="fft_size"):
    frontend.stft_magnitude(audio, fft_size=512.0)
  for name in ("window_ms", "hop_ms", "sample_rate"):
    for bad in (0.0, -1.0, float("nan"), "25"):
      with pytest.raises(ValueError, match=name):
        frontend.log_spectrogram(audio, **{name: bad})
  with pytest.raises(ValueError, match="window_ms"):
    frontend.stft_magnitude(audio, window_ms=0.01)
  with pytest.raises(ValueError, match="log_offset"):
    frontend.log_spectrogram(audio, log_offset=0.0)
  with pytest.raises(ValueError, match="log_offset"):
    frontend.log_mel_spectrogram(audio, log_offset=-1.0)
  with pytest.raises(ValueError, match="lower_hz"):
    frontend.log_mel_spectrogram(audio, lower_hz=7800.0, upper_hz=7800.0)
  with pytest.raises(ValueError, match="lower_hz"):
    frontend.mel_filterbank(lower_hz=-1.0)
  with pytest.raises(ValueError, match="upper_hz"):
    frontend.log_mel_spectrogram(audio, upper_hz=8001.0)
  with pytest.raises(ValueError, match="upper_hz"):
    frontend.log_mel_spectrogram(audio, sample_rate=8000, upper_hz=7800.0)
  with pytest.raises(ValueError, match="num_mel_bins"):
    frontend.log_mel_spectrogram(audio, num_mel_bins=0)
  with pytest.raises(ValueError, match="num_samples"):
    frontend.num_frames(399)
