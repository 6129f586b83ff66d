"""Tests of patch slicing, permutation sampling, shuffling, targets and Hamming sets."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from shuffle_learn import ranking
from shuffle_learn.data import patches as P
from shuffle_learn.data import permutations as perm_lib


def is_permutation_rows(x):
  x = np.asarray(x)
  return np.array_equal(np.sort(x, axis=-1), np.broadcast_to(np.arange(x.shape[-1]), x.shape))


def min_pairwise_hamming(perms):
  perms = np.asarray(perms)
  d = (perms[:, None, :] != perms[None, :, :]).sum(-1)
  np.fill_diagonal(d, perms.shape[1] + 1)
  return d.min()


# Patches.


@pytest.mark.parametrize("n_rows,n_cols,patch_shape", [
    (8, 1, (8, 40)),    # Frequency bands.
    (1, 10, (64, 4)),   # Time segments.
    (4, 5, (16, 8)),    # Time-frequency tiles.
    (64, 40, (1, 1)),   # Single bins.
    (1, 1, (64, 40)),
])
def test_patch_shapes(n_rows, n_cols, patch_shape):
  x = jnp.zeros((2, 3, 64, 40))
  assert P.to_patches(x, n_rows, n_cols).shape == (2, 3, n_rows * n_cols) + patch_shape
  assert P.to_patches(x[0, 0], n_rows, n_cols).shape == (n_rows * n_cols,) + patch_shape


def test_patches_row_major_on_arange():
  height, width, n_rows, n_cols = 6, 8, 3, 4
  x = np.arange(height * width).reshape(height, width)
  patches = np.asarray(P.to_patches(x, n_rows, n_cols))
  h, w = height // n_rows, width // n_cols
  for row in range(n_rows):
    for col in range(n_cols):
      expected = x[row * h:(row + 1) * h, col * w:(col + 1) * w]
      np.testing.assert_array_equal(patches[row * n_cols + col], expected)
  # Patch 1 is the second column of the first row: values 2, 3 and 10, 11.
  np.testing.assert_array_equal(patches[1], [[2, 3], [10, 11]])
  # Bands (n_cols=1) are rows of the array, frames (n_rows=1) its columns.
  np.testing.assert_array_equal(np.asarray(P.to_patches(x, 3, 1))[2], x[4:6])
  np.testing.assert_array_equal(np.asarray(P.to_patches(x, 1, 4))[3], x[:, 6:8])


def test_spectrogram_layout():
  # A (frames, bins) spectrogram is transposed to (frequency, time) first.
  spec = np.arange(398 * 64).reshape(398, 64)
  bands = P.to_patches(np.swapaxes(spec, -1, -2), 8, 1)
  assert bands.shape == (8, 8, 398)
  np.testing.assert_array_equal(bands[0], spec[:, :8].T)  # Lowest eight bins.
  frames = P.to_patches(np.swapaxes(spec, -1, -2), 1, 10, crop="end")
  assert frames.shape == (10, 64, 39)
  np.testing.assert_array_equal(frames[9], spec[351:390].T)


def test_channels_last_image_jigsaw(rng):
  image = rng.standard_normal((2, 225, 225, 3))
  tiles = P.to_patches(image, 3, 3, channels_last=True)
  assert tiles.shape == (2, 9, 75, 75, 3)
  np.testing.assert_array_equal(tiles[:, 5], image[:, 75:150, 150:225])
  np.testing.assert_array_equal(P.from_patches(tiles, 3, 3, channels_last=True), image)


@pytest.mark.parametrize("n_rows,n_cols", [(1, 1), (4, 1), (1, 5), (2, 5), (4, 10)])
def test_from_patches_roundtrip(n_rows, n_cols, rng):
  x = jnp.asarray(rng.standard_normal((2, 16, 40)))
  patches = P.to_patches(x, n_rows, n_cols)
  np.testing.assert_array_equal(P.from_patches(patches, n_rows, n_cols), x)
  np.testing.assert_array_equal(jax.jit(lambda y: P.to_patches(y, n_rows, n_cols))(x), patches)


def test_numpy_in_numpy_out():
  assert isinstance(P.to_patches(np.zeros((4, 6)), 2, 3), np.ndarray)
  assert isinstance(P.to_patches(jnp.zeros((4, 6)), 2, 3), jax.Array)
  assert isinstance(P.to_patches([[0.0, 1.0], [2.0, 3.0]], 2, 2), jax.Array)


def test_crop_end():
  x = np.arange(7 * 11).reshape(7, 11)
  patches = np.asarray(P.to_patches(x, 3, 2, crop="end"))
  assert patches.shape == (6, 2, 5)
  np.testing.assert_array_equal(P.from_patches(patches, 3, 2), x[:6, :10])
  # A size that divides is not cropped.
  np.testing.assert_array_equal(P.to_patches(x, 7, 1, crop="end"), P.to_patches(x, 7, 1))
  image = np.zeros((2, 10, 11, 3))
  assert P.to_patches(image, 3, 3, crop="end", channels_last=True).shape == (2, 9, 3, 3, 3)


def test_frames_as_patches_is_identity(rng):
  video = rng.standard_normal((2, 8, 4, 5))
  np.testing.assert_array_equal(P.frames_as_patches(video), video)
  assert P.frames_as_patches(np.zeros((8, 4, 5, 3)), channels_last=True).shape == (8, 4, 5, 3)
  with pytest.raises(ValueError, match="video"):
    P.frames_as_patches(np.zeros((4, 5)))
  with pytest.raises(ValueError, match="video"):
    P.frames_as_patches(np.zeros((8, 4, 5)), channels_last=True)


def test_patch_errors():
  x = np.zeros((2, 64, 398))
  with pytest.raises(ValueError, match=r"axis W of size 398 .*n_cols=10"):
    P.to_patches(x, 1, 10)
  with pytest.raises(ValueError, match=r"axis H of size 64 .*n_rows=5"):
    P.to_patches(x, 5, 2)
  with pytest.raises(ValueError, match="axis H of size 64 cannot hold n_rows=65"):
    P.to_patches(x, 65, 1, crop="end")
  with pytest.raises(ValueError, match=r"axis W of size 11 .*n_cols=2"):
    P.to_patches(np.zeros((9, 11, 3)), 3, 2, channels_last=True)
  with pytest.raises(ValueError, match="crop"):
    P.to_patches(x, 2, 2, crop="start")
  for bad in (0, -1, 2.0, True):
    with pytest.raises(ValueError, match="n_rows"):
      P.to_patches(x, bad, 2)
    with pytest.raises(ValueError, match="n_cols"):
      P.from_patches(np.zeros((4, 2, 2)), 2, bad)
  with pytest.raises(ValueError, match="x"):
    P.to_patches(np.zeros(8), 1, 2)
  with pytest.raises(ValueError, match="x"):
    P.to_patches(np.zeros((8, 8)), 2, 2, channels_last=True)
  with pytest.raises(ValueError, match="patches"):
    P.from_patches(np.zeros((6, 2, 2)), 2, 2)
  with pytest.raises(ValueError, match="patches"):
    P.from_patches(np.zeros((4, 2)), 2, 2)


# Sampling permutations.


def test_sample_permutations_uniform():
  n, count = 4, 48000
  perms = np.asarray(perm_lib.sample_permutations(jax.random.key(0), count, n))
  assert perms.shape == (count, n) and perms.dtype == np.int32
  assert is_permutation_rows(perms)
  index = {p: i for i, p in enumerate(itertools.permutations(range(n)))}
  counts = np.bincount([index[tuple(row)] for row in perms.tolist()], minlength=math.factorial(n))
  assert counts.min() > 0
  assert scipy.stats.chisquare(counts).pvalue > 1e-3
  # Each position is uniform too, and independent rows differ between keys.
  for j in range(n):
    assert scipy.stats.chisquare(np.bincount(perms[:, j], minlength=n)).pvalue > 1e-3


def test_sample_permutations_jit_and_keys():
  sample = jax.jit(perm_lib.sample_permutations, static_argnums=(1, 2))
  a = sample(jax.random.key(1), 64, 10)
  np.testing.assert_array_equal(a, perm_lib.sample_permutations(jax.random.key(1), 64, 10))
  assert a.dtype == jnp.int32 and is_permutation_rows(a)
  assert len(np.unique(np.asarray(a), axis=0)) > 60
  assert not np.array_equal(a, sample(jax.random.key(2), 64, 10))
  assert perm_lib.sample_permutations(jax.random.key(0), 3, 1).tolist() == [[0], [0], [0]]
  for bad in (0, -1, 2.5, True):
    with pytest.raises(ValueError, match="batch_size"):
      perm_lib.sample_permutations(jax.random.key(0), bad, 4)
    with pytest.raises(ValueError, match=r"\bn\b"):
      perm_lib.sample_permutations(jax.random.key(0), 4, bad)


# Shuffling and targets.


def test_shuffle_definition_and_roundtrip(rng):
  patches = jnp.asarray(rng.standard_normal((5, 6, 3, 4)))
  perms = perm_lib.sample_permutations(jax.random.key(3), 5, 6)
  shuffled = perm_lib.shuffle_patches(patches, perms)
  assert shuffled.shape == patches.shape and shuffled.dtype == patches.dtype
  for b in range(5):
    for j in range(6):
      np.testing.assert_array_equal(shuffled[b, j], patches[b, perms[b, j]])
  np.testing.assert_array_equal(perm_lib.unshuffle_patches(shuffled, perms), patches)
  np.testing.assert_array_equal(perm_lib.shuffle_patches(perm_lib.unshuffle_patches(patches, perms), perms), patches)
  np.testing.assert_array_equal(jax.jit(perm_lib.shuffle_patches)(patches, perms), shuffled)
  inverse = perm_lib.invert_permutations(perms)
  np.testing.assert_array_equal(jnp.take_along_axis(perms, inverse, axis=-1), jnp.broadcast_to(jnp.arange(6), (5, 6)))


def test_shuffle_spectrogram_patches_roundtrip(rng):
  spec = jnp.asarray(rng.standard_normal((4, 64, 40)))
  patches = P.to_patches(spec, 4, 2)
  perms = perm_lib.sample_permutations(jax.random.key(0), 4, 8)
  back = perm_lib.unshuffle_patches(perm_lib.shuffle_patches(patches, perms), perms)
  np.testing.assert_array_equal(P.from_patches(back, 4, 2), spec)


def test_shuffle_batch_shapes():
  patches = jnp.arange(2 * 3 * 4).reshape(2, 3, 4)  # Two batch axes, scalar patches.
  perms = jnp.array([[[3, 2, 1, 0], [0, 1, 2, 3], [1, 0, 3, 2]]] * 2)
  np.testing.assert_array_equal(perm_lib.shuffle_patches(patches, perms)[0, 0], [3, 2, 1, 0])
  np.testing.assert_array_equal(perm_lib.shuffle_patches(patches, perms)[1, 2], [21, 20, 23, 22])
  with pytest.raises(ValueError, match="patches"):
    perm_lib.shuffle_patches(jnp.zeros((2, 5, 3)), jnp.zeros((2, 4), jnp.int32))
  with pytest.raises(ValueError, match="permutations"):
    perm_lib.shuffle_patches(jnp.zeros((2, 4)), jnp.zeros((2, 4)))
  with pytest.raises(ValueError, match="permutations"):
    perm_lib.permutation_ranks(jnp.int32(0))


def test_targets_consistent_with_hard_rank():
  """Scores = the original positions of the shuffled patches rank as permutation_ranks."""
  batch, n = 256, 9
  perms = perm_lib.sample_permutations(jax.random.key(4), batch, n)
  positions = jnp.broadcast_to(jnp.arange(n), (batch, n))
  # A "patch" holding its own original position, so the shuffled content is the score.
  scores = perm_lib.shuffle_patches(positions, perms).astype(jnp.float32)
  np.testing.assert_array_equal(scores, perms)
  target = perm_lib.permutation_ranks(perms)
  assert target.dtype == jnp.float32
  np.testing.assert_array_equal(target, np.asarray(perms) + 1)
  np.testing.assert_array_equal(ranking.hard_rank(scores), target)
  np.testing.assert_array_equal(ranking.partial_ranks_accuracy(scores, target), np.ones(batch))
  # Any increasing function of the positions gives the same ranks.
  np.testing.assert_array_equal(ranking.hard_rank(jnp.exp(scores) - 3.0), target)
  # Sorting the slots by the target ranks puts the patches back in order.
  order = jnp.argsort(target, axis=-1)
  np.testing.assert_array_equal(jnp.take_along_axis(scores, order, axis=-1), positions)
  # The identity has ranks 1..n; a wrong score vector scores below 1.
  reversed_scores = -scores
  assert float(jnp.max(ranking.partial_ranks_accuracy(reversed_scores, target))) <= 1.0
  assert float(jnp.mean(ranking.partial_ranks_accuracy(reversed_scores, target))) < 0.5


# Hamming permutation sets.


def greedy_oracle(n, k, start):
  """Noroozi & Favaro's greedy selection over all permutations, in plain Python."""
  candidates = list(itertools.permutations(range(n)))
  chosen = [tuple(start)]
  while len(chosen) < k:
    best, best_distance = None, -1
    for c in candidates:
      if c in chosen:
        continue
      distance = min(sum(a != b for a, b in zip(c, p)) for p in chosen)
      if distance > best_distance:
        best, best_distance = c, distance
    chosen.append(best)
  return np.array(chosen)


@pytest.mark.parametrize("k", [1, 2, 5, 10, 24])
@pytest.mark.parametrize("seed", [0, 1])
def test_hamming_matches_greedy_oracle(k, seed):
  perms = perm_lib.hamming_permutation_set(4, k, seed=seed)
  assert perms.shape == (k, 4) and perms.dtype == np.int32
  oracle = greedy_oracle(4, k, perms[0])
  np.testing.assert_array_equal(perms, oracle)
  if k > 1:
    assert min_pairwise_hamming(perms) == min_pairwise_hamming(oracle)


def test_hamming_small_sets_reach_maximum_distance():
  # Four permutations of 4 that differ everywhere (a Latin square) exist, and greedy finds them.
  assert min_pairwise_hamming(perm_lib.hamming_permutation_set(4, 4)) == 4
  assert min_pairwise_hamming(perm_lib.hamming_permutation_set(5, 5)) == 5


@pytest.mark.parametrize("n,k", [(3, 6), (6, 50), (9, 100), (10, 100), (12, 30)])
def test_hamming_rows_distinct_permutations(n, k):
  perms = perm_lib.hamming_permutation_set(n, k, seed=7)
  assert perms.shape == (k, n) and perms.dtype == np.int32
  assert is_permutation_rows(perms)
  assert len(np.unique(perms, axis=0)) == k


def test_hamming_deterministic():
  a = perm_lib.hamming_permutation_set(10, 50, seed=3)
  np.testing.assert_array_equal(a, perm_lib.hamming_permutation_set(10, 50, seed=3))
  assert not np.array_equal(a, perm_lib.hamming_permutation_set(10, 50, seed=4))
  np.testing.assert_array_equal(perm_lib.hamming_permutation_set(6, 20, seed=3),
                                perm_lib.hamming_permutation_set(6, 20, seed=3))


def test_hamming_beats_random_sets(rng):
  n, k = 10, 100
  perms = perm_lib.hamming_permutation_set(n, k)
  random_mins = [min_pairwise_hamming(rng.permuted(np.tile(np.arange(n), (k, 1)), axis=1)) for _ in range(20)]
  assert min_pairwise_hamming(perms) >= max(random_mins)
  assert min_pairwise_hamming(perms) >= 6


def test_hamming_num_candidates():
  # A sample of 30 candidates of 5! = 120: still distinct permutations.
  perms = perm_lib.hamming_permutation_set(5, 20, num_candidates=30, seed=1)
  assert is_permutation_rows(perms) and len(np.unique(perms, axis=0)) == 20
  # num_candidates >= n! searches all of them, as the default does for n <= 9.
  np.testing.assert_array_equal(perm_lib.hamming_permutation_set(5, 20, num_candidates=120, seed=1),
                                perm_lib.hamming_permutation_set(5, 20, seed=1))
  # All 5! = 120 permutations requested: the whole set.
  assert len(np.unique(perm_lib.hamming_permutation_set(5, 120, num_candidates=120), axis=0)) == 120


def test_hamming_errors():
  with pytest.raises(ValueError, match="k must be <= n!"):
    perm_lib.hamming_permutation_set(4, 25)
  for bad in (1, 0, 2.0):
    with pytest.raises(ValueError, match=r"\bn\b"):
      perm_lib.hamming_permutation_set(bad, 1)
  with pytest.raises(ValueError, match=r"\bk\b"):
    perm_lib.hamming_permutation_set(4, 0)
  with pytest.raises(ValueError, match="num_candidates"):
    perm_lib.hamming_permutation_set(10, 100, num_candidates=50)
  with pytest.raises(ValueError, match="seed"):
    perm_lib.hamming_permutation_set(4, 2, seed=1.5)
