"""Independent float64 references shared by the tests; none uses the library."""

import cvxpy as cp
import numpy as np
from scipy.special import logsumexp
from sklearn.isotonic import IsotonicRegression

_CLARABEL = dict(solver=cp.CLARABEL, tol_gap_abs=1e-9, tol_gap_rel=1e-9, tol_feas=1e-9, tol_ktratio=1e-8)


def _pav_decreasing(y, w, kl):
  """argmin over decreasing v of the separable dual, by textbook PAV.

  L2: 1/2 ||v - (y - w)||^2, block value mean(y) - mean(w).
  KL: <exp(y - v), 1> + <exp(w), v>, block value logsumexp(y) - logsumexp(w).
  """
  y = np.asarray(y, np.float64)
  w = np.asarray(w, np.float64)

  def value(block):
    if kl:
      return logsumexp(y[block]) - logsumexp(w[block])
    return y[block].mean() - w[block].mean()

  blocks = []
  for i in range(len(y)):
    blocks.append([i])
    while len(blocks) > 1 and value(blocks[-2]) < value(blocks[-1]):
      tail = blocks.pop()
      blocks[-1].extend(tail)
  v = np.empty(len(y))
  for block in blocks:
    v[block] = value(block)
  return v


def ref_isotonic(y, w=None, kl=False, increasing=True):
  """Isotonic regression: scikit-learn for L2, numpy PAV for KL."""
  y = np.asarray(y, np.float64)
  w = np.zeros_like(y) if w is None else np.asarray(w, np.float64)
  if not kl:
    return IsotonicRegression(increasing=increasing).fit_transform(np.arange(len(y), dtype=np.float64), y - w)
  if increasing:
    return _pav_decreasing(y[::-1], w[::-1], kl=True)[::-1]
  return _pav_decreasing(y, w, kl=True)


def ref_projection(z, w, kl):
  """Projection onto the permutahedron by Blondel et al. 2020, Prop. 3.

  mu = z - v, v the decreasing isotonic regression of z sorted decreasingly
  against w sorted decreasingly (scikit-learn for L2, numpy PAV for KL).
  """
  z = np.asarray(z, np.float64)
  w = np.asarray(w, np.float64)
  order = np.argsort(-z, kind="stable")
  s = z[order]
  v = ref_isotonic(s, np.sort(w)[::-1], kl=kl, increasing=False)
  out = np.empty_like(s)
  out[order] = s - v
  return out


def solver_projection(z, w, kl):
  """Projection onto the permutahedron by a convex solver (small n).

  P(c) = {mu : sum(mu) = sum(c), sum_S mu <= sum of the |S| largest c for every
  nonempty proper subset S}. L2 projects z onto P(w); KL returns
  log argmin_{mu in P(exp w)} KL(mu || exp z) with KL(a || b) = sum a log(a / b)
  - a + b, which on P(exp w) (where sum(mu) is fixed) is sum mu log mu - <z, mu>
  plus a constant.
  """
  z = np.asarray(z, np.float64)
  w = np.asarray(w, np.float64)
  n = len(z)
  c = np.exp(w) if kl else w
  caps = np.cumsum(np.sort(c)[::-1])
  subsets = np.array([[(m >> i) & 1 for i in range(n)] for m in range(1, 2**n - 1)], np.float64)
  mu = cp.Variable(n)
  constraints = [cp.sum(mu) == caps[-1]]
  if n > 1:
    constraints.append(subsets @ mu <= caps[subsets.sum(1).astype(int) - 1])
  if kl:  # KL(mu || exp z) up to terms constant on P(exp w), where sum(mu) is fixed.
    objective = -cp.sum(cp.entr(mu)) - z @ mu
  else:
    objective = 0.5 * cp.sum_squares(mu - z)
  problem = cp.Problem(cp.Minimize(objective), constraints)
  problem.solve(**_CLARABEL)
  assert problem.status == cp.OPTIMAL
  return np.log(mu.value) if kl else mu.value


def along_axis(fn, axis, *arrays):
  """Applies a reference written for vectors along `axis` of same-shaped arrays."""
  moved = [np.moveaxis(np.asarray(a, np.float64), axis, -1) for a in arrays]
  n = moved[0].shape[-1]
  rows = zip(*(m.reshape(-1, n) for m in moved))
  out = np.stack([fn(*row) for row in rows]).reshape(moved[0].shape)
  return np.moveaxis(out, -1, axis)


def finite_difference_vjp(fn, args, cotangent, h=1e-6):
  """Central differences of <cotangent, fn(*args)>, one gradient per arg."""
  grads = []
  for k, arg in enumerate(args):
    grad = np.zeros(len(arg))
    for i in range(len(arg)):
      plus = [np.array(a, np.float64) for a in args]
      minus = [np.array(a, np.float64) for a in args]
      plus[k][i] += h
      minus[k][i] -= h
      grad[i] = (cotangent @ fn(*plus) - cotangent @ fn(*minus)) / (2 * h)
    grads.append(grad)
  return grads
