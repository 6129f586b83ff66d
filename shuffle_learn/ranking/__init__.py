"""Differentiable ranking in pure JAX.

Soft ranks and sorts by projection onto the permutahedron with pool-adjacent-
violators (Blondel et al. 2020), perturbed ranks and the perturbed Fenchel-Young
loss (Berthet et al. 2020), and the losses and metric of the permutation pretext
task (Carr et al. 2021). Every op works on any shape along ``axis`` and runs
under ``jit``, ``vmap`` and ``grad`` with no host callbacks.

Example:
  >>> import jax.numpy as jnp
  >>> from shuffle_learn import ranking
  >>> ranking.soft_rank(jnp.array([0.3, -1.0, 2.0]), regularization_strength=0.1)
  Array([2., 1., 3.], dtype=float32)
"""

from shuffle_learn.ranking._losses import partial_ranks_accuracy
from shuffle_learn.ranking._losses import rank_mse_loss
from shuffle_learn.ranking._losses import soft_rank_loss
from shuffle_learn.ranking._pav import isotonic_regression
from shuffle_learn.ranking._pav import projection_permutahedron
from shuffle_learn.ranking._perturbed import fenchel_young_loss
from shuffle_learn.ranking._perturbed import perturbed_ranks
from shuffle_learn.ranking._soft import hard_rank
from shuffle_learn.ranking._soft import soft_rank
from shuffle_learn.ranking._soft import soft_sort

__all__ = (
    "fenchel_young_loss",
    "hard_rank",
    "isotonic_regression",
    "partial_ranks_accuracy",
    "perturbed_ranks",
    "projection_permutahedron",
    "rank_mse_loss",
    "soft_rank",
    "soft_rank_loss",
    "soft_sort",
)
