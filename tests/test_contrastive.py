"""The peer method's losses (`shuffle_learn.pretext.contrastive`) against NumPy references and brute force."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

from shuffle_learn.data import frontend
from shuffle_learn.pretext import contrastive


@pytest.fixture
def rng():
  return np.random.default_rng(0)


def _log_sum_exp(x):
  x = np.asarray(x, np.float64)
  return x.max() + np.log(np.sum(np.exp(x - x.max())))


def test_bilinear_and_cosine_similarity_match_loops(rng):
  a, b, w = rng.standard_normal((4, 6)), rng.standard_normal((5, 6)), rng.standard_normal((6, 6))
  got = np.asarray(contrastive.bilinear_similarity(jnp.asarray(a), jnp.asarray(b), jnp.asarray(w)))
  expected = [[a[i] @ w @ b[j] for j in range(5)] for i in range(4)]
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
  got = np.asarray(contrastive.cosine_similarity(jnp.asarray(a), jnp.asarray(b)))
  expected = [[a[i] @ b[j] / np.linalg.norm(a[i]) / np.linalg.norm(b[j]) / 0.2 for j in range(5)] for i in range(4)]
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
  # Leading axes are batched: frames of every example.
  a3, b3 = rng.standard_normal((2, 3, 6)), rng.standard_normal((2, 3, 6))
  got = np.asarray(contrastive.bilinear_similarity(jnp.asarray(a3), jnp.asarray(b3), jnp.asarray(w)))
  np.testing.assert_allclose(got[1, 2, 0], a3[1, 2] @ w @ b3[1, 0], rtol=1e-5)
  with pytest.raises(ValueError, match="^temperature"):
    contrastive.cosine_similarity(jnp.asarray(a), jnp.asarray(b), temperature=0.0)


def test_clip_loss_is_the_cross_entropy_of_each_anchor_against_the_batch(rng):
  z_a, z_p, w = rng.standard_normal((6, 4)), rng.standard_normal((6, 4)), 0.5 * rng.standard_normal((4, 4))
  similarity = contrastive.bilinear_similarity(jnp.asarray(z_a), jnp.asarray(z_p), jnp.asarray(w))
  s = z_a @ w @ z_p.T  # NumPy, float64.
  expected = np.mean([-(s[i, i] - _log_sum_exp(s[i])) for i in range(6)])  # Eq. 2: x^- in X^-(x) u {x^+}.
  np.testing.assert_allclose(float(contrastive.clip_loss(similarity)), expected, rtol=1e-5)
  # A batch whose positives are far more similar than its negatives has a loss near 0; shuffled, near log(batch).
  np.testing.assert_allclose(float(contrastive.clip_loss(jnp.eye(6) * 50.0)), 0.0, atol=1e-6)
  np.testing.assert_allclose(float(contrastive.clip_loss(jnp.zeros((6, 6)))), np.log(6), rtol=1e-6)
  with pytest.raises(ValueError, match="square"):
    contrastive.clip_loss(jnp.zeros((6, 5)))


@pytest.mark.parametrize("num_frames,m", [(1, 0), (3, 0), (5, 1), (6, 2), (4, 3)])
def test_frame_positive_mask_is_the_window_of_tau(num_frames, m):
  # Brute force from the paper's T'' = {tau : |tau| <= m} (2m + 1 offsets), clipped to the clip's frames.
  expected = np.zeros((num_frames, num_frames), bool)
  for t, tau in itertools.product(range(num_frames), range(-m, m + 1)):
    if 0 <= t + tau < num_frames:
      expected[t, t + tau] = True
  np.testing.assert_array_equal(contrastive.frame_positive_mask(num_frames, m), expected)


def test_frame_loss_matches_eq_4(rng):
  s = rng.standard_normal((3, 5, 5))
  for m in (0, 1, 2):
    mask = contrastive.frame_positive_mask(5, m)
    terms = [_log_sum_exp(s[n, t][mask[t]]) - _log_sum_exp(s[n, t]) for n in range(3) for t in range(5)]
    expected = -np.mean(terms) / (2 * m + 1)
    np.testing.assert_allclose(float(contrastive.frame_loss(jnp.asarray(s), m)), expected, rtol=1e-5)
  # Every frame a positive: nothing to tell apart, the loss is 0.
  np.testing.assert_allclose(float(contrastive.frame_loss(jnp.asarray(s), 4)), 0.0, atol=1e-6)
  with pytest.raises(ValueError, match="batch, frames, frames"):
    contrastive.frame_loss(jnp.zeros((5, 5)), 1)


def test_pitch_loss_matches_eq_6(rng):
  shifted, anchor, ratio = rng.standard_normal((4, 3)), rng.standard_normal((4, 3)), rng.uniform(0.8, 1.2, 4)
  expected = np.mean(np.sum((shifted - anchor - 12 * np.log2(ratio)[:, None]) ** 2, axis=-1))
  got = contrastive.pitch_loss(jnp.asarray(shifted), jnp.asarray(anchor), jnp.asarray(ratio))
  np.testing.assert_allclose(float(got), expected, rtol=1e-5)
  # A head that reads the shift exactly has no loss; no shift is 0 semitones.
  perfect = anchor + 12 * np.log2(ratio)[:, None]
  assert float(contrastive.pitch_loss(jnp.asarray(perfect), jnp.asarray(anchor), jnp.asarray(ratio))) < 1e-8
  assert float(contrastive.pitch_loss(jnp.asarray(anchor), jnp.asarray(anchor), jnp.ones(4))) == 0.0


@pytest.mark.parametrize("ratio", [0.8, 0.9, 1.1, 1.2])
@pytest.mark.parametrize("frequency", [440.0, 1000.0, 2500.0])
def test_shift_moves_a_pure_tone_peak_by_the_ratio(ratio, frequency):
  t = np.arange(16000) / 16000
  magnitudes = frontend.stft_magnitude(jnp.asarray(np.sin(2 * np.pi * frequency * t), jnp.float32))
  bin_width = 16000 / 1024
  peak = int(np.argmax(np.asarray(magnitudes).mean(axis=0)))
  assert abs(peak - frequency / bin_width) <= 0.5  # The tone's own bin.
  shifted = np.asarray(contrastive.shift_spectrum(magnitudes, ratio))
  assert shifted.shape == magnitudes.shape
  new_peak = int(np.argmax(shifted.mean(axis=0)))
  assert abs(new_peak - frequency * ratio / bin_width) <= 1.0  # Moved by the ratio, to a bin.
  # The same tone rendered at the shifted frequency peaks in the same bin, within one.
  reference = frontend.stft_magnitude(jnp.asarray(np.sin(2 * np.pi * frequency * ratio * t), jnp.float32))
  assert abs(new_peak - int(np.argmax(np.asarray(reference).mean(axis=0)))) <= 1


def test_shift_is_linear_interpolation_per_example(rng):
  magnitudes = rng.uniform(0, 1, (2, 3, 9)).astype(np.float32)
  ratios = np.array([1.0, 1.5], np.float32)
  shifted = np.asarray(contrastive.shift_spectrum(jnp.asarray(magnitudes), jnp.asarray(ratios)))
  np.testing.assert_array_equal(shifted[0], magnitudes[0])  # Ratio 1: the input.
  bins = np.arange(9)
  for frame in range(3):
    expected = np.interp(bins / 1.5, bins, magnitudes[1, frame])  # NumPy's linear interpolation.
    np.testing.assert_allclose(shifted[1, frame], expected, rtol=1e-6)
  # Shifting down reads beyond the last bin: those output bins are 0.
  down = np.asarray(contrastive.shift_spectrum(jnp.asarray(magnitudes[0]), 0.5))
  np.testing.assert_array_equal(down[:, 5:], 0.0)
  np.testing.assert_allclose(down[:, :5], [np.interp(bins[:5] / 0.5, bins, row) for row in magnitudes[0]], rtol=1e-6)
