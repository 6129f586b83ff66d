"""The objectives of the permutation pretext task, chosen by name (`OBJECTIVES`).

Every objective draws the permutations of a batch, and scores the network's
outputs against them with a per-example loss and partial-ranks accuracy:

- ``perturbed_fy``: the perturbed Fenchel-Young loss on n scores, with
  ``num_perturbations`` normal perturbations of scale ``sigma`` (Berthet et al.
  2020; Carr et al. 2021 use 10 and 0.1);
- ``fast_soft_rank``: 1/2 ||soft_rank(scores) - target||^2, L2 soft ranks of
  strength ``regularization_strength`` (Blondel et al. 2020);
- ``mse``: 1/2 ||scores - target||^2, regressing the ranks directly;
- ``fixed_permutation``: cross-entropy over ``num_permutations`` permutations of
  maximal minimum Hamming distance (Noroozi & Favaro 2016), the examples'
  permutations drawn uniformly from that set.

The ranking objectives draw permutations uniformly from all n! and take the
ascending 1-based ranks ``perm + 1`` of
`shuffle_learn.data.permutations.permutation_ranks` as targets: sorting the
slots by score restores the original order. The metric is the fraction of
patches put back in their place; its chance level is 1/n.

References:
  Carr, Berthet, Blondel, Teboul, Zeghidour. Self-Supervised Learning of Audio
  Representations from Permutations with Differentiable Ranking. IEEE SPL 2021.
  Berthet et al. Learning with Differentiable Perturbed Optimizers. NeurIPS 2020.
  Blondel et al. Fast Differentiable Sorting and Ranking. ICML 2020.
  Noroozi, Favaro. Unsupervised Learning of Visual Representations by Solving
  Jigsaw Puzzles. ECCV 2016.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import optax

from shuffle_learn import _checks
from shuffle_learn import ranking
from shuffle_learn.data import permutations as permutations_lib


@dataclasses.dataclass(frozen=True)
class _Ranking:
  """Base of the ranking objectives: n scores, uniform permutations, partial-ranks accuracy."""

  num_patches: int
  # The config fields (of ``config.pretext``) this objective reads.
  fields: ClassVar[tuple[str, ...]] = ()

  def __post_init__(self):
    _checks.check_int("num_patches", self.num_patches, 2)

  @property
  def num_outputs(self) -> int:
    return self.num_patches

  def sample(self, key: jax.Array, batch_size: int) -> tuple[jax.Array, jax.Array]:
    """``(permutations, labels)``, int32 ``(batch, n)`` both: one uniform permutation per example."""
    perms = permutations_lib.sample_permutations(key, batch_size, self.num_patches)
    return perms, perms

  def accuracy(self, outputs: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example partial-ranks accuracy: the hard ranks of the scores against ``perm + 1``."""
    return ranking.partial_ranks_accuracy(outputs, permutations_lib.permutation_ranks(labels))


@dataclasses.dataclass(frozen=True)
class PerturbedFY(_Ranking):
  """The perturbed Fenchel-Young loss (Berthet et al. 2020, Section 4)."""

  num_perturbations: int = 10
  sigma: float = 2.0
  fields: ClassVar[tuple[str, ...]] = ("num_perturbations", "sigma")

  def __post_init__(self):
    super().__post_init__()
    _checks.check_int("num_perturbations", self.num_perturbations, 1)
    _checks.check_number("sigma", self.sigma, 0.0, strict=True)

  def loss(self, key, outputs, labels):
    target = permutations_lib.permutation_ranks(labels)
    return ranking.fenchel_young_loss(key, outputs, target, num_perturbations=self.num_perturbations,
                                      sigma=self.sigma)


@dataclasses.dataclass(frozen=True)
class FastSoftRank(_Ranking):
  """Squared distance between the L2 soft ranks and the target (Blondel et al. 2020)."""

  regularization_strength: float = 1.0
  fields: ClassVar[tuple[str, ...]] = ("regularization_strength",)

  def __post_init__(self):
    super().__post_init__()
    _checks.check_number("regularization_strength", self.regularization_strength, 0.0, strict=True)

  def loss(self, key, outputs, labels):
    del key
    target = permutations_lib.permutation_ranks(labels)
    return ranking.soft_rank_loss(outputs, target, regularization_strength=self.regularization_strength)


@dataclasses.dataclass(frozen=True)
class RankMSE(_Ranking):
  """Squared distance between the scores and the target ranks."""

  def loss(self, key, outputs, labels):
    del key
    return ranking.rank_mse_loss(outputs, permutations_lib.permutation_ranks(labels))


@dataclasses.dataclass(frozen=True)
class FixedPermutation:
  """Classification over a fixed Hamming-maximal set of k permutations (Noroozi & Favaro 2016).

  Attributes:
    num_patches: n.
    num_permutations: k, in ``[2, n!]``.
    seed: seed of the greedy set (`permutations.hamming_permutation_set`).
  """

  num_patches: int
  num_permutations: int = 100
  seed: int = 0
  fields: ClassVar[tuple[str, ...]] = ("num_permutations",)

  def __post_init__(self):
    _checks.check_int("num_patches", self.num_patches, 2)
    _checks.check_int("num_permutations", self.num_permutations, 2, math.factorial(self.num_patches))
    _checks.check_int("seed", self.seed)

  @property
  def num_outputs(self) -> int:
    return self.num_permutations

  @property
  def permutation_set(self) -> np.ndarray:
    """int32 ``(k, n)``: the fixed permutations."""
    return _hamming_set(self.num_patches, self.num_permutations, self.seed)

  def sample(self, key: jax.Array, batch_size: int) -> tuple[jax.Array, jax.Array]:
    """``(permutations (batch, n), labels (batch,))``: labels index the set, uniformly."""
    labels = jax.random.randint(key, (batch_size,), 0, self.num_permutations, dtype=jnp.int32)
    return self._set()[labels], labels

  def loss(self, key, outputs, labels):
    del key
    return optax.softmax_cross_entropy_with_integer_labels(outputs, labels)

  def accuracy(self, outputs, labels):
    """Per-example fraction of positions where the arg-max logit's permutation agrees with the true one."""
    permutation_set = self._set()
    predicted = permutation_set[jnp.argmax(outputs, axis=-1)]
    return jnp.mean((predicted == permutation_set[labels]).astype(jnp.float32), axis=-1)

  def _set(self) -> jax.Array:
    return jnp.asarray(_hamming_set(self.num_patches, self.num_permutations, self.seed))


_SETS: dict[tuple[int, int, int], np.ndarray] = {}


def _hamming_set(n: int, k: int, seed: int) -> np.ndarray:
  """The set, computed once per process (the greedy search takes up to a second)."""
  if (n, k, seed) not in _SETS:
    _SETS[n, k, seed] = permutations_lib.hamming_permutation_set(n, k, seed=seed)
  return _SETS[n, k, seed]


OBJECTIVES = {"perturbed_fy": PerturbedFY, "fast_soft_rank": FastSoftRank, "mse": RankMSE,
              "fixed_permutation": FixedPermutation}
# Every field an objective may read, for configs: an objective ignores the others.
FIELDS = tuple(sorted({field for objective in OBJECTIVES.values() for field in objective.fields}))
