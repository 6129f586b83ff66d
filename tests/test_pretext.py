"""Tests of the pretext task: the audio input, shuffling, the objectives' losses and accuracy."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import tiny
from shuffle_learn import pretext as pretext_lib
from shuffle_learn import ranking
from shuffle_learn.data import frontend
from shuffle_learn.data import permutations as perm_lib
from shuffle_learn.pretext import audio as audio_lib
from shuffle_learn.pretext import objectives
from shuffle_learn.pretext import AudioInput
from shuffle_learn.pretext import Pretext

NUM_AUDIO = 8000  # Half a second at 16 kHz: 48 frames.
SECONDS = NUM_AUDIO / 16000
RANKING_LOSSES = ("perturbed_fy", "fast_soft_rank", "mse")
# One shape for the ranking tests: eager JAX compiles each op once per shape.
N, BATCH, FY_PERTURBATIONS = 5, 8, 7


def audio(rng, batch=4, num_samples=NUM_AUDIO, scale=1.0):
  """White noise: every mel band and FFT bin gets energy."""
  return (scale * rng.normal(size=(batch, num_samples))).astype(np.float32)


def make_pretext(loss_name, n_rows=N, n_cols=1, **objective_kwargs):
  """The audio pretext task with an ``n_rows x n_cols`` grid and the objective ``loss_name``."""
  input_ = AudioInput(seconds=SECONDS, n_rows=n_rows, n_cols=n_cols)
  return Pretext(input_, pretext_lib.OBJECTIVES[loss_name](num_patches=n_rows * n_cols, **objective_kwargs))


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


def np_standardise(spec, eps=audio_lib.NORMALIZE_EPS):
  spec = np.asarray(spec, np.float64)
  mean = spec.mean(axis=(-2, -1), keepdims=True)
  var = spec.var(axis=(-2, -1), keepdims=True)
  return (spec - mean) / np.sqrt(var + eps)


# The audio input: spectrogram.


@pytest.mark.parametrize("kind,bins", [("log_mel", 64), ("log_spectrogram", 513)])
@pytest.mark.parametrize("seconds,frames", [(SECONDS, 48), (0.25, 23)])
def test_spectrogram_shape(rng, kind, bins, seconds, frames):
  input_ = AudioInput(kind=kind, seconds=seconds)
  out = input_.spectrogram(audio(rng))
  assert input_.num_samples == round(seconds * 16000)
  assert input_.spectrogram_shape == (bins, frames)
  assert out.shape == (4,) + input_.spectrogram_shape
  assert out.dtype == jnp.float32
  # Frames counted by the front end, independently of AudioInput.spectrogram_shape.
  assert frames == frontend.num_frames(round(seconds * 16000))


@pytest.mark.parametrize("kind", audio_lib.FRONTENDS)
@pytest.mark.parametrize("seconds", [SECONDS, 0.25])
def test_spectrogram_orientation_is_frequency_time(rng, kind, seconds):
  x = audio(rng)
  input_ = AudioInput(kind=kind, seconds=seconds, normalization="none")
  out = input_.spectrogram(x)
  cut = x[..., :round(seconds * 16000)]
  spec = frontend.log_mel_spectrogram(cut) if kind == "log_mel" else frontend.log_spectrogram(cut)
  np.testing.assert_allclose(out, jnp.swapaxes(spec, -1, -2), rtol=1e-6, atol=1e-6)
  # The samples past num_samples play no part.
  if input_.num_samples < NUM_AUDIO:
    x2 = x.copy()
    x2[:, input_.num_samples:] = 0.0
    np.testing.assert_array_equal(input_.spectrogram(x2), out)


@pytest.mark.parametrize("kind", audio_lib.FRONTENDS)
def test_spectrogram_example_normalization(rng, kind):
  x = audio(rng)
  raw = np.asarray(AudioInput(kind=kind, seconds=SECONDS, normalization="none").spectrogram(x))
  example = AudioInput(kind=kind, seconds=SECONDS, normalization="example")
  out = np.asarray(example.spectrogram(x))
  np.testing.assert_allclose(out.mean(axis=(-2, -1)), 0.0, atol=1e-4)
  np.testing.assert_allclose(out.std(axis=(-2, -1)), 1.0, atol=1e-4)
  np.testing.assert_allclose(out, np_standardise(raw), atol=1e-4)
  # Per example, not per batch: each example is standardised on its own.
  np.testing.assert_allclose(out[1:2], np.asarray(example.spectrogram(x[1:2])), atol=1e-5)


@pytest.mark.parametrize("kind", audio_lib.FRONTENDS)
def test_spectrogram_gain_shifts_none_and_leaves_example_unchanged(rng, kind):
  x = audio(rng)  # Loud enough that the log offset of 1e-6 is negligible.
  none = AudioInput(kind=kind, seconds=SECONDS, normalization="none")
  example = AudioInput(kind=kind, seconds=SECONDS, normalization="example")
  np.testing.assert_allclose(none.spectrogram(10.0 * x) - none.spectrogram(x), np.log(10.0), atol=1e-3)
  np.testing.assert_allclose(example.spectrogram(10.0 * x), example.spectrogram(x), atol=1e-3)


def test_host_batch_and_dummy_keep_the_first_seconds(rng):
  input_ = AudioInput(seconds=0.25)
  notes = rng.normal(size=(3, NUM_AUDIO))  # float64, longer than 0.25 s.
  raw = input_.host({"audio": notes, "pitch": np.zeros(3, np.int32)})
  assert raw.dtype == np.float32
  np.testing.assert_array_equal(raw, notes[:, :4000].astype(np.float32))
  assert input_.dummy(2).shape == (2, 4000) and input_.dummy().dtype == np.float32
  assert input_.raw_key == "audio"


# The audio input: patches.

# 66 = 4 * 16 + 2 = 2 * 33 mel bins, 53 = 5 * 10 + 3 = 3 * 17 + 2 frames (8720
# samples): the remainders (top of the spectrum, end of the note) are cropped.
PATCH_BINS, PATCH_SAMPLES, PATCH_FRAMES = 66, 8720, 53


@pytest.mark.parametrize("n_rows,n_cols", [(4, 1), (1, 5), (2, 3)])
def test_patches_match_numpy_slicing(rng, n_rows, n_cols):
  input_ = AudioInput(seconds=PATCH_SAMPLES / 16000, num_mel_bins=PATCH_BINS, n_rows=n_rows, n_cols=n_cols)
  x = audio(rng, batch=3, num_samples=PATCH_SAMPLES)
  spec = np.asarray(input_.spectrogram(x))
  assert spec.shape == (3, PATCH_BINS, PATCH_FRAMES)
  out = np.asarray(input_(x))
  h, w = PATCH_BINS // n_rows, PATCH_FRAMES // n_cols
  assert out.shape == (3, n_rows * n_cols, h, w, 1) and out.dtype == np.float32
  assert input_.patch_shape == (h, w, 1)
  for i, (row, col) in enumerate(itertools.product(range(n_rows), range(n_cols))):  # Row-major.
    np.testing.assert_array_equal(out[:, i, ..., 0], spec[:, row * h:(row + 1) * h, col * w:(col + 1) * w])
  # The pretext task's patches are the input's; the key changes nothing (no augmentation).
  pretext = Pretext(input_, objectives.RankMSE(num_patches=n_rows * n_cols))
  np.testing.assert_array_equal(pretext.patches(x, jax.random.key(0)), out)


def test_frequency_bands_lowest_first(rng):
  input_ = AudioInput(seconds=PATCH_SAMPLES / 16000, num_mel_bins=PATCH_BINS, n_rows=4, n_cols=1)
  x = audio(rng, batch=2, num_samples=PATCH_SAMPLES)
  spec = np.asarray(input_.spectrogram(x))
  bands = np.asarray(input_(x))[..., 0]
  np.testing.assert_array_equal(bands[:, 0], spec[:, :16])
  np.testing.assert_array_equal(bands[:, 3], spec[:, 48:64])  # Rows 64, 65 dropped.


# Shuffling.


@pytest.mark.parametrize("loss_name", RANKING_LOSSES)
def test_shuffle_ranking_labels_are_permutations(rng, loss_name):
  pretext = make_pretext(loss_name, n_rows=5)
  patches = jnp.asarray(rng.normal(size=(8, 5, 3, 7, 1)).astype(np.float32))
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
  pretext = make_pretext("mse", n_rows=5)
  patches = jnp.asarray(rng.normal(size=(8, 5, 4)).astype(np.float32))
  s1, l1 = pretext.shuffle(jax.random.key(3), patches)
  s2, l2 = pretext.shuffle(jax.random.key(3), patches)
  s3, l3 = pretext.shuffle(jax.random.key(4), patches)
  np.testing.assert_array_equal(l1, l2)
  np.testing.assert_array_equal(s1, s2)
  assert not np.array_equal(l1, l3)
  assert not np.array_equal(s1, s3)


def test_shuffle_fixed_permutation_follows_the_set(rng):
  pretext = make_pretext("fixed_permutation", n_rows=4, num_permutations=10)
  perm_set = pretext.objective.permutation_set
  patches = jnp.asarray(rng.normal(size=(8, 4, 2, 3)).astype(np.float32))
  shuffled, labels = pretext.shuffle(jax.random.key(1), patches)
  labels = np.asarray(labels)
  assert labels.shape == (8,) and labels.dtype == np.int32
  assert np.all((labels >= 0) & (labels < 10))
  perms = perm_set[labels]
  np.testing.assert_array_equal(shuffled, np.take_along_axis(np.asarray(patches), perms[:, :, None, None], axis=1))
  _, labels_again = pretext.shuffle(jax.random.key(1), patches)
  _, labels_other = pretext.shuffle(jax.random.key(2), patches)
  np.testing.assert_array_equal(labels_again, labels)
  assert not np.array_equal(labels_other, labels)


def test_shuffle_under_jit_and_unshuffle_restores(rng):
  pretext = make_pretext("perturbed_fy", n_rows=4, n_cols=1)

  @jax.jit
  def step(key, x):
    patches = pretext.patches(x)
    shuffled, labels = pretext.shuffle(key, patches)
    return patches, shuffled, labels

  x = audio(rng)
  patches, shuffled, labels = step(jax.random.key(0), x)
  assert patches.shape == (4, 4, 16, 48, 1)
  np.testing.assert_array_equal(perm_lib.unshuffle_patches(shuffled, labels), patches)
  np.testing.assert_allclose(patches, pretext.patches(x), rtol=1e-5, atol=1e-5)  # jit equals eager.


# Losses.


@pytest.mark.parametrize("loss_name", RANKING_LOSSES)
def test_ranking_loss_equals_direct_call(rng, loss_name):
  n, batch = N, BATCH
  # Not the defaults (10, 2.0, 1.0): the direct call checks that they are passed on.
  kwargs = {"perturbed_fy": dict(num_perturbations=FY_PERTURBATIONS, sigma=0.3),
            "fast_soft_rank": dict(regularization_strength=0.5), "mse": {}}[loss_name]
  pretext = make_pretext(loss_name, n_rows=n, **kwargs)
  perms = random_perms(rng, batch, n)
  outputs = jnp.asarray(rng.normal(size=(batch, n)).astype(np.float32))
  key = jax.random.key(5)
  loss = pretext.loss(key, outputs, jnp.asarray(perms))
  assert loss.shape == (batch,) and loss.dtype == jnp.float32
  target = jnp.asarray(perms + 1, jnp.float32)
  if loss_name == "perturbed_fy":
    expected = ranking.fenchel_young_loss(key, outputs, target, num_perturbations=FY_PERTURBATIONS, sigma=0.3)
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
  fy = make_pretext("perturbed_fy", n_rows=n, num_perturbations=FY_PERTURBATIONS, sigma=0.01)
  np.testing.assert_allclose(fy.loss(key, jnp.asarray(100 * target), jnp.asarray(perms)), 0.0, atol=0.15)
  # Reversed scores give a large loss.
  assert np.all(np.asarray(fy.loss(key, jnp.asarray(-100 * target), jnp.asarray(perms))) > 100)
  # Fast soft rank: soft ranks of scores separated by >> strength are the hard ranks.
  fsr = make_pretext("fast_soft_rank", n_rows=n, regularization_strength=0.01)
  np.testing.assert_allclose(fsr.loss(key, jnp.asarray(target), jnp.asarray(perms)), 0.0, atol=1e-6)
  assert np.all(np.asarray(fsr.loss(key, jnp.asarray(-target), jnp.asarray(perms))) > 1)
  # MSE: exactly 0 for scores equal to the target ranks.
  mse = make_pretext("mse", n_rows=n)
  np.testing.assert_array_equal(mse.loss(key, jnp.asarray(target), jnp.asarray(perms)), 0.0)


def test_fixed_permutation_loss_is_cross_entropy(rng):
  k, batch = 12, 8
  pretext = make_pretext("fixed_permutation", n_rows=4, num_permutations=k)
  logits = rng.normal(size=(batch, k)).astype(np.float32) * 3
  labels = rng.integers(0, k, size=batch).astype(np.int32)
  loss = pretext.loss(jax.random.key(0), jnp.asarray(logits), jnp.asarray(labels))
  assert loss.shape == (batch,) and loss.dtype == jnp.float32
  np.testing.assert_allclose(loss, np_log_softmax_ce(logits, labels), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("loss_name", ["mse", "fixed_permutation"])
def test_loss_casts_half_precision_outputs_to_float32(rng, loss_name):
  if loss_name == "fixed_permutation":
    pretext = make_pretext(loss_name, n_rows=N, num_permutations=12)
    labels = jnp.asarray(rng.integers(0, 12, size=BATCH), jnp.int32)
  else:
    pretext = make_pretext(loss_name, n_rows=N)
    labels = jnp.asarray(random_perms(rng, BATCH, N))
  outputs = jnp.asarray(rng.normal(size=(BATCH, pretext.num_outputs)), jnp.bfloat16)
  loss = pretext.loss(jax.random.key(0), outputs, labels)
  assert loss.dtype == jnp.float32
  np.testing.assert_allclose(loss, pretext.loss(jax.random.key(0), outputs.astype(jnp.float32), labels), rtol=1e-6)


def test_loss_and_accuracy_under_jit_equal_eager(rng):
  pretext = make_pretext("perturbed_fy", n_rows=N, num_perturbations=FY_PERTURBATIONS)
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
  pretext = make_pretext(loss_name, n_rows=n)
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
  pretext = make_pretext("fixed_permutation", n_rows=n, num_permutations=k)
  perm_set = pretext.objective.permutation_set
  labels = rng.integers(0, k, size=batch).astype(np.int32)
  logits = rng.normal(size=(batch, k)).astype(np.float32)
  # The arg-max on the true label: 1.
  right = logits.copy()
  right[np.arange(batch), labels] = 10.0
  np.testing.assert_array_equal(pretext.accuracy(jnp.asarray(right), jnp.asarray(labels)), 1.0)
  # The arg-max on another index: the positions where the two permutations agree.
  predicted = (labels + 1 + rng.integers(0, k - 1, size=batch)) % k
  assert np.all(predicted != labels)
  wrong = logits.copy()
  wrong[np.arange(batch), predicted] = 10.0
  expected = np.mean(perm_set[predicted] == perm_set[labels], axis=-1)
  accuracy = pretext.accuracy(jnp.asarray(wrong), jnp.asarray(labels))
  assert accuracy.shape == (batch,) and accuracy.dtype == jnp.float32
  np.testing.assert_allclose(accuracy, expected, rtol=1e-6)
  assert np.all(expected < 1.0)  # Distinct permutations never agree everywhere.


# Outputs and the permutation set.


@pytest.mark.parametrize("loss_name", RANKING_LOSSES)
def test_num_outputs_ranking(loss_name):
  assert make_pretext(loss_name, n_rows=2, n_cols=3).num_outputs == 6
  assert make_pretext(loss_name, n_rows=10).num_outputs == 10
  assert make_pretext(loss_name, n_rows=10).num_patches == 10


def test_num_outputs_and_permutation_set_fixed_permutation():
  pretext = make_pretext("fixed_permutation", n_rows=5, num_permutations=24, seed=3)
  assert pretext.num_outputs == 24
  perm_set = pretext.objective.permutation_set
  assert perm_set.shape == (24, 5) and perm_set.dtype == np.int32
  assert is_permutation_rows(perm_set)
  assert len({tuple(row) for row in perm_set}) == 24
  np.testing.assert_array_equal(perm_set, perm_lib.hamming_permutation_set(5, 24, seed=3))
  np.testing.assert_array_equal(pretext.objective.permutation_set, perm_set)  # Deterministic.
  # All n! permutations are allowed.
  full = objectives.FixedPermutation(num_patches=3, num_permutations=6).permutation_set
  assert sorted(map(tuple, full)) == list(itertools.permutations(range(3)))


def test_from_config_builds_the_configured_task():
  config = tiny.get_config()
  config.pretext.loss = "fixed_permutation"
  config.pretext.num_permutations = 24
  config.seed = 3
  pretext = pretext_lib.from_config(config)
  assert pretext.input == AudioInput(seconds=config.features.seconds, num_mel_bins=config.features.num_mel_bins,
                                     n_rows=config.pretext.n_rows, n_cols=config.pretext.n_cols)
  assert pretext.objective == objectives.FixedPermutation(num_patches=4, num_permutations=24, seed=3)
  assert pretext.num_outputs == 24


def test_num_permutations_ignored_for_ranking_losses():
  # k > n! only matters for fixed_permutation.
  config = tiny.get_config()
  config.pretext.n_rows = 3
  config.pretext.loss = "mse"
  config.pretext.num_permutations = 100
  assert pretext_lib.from_config(config).num_outputs == 3


# Bad arguments.


@pytest.mark.parametrize("make,match", [
    (lambda: objectives.FixedPermutation(num_patches=3, num_permutations=math.factorial(3) + 1),
     r"^num_permutations must be an integer in \[2, 6\], got 7"),
    (lambda: objectives.FixedPermutation(num_patches=3, num_permutations=1), r"^num_permutations must be .* got 1"),
    (lambda: objectives.FixedPermutation(num_patches=3, num_permutations=0), r"^num_permutations must be .* got 0"),
    (lambda: objectives.RankMSE(num_patches=1), r"^num_patches must be an integer >= 2"),
    (lambda: objectives.PerturbedFY(num_patches=4, sigma=0.0), r"^sigma must be a finite number > 0"),
    (lambda: objectives.PerturbedFY(num_patches=4, num_perturbations=0), r"^num_perturbations must be"),
    (lambda: objectives.FastSoftRank(num_patches=4, regularization_strength=-1.0),
     r"^regularization_strength must be a finite number > 0"),
    (lambda: Pretext(AudioInput(n_rows=4), objectives.RankMSE(num_patches=5)), r"objective is built for 5 patches"),
])
def test_bad_objectives_raise_value_error(make, match):
  with pytest.raises(ValueError, match=match):
    make()


@pytest.mark.parametrize("kwargs,match", [
    (dict(kind="mfcc"), r"^kind must be one of"),
    (dict(normalization="global"), r"^normalization must be one of"),
    (dict(seconds=0.0), r"^seconds must be a finite number > 0"),
    (dict(seconds=5.0), r"^seconds must be at most"),
    pytest.param(dict(seconds=0.01), r"^seconds must hold at least one 25 ms window"),
    (dict(num_mel_bins=0), r"^num_mel_bins must be"),
    (dict(fft_size=256), r"^fft_size must be"),
    (dict(n_rows=1, n_cols=1), r"at least 2 patches"),
    (dict(n_rows=0, n_cols=5), r"^n_rows must be an integer >= 1, got 0"),
    (dict(n_rows=65), r"^n_rows must be at most the spectrogram's 64 bins"),
    (dict(seconds=SECONDS, n_rows=1, n_cols=49), r"^n_cols must be at most the spectrogram's 48 frames"),
])
def test_audio_input_rejects_bad_arguments(kwargs, match):
  with pytest.raises(ValueError, match=match):
    AudioInput(**kwargs)


@pytest.mark.parametrize("field,value,match", [
    ("pretext.loss", "cross_entropy", r"^config\.pretext\.loss must be one of"),
    ("pretext.modality", "text", r"^config\.pretext\.modality must be one of"),
    ("pretext.sigma", -1.0, r"^config\.pretext\.sigma must be"),
    ("pretext.n_rows", 0, r"^config\.pretext\.n_rows must be"),
    ("features.kind", "mfcc", r"^config\.features\.kind must be one of"),
    ("features.seconds", 0.0, r"^config\.features\.seconds must be"),
    pytest.param("features.seconds", 0.01, r"^config\.features\.seconds must hold"),
])
def test_from_config_errors_name_the_field(field, value, match):
  config = tiny.get_config()
  section, name = field.split(".")
  config[section][name] = value
  with pytest.raises(ValueError, match=match):
    pretext_lib.from_config(config)


def test_from_config_reports_a_missing_field():
  config = tiny.get_config()
  del config.pretext["sigma"]
  with pytest.raises(ValueError, match=r"^config\.pretext\.sigma is missing"):
    pretext_lib.from_config(config)
