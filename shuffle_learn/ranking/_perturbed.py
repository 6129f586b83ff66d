"""Perturbed ranks and the perturbed Fenchel-Young loss.

References:
  Berthet, Blondel, Teboul, Cuturi, Vert, Bach. Learning with Differentiable
  Perturbed Optimizers. NeurIPS 2020 (arXiv:2002.08676). Section 3: the perturbed
  maximizer y_eps(theta) = E[argmax_{y in C} <y, theta + eps Z>] and its
  Jacobian estimator (Proposition 3.1); Section 4: the Fenchel-Young loss
  L(theta; y) = F_eps(theta) + eps Omega(y) - <theta, y>, whose gradient is
  y_eps(theta) - y.
  Carr, Berthet, Blondel, Teboul, Zeghidour. Self-Supervised Learning of Audio
  Representations from Permutations with Differentiable Ranking. IEEE SPL 2021:
  sigma = 0.1, 10 normal samples.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from shuffle_learn.ranking import _checks
from shuffle_learn.ranking import _soft


def _sample_noise(key, shape, noise: str, dtype) -> tuple[jax.Array, jax.Array]:
  """Returns Z and grad nu(Z), with nu = -log density (Berthet et al., Prop. 3.1)."""
  if noise == "normal":
    z = jax.random.normal(key, shape, dtype)
    return z, z
  z = jax.random.gumbel(key, shape, dtype)
  return z, 1.0 - jnp.exp(-z)


def _check(num_perturbations, sigma, noise):
  _checks.check_count("num_perturbations", num_perturbations)
  _checks.check_positive("sigma", sigma)
  _checks.check_choice("noise", noise, _checks.NOISES)


def _perturbed(key, values, axis, num_perturbations, sigma, noise):
  """Moves `axis` last and draws (num_perturbations, ...) perturbations and their scores."""
  values = jnp.asarray(values)
  axis = _checks.check_axis(axis, values.ndim)
  theta = jnp.moveaxis(values, axis, -1).astype(_checks.compute_dtype(values.dtype))
  z, grad_nu = _sample_noise(key, (num_perturbations,) + theta.shape, noise, theta.dtype)
  return theta, z, grad_nu, axis


# sigma is an argument (not a nondiff_argnum) so that it may be traced; it gets
# no gradient.
@jax.custom_vjp
def _perturbed_ranks(theta, z, grad_nu, sigma):
  return _perturbed_ranks_fwd(theta, z, grad_nu, sigma)[0]


def _perturbed_ranks_fwd(theta, z, grad_nu, sigma):
  ranks = _soft.hard_rank(theta + sigma * z)  # (num_perturbations, ..., n)
  return jnp.mean(ranks, axis=0), (ranks, grad_nu, sigma)


def _perturbed_ranks_bwd(residuals, g):
  ranks, grad_nu, sigma = residuals
  # J^T g = E[<y*(theta + sigma Z), g> grad nu(Z)] / sigma (Prop. 3.1).
  weights = jnp.sum(ranks * g, axis=-1, keepdims=True)
  return jnp.mean(weights * grad_nu, axis=0) / sigma, None, None, None


_perturbed_ranks.defvjp(_perturbed_ranks_fwd, _perturbed_ranks_bwd)


def perturbed_ranks(key: jax.Array, values: jax.typing.ArrayLike, *, num_perturbations: int = 10, sigma: float = 0.1,
                    noise: str = "normal", axis: int = -1) -> jax.Array:
  r"""Perturbed ranks: a Monte-Carlo estimate of E[hard_rank(values + sigma Z)].

  Ranks are ascending and 1-based, the argmax of :math:`\langle y, \theta\rangle`
  over the permutahedron. The VJP is the perturbation estimator of Berthet et
  al. 2020 (Proposition 3.1), computed from the same samples as the forward:
  :math:`J^\top g \approx \frac{1}{\sigma M}\sum_m \langle y^*(\theta + \sigma
  Z_m), g\rangle \nabla\nu(Z_m)`, with :math:`\nabla\nu(z) = z` for normal noise
  and :math:`1 - e^{-z}` for Gumbel noise. With the same key the forward and the
  gradient are deterministic.

  Args:
    key: a PRNG key.
    values: scores, any shape.
    num_perturbations: M, the number of perturbations (>= 1).
    sigma: the noise scale (> 0).
    noise: ``"normal"`` or ``"gumbel"``.
    axis: the axis to rank along.

  Returns:
    Expected ranks, same shape and dtype as ``values``.

  Example:
    >>> perturbed_ranks(jax.random.key(0), jnp.array([3.0, 1.0, 2.0]))
    Array([3., 1., 2.], dtype=float32)

  References:
    Berthet et al. Learning with Differentiable Perturbed Optimizers. NeurIPS 2020.
  """
  _check(num_perturbations, sigma, noise)
  theta, z, grad_nu, axis = _perturbed(key, values, axis, num_perturbations, sigma, noise)
  out = _perturbed_ranks(theta, z, grad_nu, sigma)
  return jnp.moveaxis(out, -1, axis).astype(_checks.output_dtype(jnp.asarray(values).dtype))


@jax.custom_vjp
def _fenchel_young(theta, target, z, sigma):
  return _fenchel_young_fwd(theta, target, z, sigma)[0]


def _fenchel_young_fwd(theta, target, z, sigma):
  perturbed = theta + sigma * z
  ranks = _soft.hard_rank(perturbed)
  # F_sigma(theta) = E[max_y <y, theta + sigma Z>] = E[<y*(theta + sigma Z), theta + sigma Z>].
  max_value = jnp.mean(jnp.sum(ranks * perturbed, axis=-1), axis=0)
  loss = max_value - jnp.sum(theta * target, axis=-1)
  return loss, (jnp.mean(ranks, axis=0), theta, target)


def _fenchel_young_bwd(residuals, g):
  expected_ranks, theta, target = residuals
  g = g[..., None]
  return g * (expected_ranks - target), -g * theta, None, None


_fenchel_young.defvjp(_fenchel_young_fwd, _fenchel_young_bwd)


def fenchel_young_loss(key: jax.Array, scores: jax.typing.ArrayLike, target_ranks: jax.typing.ArrayLike, *,
                       num_perturbations: int = 10, sigma: float = 0.1, noise: str = "normal",
                       axis: int = -1) -> jax.Array:
  r"""Perturbed Fenchel-Young loss for ranks, one value per vector.

  Returns the Monte-Carlo estimate of :math:`F_\sigma(\theta) - \langle \theta,
  y\rangle`, with :math:`F_\sigma(\theta) = \mathbb{E}[\max_{y' \in C} \langle
  y', \theta + \sigma Z\rangle]` and C the permutahedron of (1, ..., n). The
  Fenchel-Young loss (Berthet et al. 2020, Section 4) is this plus
  :math:`\sigma\Omega(y)`, with :math:`\Omega = F_1^*`, which does not depend on
  ``scores``. For a permutation target :math:`\Omega(y)` is the same for all
  permutations, and for normal noise it is 0: the value is then the loss itself,
  non-negative in expectation and tending to 0 as the scores grow along the
  target. The gradient with respect to ``scores`` is ``perturbed_ranks -
  target_ranks``, from the same samples (a custom VJP; unbiased for the true
  gradient).

  Args:
    key: a PRNG key.
    scores: theta, any shape.
    target_ranks: y, 1-based ascending ranks, same shape as ``scores``.
    num_perturbations: M (>= 1).
    sigma: the noise scale (> 0).
    noise: ``"normal"`` or ``"gumbel"``.
    axis: the axis holding the items.

  Returns:
    The loss, of shape ``scores.shape`` without ``axis``, in the scores' dtype.

  References:
    Berthet et al. Learning with Differentiable Perturbed Optimizers. NeurIPS 2020.
    Blondel, Martins, Niculae. Learning with Fenchel-Young Losses. JMLR 2020.
  """
  _check(num_perturbations, sigma, noise)
  scores = jnp.asarray(scores)
  target_ranks = jnp.asarray(target_ranks)
  if target_ranks.shape != scores.shape:
    raise ValueError(f"target_ranks must have the shape of scores {scores.shape}, got {target_ranks.shape}.")
  theta, z, _, axis = _perturbed(key, scores, axis, num_perturbations, sigma, noise)
  target = jnp.moveaxis(target_ranks, axis, -1).astype(theta.dtype)
  loss = _fenchel_young(theta, target, z, sigma)
  return loss.astype(_checks.output_dtype(scores.dtype))
