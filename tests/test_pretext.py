"""Tests of the pretext task: features, patches, shuffling, losses and accuracy."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shuffle_learn import pretext as pretext_lib
from shuffle_learn import ranking
from shuffle_learn.data import frontend
from shuffle_learn.data import permutations as perm_lib
from shuffle_learn.pretext import Features
from shuffle_learn.pretext import Pretext

NUM_AUDIO = 8000  # Half a second at 16 kHz: 48 frames.
RANKING_LOSSES = ("perturbed_fy", "fast_soft_rank", "mse")
# One shape for the ranking tests: eager JAX compiles each op once per shape.
N, BATCH, FY_SAMPLES = 5, 8, 7


def audio(rng, batch=4, num_samples=NUM_AUDIO, scale=1.0):
  """White noise: every mel band and FFT bin gets energy."""
  return (scale * rng.normal(size=(batch, num_samples))).astype(np.float32)


def is_permutation_rows(x):
  x = np.asarray(x)
  return np.array_equal(np.sort(x, axis=-1), np.broadcast_to(np.arange(x.shape[-1]), x.shape))


def random_perms(rng, batch, n):
  return rng.permuted(np.tile(np.arange(n, dtype=np.int32), (batch, 1)), axis=1)


def np_log_softmax_ce(logits, labels):
  logits = np.asarray(logits, np.float64)
  shifted = logits - logits.max(axis=-1, keepdims=True)
  log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
  return -log_probs[np.arange(len(labels)), labels]


def np_standardise(spec, eps=pretext_lib.NORMALIZE_EPS):
  spec = np.asarray(spec, np.float64)
  mean = spec.mean(axis=(-2, -1), keepdims=True)
  var = spec.var(axis=(-2, -1), keepdims=True)
  return (spec - mean) / np.sqrt(var + eps)


# Features.


@pytest.mark.parametrize("kind,bins", [("log_mel", 64), ("log_spectrogram", 513)])
@pytest.mark.parametrize("num_samples,frames", [(None, 48), (4000, 23)])
def test_features_shape(rng, kind, bins, num_samples, frames):
  features = Features(kind=kind, num_samples=num_samples)
  out = features(audio(rng))
  assert features.shape(NUM_AUDIO) == (bins, frames)
  assert out.shape == (4,) + features.shape(NUM_AUDIO)
  assert out.dtype == jnp.float32
  # Frames counted by the front end, independently of Features.shape.
  assert frames == frontend.num_frames(min(NUM_AUDIO, num_samples or NUM_AUDIO))


@pytest.mark.parametrize("kind", pretext_lib.FRONTENDS)
@pytest.mark.parametrize("num_samples", [None, 4000])
def test_features_orientation_is_frequency_time(rng, kind, num_samples):
  x = audio(rng)
  out = Features(kind=kind, num_samples=num_samples, normalization="none")(x)
  cut = x[..., :num_samples or NUM_AUDIO]
  spec = frontend.log_mel_spectrogram(cut) if kind == "log_mel" else frontend.log_spectrogram(cut)
  np.testing.assert_allclose(out, jnp.swapaxes(spec, -1, -2), rtol=1e-6, atol=1e-6)
  # The samples past num_samples play no part.
  if num_samples is not None:
    x2 = x.copy()
    x2[:, num_samples:] = 0.0
    np.testing.assert_array_equal(Features(kind=kind, num_samples=num_samples, normalization="none")(x2), out)


@pytest.mark.parametrize("kind", pretext_lib.FRONTENDS)
def test_features_example_normalization(rng, kind):
  x = audio(rng)
  raw = np.asarray(Features(kind=kind, normalization="none")(x))
  out = np.asarray(Features(kind=kind, normalization="example")(x))
  np.testing.assert_allclose(out.mean(axis=(-2, -1)), 0.0, atol=1e-4)
  np.testing.assert_allclose(out.std(axis=(-2, -1)), 1.0, atol=1e-4)
  np.testing.assert_allclose(out, np_standardise(raw), atol=1e-4)
  # Per example, not per batch: each example is standardised on its own.
  np.testing.assert_allclose(out[1:2], np.asarray(Features(kind=kind)(x[1:2])), atol=1e-5)


@pytest.mark.parametrize("kind", pretext_lib.FRONTENDS)
def test_features_gain_shifts_none_and_leaves_example_unchanged(rng, kind):
  x = audio(rng)  # Loud enough that the log offset of 1e-6 is negligible.
  none = Features(kind=kind, normalization="none")
  example = Features(kind=kind, normalization="example")
  np.testing.assert_allclose(none(10.0 * x) - none(x), np.log(10.0), atol=1e-3)
  np.testing.assert_allclose(example(10.0 * x), example(x), atol=1e-3)


# Patches.


@pytest.mark.parametrize("n_rows,n_cols", [(4, 1), (1, 5), (2, 3)])
def test_patches_match_numpy_slicing(rng, n_rows, n_cols):
  # 66 = 4 * 16 + 2 = 2 * 33 frequency rows, 53 = 5 * 10 + 3 = 3 * 17 + 2 frames:
  # the remainders (top of the spectrum, end of the note) are cropped.
  spec = rng.normal(size=(3, 66, 53)).astype(np.float32)
  out = np.asarray(Pretext(n_rows=n_rows, n_cols=n_cols).patches(jnp.asarray(spec)))
  h, w = 66 // n_rows, 53 // n_cols
  assert out.shape == (3, n_rows * n_cols, h, w)
  for i, (row, col) in enumerate(itertools.product(range(n_rows), range(n_cols))):  # Row-major.
    np.testing.assert_array_equal(out[:, i], spec[:, row * h:(row + 1) * h, col * w:(col + 1) * w])


def test_frequency_bands_lowest_first(rng):
  spec = rng.normal(size=(2, 66, 20)).astype(np.float32)
  bands = np.asarray(Pretext(n_rows=4, n_cols=1).patches(spec))
  np.testing.assert_array_equal(bands[:, 0], spec[:, :16])
  np.testing.assert_array_equal(bands[:, 3], spec[:, 48:64])  # Rows 64, 65 dropped.


# Shuffling.


@pytest.mark.parametrize("loss_name", RANKING_LOSSES)
def test_shuffle_ranking_labels_are_permutations(rng, loss_name):
  pretext = Pretext(n_rows=5, loss_name=loss_name)
  patches = jnp.asarray(rng.normal(size=(8, 5, 3, 7)).astype(np.float32))
  shuffled, labels = pretext.shuffle(jax.random.key(0), patches)
  labels = np.asarray(labels)
  assert labels.shape == (8, 5) and labels.dtype == np.int32
  assert is_permutation_rows(labels)
  assert shuffled.shape == patches.shape
  np_patches = np.asarray(patches)
  for b in range(8):
    for j in range(5):
      np.testing.assert_array_equal(shuffled[b, j], np_patches[b, labels[b, j]])
  # Examples get their own permutations (8 identical ones from 120 is ~1e-17).
  assert len({tuple(row) for row in labels}) > 1


def test_shuffle_is_a_function_of_the_key(rng):
  pretext = Pretext(n_rows=5, loss_name="mse")
  patches = jnp.asarray(rng.normal(size=(8, 5, 4)).astype(np.float32))
  s1, l1 = pretext.shuffle(jax.random.key(3), patches)
  s2, l2 = pretext.shuffle(jax.random.key(3), patches)
  s3, l3 = pretext.shuffle(jax.random.key(4), patches)
  np.testing.assert_array_equal(l1, l2)
  np.testing.assert_array_equal(s1, s2)
  assert not np.array_equal(l1, l3)
  assert not np.array_equal(s1, s3)


def test_shuffle_fixed_permutation_follows_the_set(rng):
  pretext = Pretext(n_rows=4, loss_name="fixed_permutation", num_permutations=10)
  perm_set = pretext.permutation_set()
  patches = jnp.asarray(rng.normal(size=(8, 4, 2, 3)).astype(np.float32))
  shuffled, labels = pretext.shuffle(jax.random.key(1), patches, jnp.asarray(perm_set))
  labels = np.asarray(labels)
  assert labels.shape == (8,) and labels.dtype == np.int32
  assert np.all((labels >= 0) & (labels < 10))
  perms = perm_set[labels]
  np.testing.assert_array_equal(shuffled, np.take_along_axis(np.asarray(patches), perms[:, :, None, None], axis=1))
  _, labels_again = pretext.shuffle(jax.random.key(1), patches, jnp.asarray(perm_set))
  _, labels_other = pretext.shuffle(jax.random.key(2), patches, jnp.asarray(perm_set))
  np.testing.assert_array_equal(labels_again, labels)
  assert not np.array_equal(labels_other, labels)


def test_shuffle_under_jit_and_unshuffle_restores(rng):
  pretext = Pretext(n_rows=4, n_cols=1, loss_name="perturbed_fy")
  features = Features(normalization="example")

  @jax.jit
  def step(key, x):
    patches = pretext.patches(features(x))
    shuffled, labels = pretext.shuffle(key, patches)
    return patches, shuffled, labels

  patches, shuffled, labels = step(jax.random.key(0), audio(rng))
  assert patches.shape == (4, 4, 16, 48)
  np.testing.assert_array_equal(perm_lib.unshuffle_patches(shuffled, labels), patches)


# Losses.


@pytest.mark.parametrize("loss_name", RANKING_LOSSES)
def test_ranking_loss_equals_direct_call(rng, loss_name):
  n, batch = N, BATCH
  # Not the defaults (10, 0.1, 1.0): the direct call checks that they are passed on.
  pretext = Pretext(n_rows=n, loss_name=loss_name, num_samples=FY_SAMPLES, sigma=0.3, regularization_strength=0.5)
  perms = random_perms(rng, batch, n)
  outputs = jnp.asarray(rng.normal(size=(batch, n)).astype(np.float32))
  key = jax.random.key(5)
  loss = pretext.loss(key, outputs, jnp.asarray(perms))
  assert loss.shape == (batch,) and loss.dtype == jnp.float32
  target = jnp.asarray(perms + 1, jnp.float32)
  if loss_name == "perturbed_fy":
    expected = ranking.fenchel_young_loss(key, outputs, target, num_samples=FY_SAMPLES, sigma=0.3)
  elif loss_name == "fast_soft_rank":
    expected = ranking.soft_rank_loss(outputs, target, regularization_strength=0.5)
  else:
    expected = ranking.rank_mse_loss(outputs, target)
    np.testing.assert_allclose(loss, 0.5 * np.sum((np.asarray(outputs) - (perms + 1)) ** 2, axis=-1), rtol=1e-6)
  np.testing.assert_allclose(loss, expected, rtol=1e-6, atol=1e-6)
  # Not a constant: the loss depends on the labels.
  assert not np.allclose(pretext.loss(key, outputs, jnp.asarray(perms[:, ::-1])), loss)


def test_perfect_scores_give_near_zero_ranking_losses(rng):
  n, batch = N, BATCH
  perms = random_perms(rng, batch, n)
  target = (perms + 1).astype(np.float32)
  key = jax.random.key(0)
  # Perturbed FY: with well separated scores the perturbed argmax is the target,
  # leaving sigma <target, mean Z>: mean 0, std 0.01 * sqrt(55 / 7) ~ 0.028.
  fy = Pretext(n_rows=n, loss_name="perturbed_fy", num_samples=FY_SAMPLES, sigma=0.01)
  np.testing.assert_allclose(fy.loss(key, jnp.asarray(100 * target), jnp.asarray(perms)), 0.0, atol=0.15)
  # Reversed scores give a large loss.
  assert np.all(np.asarray(fy.loss(key, jnp.asarray(-100 * target), jnp.asarray(perms))) > 100)
  # Fast soft rank: soft ranks of scores separated by >> strength are the hard ranks.
  fsr = Pretext(n_rows=n, loss_name="fast_soft_rank", regularization_strength=0.01)
  np.testing.assert_allclose(fsr.loss(key, jnp.asarray(target), jnp.asarray(perms)), 0.0, atol=1e-6)
  assert np.all(np.asarray(fsr.loss(key, jnp.asarray(-target), jnp.asarray(perms))) > 1)
  # MSE: exactly 0 for scores equal to the target ranks.
  mse = Pretext(n_rows=n, loss_name="mse")
  np.testing.assert_array_equal(mse.loss(key, jnp.asarray(target), jnp.asarray(perms)), 0.0)


def test_fixed_permutation_loss_is_cross_entropy(rng):
  k, batch = 12, 8
  pretext = Pretext(n_rows=4, loss_name="fixed_permutation", num_permutations=k)
  logits = rng.normal(size=(batch, k)).astype(np.float32) * 3
  labels = rng.integers(0, k, size=batch).astype(np.int32)
  loss = pretext.loss(jax.random.key(0), jnp.asarray(logits), jnp.asarray(labels))
  assert loss.shape == (batch,) and loss.dtype == jnp.float32
  np.testing.assert_allclose(loss, np_log_softmax_ce(logits, labels), rtol=1e-5, atol=1e-5)


def test_loss_casts_half_precision_outputs_to_float32(rng):
  perms = jnp.asarray(random_perms(rng, BATCH, N))
  outputs = jnp.asarray(rng.normal(size=(BATCH, N)), jnp.bfloat16)
  pretext = Pretext(n_rows=N, loss_name="mse")
  loss = pretext.loss(jax.random.key(0), outputs, perms)
  assert loss.dtype == jnp.float32
  np.testing.assert_allclose(loss, pretext.loss(jax.random.key(0), outputs.astype(jnp.float32), perms), rtol=1e-6)


def test_loss_and_accuracy_under_jit_equal_eager(rng):
  pretext = Pretext(n_rows=N, loss_name="perturbed_fy", num_samples=FY_SAMPLES)
  perms = jnp.asarray(random_perms(rng, BATCH, N))
  outputs = jnp.asarray(rng.normal(size=(BATCH, N)).astype(np.float32))
  key = jax.random.key(2)
  # One compilation, as in a train step with the Pretext closed over.
  loss, accuracy = jax.jit(lambda k, o, l: (pretext.loss(k, o, l), pretext.accuracy(o, l)))(key, outputs, perms)
  np.testing.assert_allclose(loss, pretext.loss(key, outputs, perms), rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(accuracy, pretext.accuracy(outputs, perms))


# Accuracy.


@pytest.mark.parametrize("loss_name", RANKING_LOSSES)
def test_ranking_accuracy_perfect_and_against_numpy(rng, loss_name):
  n, batch = N, BATCH
  pretext = Pretext(n_rows=n, loss_name=loss_name)
  perms = random_perms(rng, batch, n)
  perfect = pretext.accuracy(jnp.asarray(perms + 1, jnp.float32), jnp.asarray(perms))
  assert perfect.shape == (batch,) and perfect.dtype == jnp.float32
  np.testing.assert_array_equal(perfect, 1.0)
  # Random scores, and noisy versions of the target for accuracies between 0 and 1.
  for scores in (rng.normal(size=(batch, n)), perms + rng.normal(scale=1.5, size=(batch, n))):
    scores = scores.astype(np.float32)
    expected = np.mean(np.argsort(np.argsort(scores, axis=-1), axis=-1) == perms, axis=-1)
    np.testing.assert_allclose(pretext.accuracy(jnp.asarray(scores), jnp.asarray(perms)), expected, rtol=1e-6)
  assert len(np.unique(expected)) > 2  # Partial credit is exercised.


def test_fixed_permutation_accuracy(rng):
  k, n, batch = 10, 4, 8
  pretext = Pretext(n_rows=n, loss_name="fixed_permutation", num_permutations=k)
  perm_set = pretext.permutation_set()
  labels = rng.integers(0, k, size=batch).astype(np.int32)
  logits = rng.normal(size=(batch, k)).astype(np.float32)
  # The arg-max on the true label: 1.
  right = logits.copy()
  right[np.arange(batch), labels] = 10.0
  np.testing.assert_array_equal(pretext.accuracy(jnp.asarray(right), jnp.asarray(labels), jnp.asarray(perm_set)), 1.0)
  # The arg-max on another index: the positions where the two permutations agree.
  predicted = (labels + 1 + rng.integers(0, k - 1, size=batch)) % k
  assert np.all(predicted != labels)
  wrong = logits.copy()
  wrong[np.arange(batch), predicted] = 10.0
  expected = np.mean(perm_set[predicted] == perm_set[labels], axis=-1)
  accuracy = pretext.accuracy(jnp.asarray(wrong), jnp.asarray(labels), jnp.asarray(perm_set))
  assert accuracy.shape == (batch,) and accuracy.dtype == jnp.float32
  np.testing.assert_allclose(accuracy, expected, rtol=1e-6)
  assert np.all(expected < 1.0)  # Distinct permutations never agree everywhere.


# Outputs and the permutation set.


@pytest.mark.parametrize("loss_name", RANKING_LOSSES)
def test_num_outputs_ranking(loss_name):
  assert Pretext(n_rows=2, n_cols=3, loss_name=loss_name, num_permutations=1000).num_outputs == 6
  assert Pretext(n_rows=10, loss_name=loss_name).num_outputs == 10


def test_num_outputs_and_permutation_set_fixed_permutation():
  pretext = Pretext(n_rows=5, loss_name="fixed_permutation", num_permutations=24, permutation_seed=3)
  assert pretext.num_outputs == 24
  perm_set = pretext.permutation_set()
  assert perm_set.shape == (24, 5) and perm_set.dtype == np.int32
  assert is_permutation_rows(perm_set)
  assert len({tuple(row) for row in perm_set}) == 24
  np.testing.assert_array_equal(perm_set, perm_lib.hamming_permutation_set(5, 24, seed=3))
  np.testing.assert_array_equal(pretext.permutation_set(), perm_set)  # Deterministic.
  # All n! permutations are allowed.
  full = Pretext(n_rows=3, loss_name="fixed_permutation", num_permutations=6).permutation_set()
  assert sorted(map(tuple, full)) == list(itertools.permutations(range(3)))


# Bad arguments.


@pytest.mark.parametrize("kwargs,match", [
    (dict(loss_name="cross_entropy"), "loss must be one of"),
    (dict(n_rows=1, n_cols=1), "at least 2 patches"),
    (dict(n_rows=0, n_cols=5), "at least 2 patches"),
    (dict(n_rows=3, loss_name="fixed_permutation", num_permutations=math.factorial(3) + 1), r"\[2, 6\]"),
    (dict(n_rows=3, loss_name="fixed_permutation", num_permutations=1), "num_permutations must be in"),
    (dict(n_rows=3, loss_name="fixed_permutation", num_permutations=0), "got 0"),
])
def test_bad_arguments_raise_value_error(kwargs, match):
  with pytest.raises(ValueError, match=match):
    Pretext(**kwargs)


def test_num_permutations_ignored_for_ranking_losses():
  # k > n! only matters for fixed_permutation.
  assert Pretext(n_rows=3, loss_name="mse", num_permutations=100).num_outputs == 3


@pytest.mark.parametrize("kwargs,message", [
    (dict(kind="mfcc"), "kind must be one of"),
    (dict(normalization="global"), "normalization must be one of"),
    (dict(num_samples=0), "num_samples must be >= 1"),
])
def test_features_reject_bad_arguments(kwargs, message):
  with pytest.raises(ValueError, match=message):
    Features(**kwargs)
