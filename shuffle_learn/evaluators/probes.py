"""Downstream heads on frozen embeddings: the paper's 3-layer MLP and a linear probe.

Tasks (`TASKS`), on NSynth's labels:

- ``family_accuracy``: 11-way instrument family, softmax cross-entropy.
- ``instrument_accuracy``: instrument (one per SoundFont x program here),
  softmax cross-entropy.
- ``pitch_mse``: the MIDI pitch by regression with squared error (Carr et al.
  2021 report the mean squared error in semitones squared).
- ``pitch_accuracy`` and ``chroma_accuracy``: the metrics of HEAR's
  nsynth_pitch task, read off the same regression: the predicted MIDI number
  rounded to the nearest integer equals the true pitch, or equals it modulo 12
  (pitch class).

Embeddings are standardised with the mean and std of the N training examples.
Heads are trained full-batch with Adam for a fixed number of epochs (no early
stopping on the test split); one fit is one jitted `lax.fori_loop`, so a probe
takes well under a second on CPU.
"""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

TASKS = ("family_accuracy", "instrument_accuracy", "pitch_mse", "pitch_accuracy", "chroma_accuracy")
PROBES = ("mlp", "linear")


class MLP(nn.Module):
  """The paper's downstream head: three dense layers (two hidden ReLU layers)."""

  hidden: int
  num_outputs: int

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Dense(self.hidden)(x))
    x = nn.relu(nn.Dense(self.hidden)(x))
    return nn.Dense(self.num_outputs)(x)


class Linear(nn.Module):
  num_outputs: int

  @nn.compact
  def __call__(self, x):
    return nn.Dense(self.num_outputs)(x)


@dataclasses.dataclass(frozen=True)
class ProbeConfig:
  """How a head is trained.

  Attributes:
    kind: ``"mlp"`` or ``"linear"``.
    hidden: width of the MLP's hidden layers.
    epochs: full-batch Adam steps.
    learning_rate: Adam's.
    weight_decay: AdamW's decoupled weight decay.
  """

  kind: str = "mlp"
  hidden: int = 256
  epochs: int = 500
  learning_rate: float = 3e-3
  weight_decay: float = 1e-4

  def __post_init__(self):
    if self.kind not in PROBES:
      raise ValueError(f"kind must be one of {PROBES}, got {self.kind!r}.")
    for name in ("hidden", "epochs"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}.")
    if not self.learning_rate > 0 or not self.weight_decay >= 0:
      raise ValueError(f"learning_rate must be > 0 and weight_decay >= 0, got {self.learning_rate!r}, "
                       f"{self.weight_decay!r}.")

  def module(self, num_outputs: int) -> nn.Module:
    return MLP(self.hidden, num_outputs) if self.kind == "mlp" else Linear(num_outputs)


def standardize(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Both sets scaled with the train set's per-dimension mean and std (constant dimensions kept at 0).

  The test set is first clipped to the train set's per-dimension range: a unit
  that is almost always 0 on the train notes (a rarely active ReLU) has a tiny
  std, and a test note that activates it strongly would otherwise reach the
  head at hundreds of stds, far outside anything it was fitted on, and get an
  arbitrary prediction (pitch errors of thousands of semitones squared).
  """
  test = np.clip(test, train.min(axis=0), train.max(axis=0))
  mean = train.mean(axis=0)
  std = train.std(axis=0)
  std = np.where(std > 0, std, 1.0)
  return ((train - mean) / std).astype(np.float32), ((test - mean) / std).astype(np.float32)


@functools.partial(jax.jit, static_argnames=("module", "num_outputs", "regression", "epochs", "learning_rate",
                                             "weight_decay"))
def _fit_predict(key, x, y, x_test, *, module, num_outputs, regression, epochs, learning_rate, weight_decay):
  params = module.init(key, x[:1])
  optimizer = optax.adamw(learning_rate, weight_decay=weight_decay)
  opt_state = optimizer.init(params)

  def loss_fn(params):
    out = module.apply(params, x)
    if regression:
      return jnp.mean(jnp.square(out[:, 0] - y))
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(out, y))

  def body(_, carry):
    params, opt_state = carry
    grads = jax.grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  params, _ = jax.lax.fori_loop(0, epochs, body, (params, opt_state))
  out = module.apply(params, x_test)
  return out[:, 0] if regression else jnp.argmax(out, axis=-1)


def fit_predict(seed: int, x: np.ndarray, y: np.ndarray, x_test: np.ndarray, *, regression: bool,
                num_classes: int = 0, probe: ProbeConfig = ProbeConfig()) -> np.ndarray:
  """Trains a head on ``(x, y)`` and predicts ``x_test``.

  Args:
    seed: the head's initialisation seed.
    x, x_test: standardised float32 embeddings ``(N, d)``, ``(M, d)``.
    y: int labels ``(N,)`` in ``[0, num_classes)``, or float targets for a regression.
    regression: squared error on one output, else softmax cross-entropy.
    num_classes: for a classification.
    probe: the head and its training.

  Returns:
    ``(M,)``: predicted classes, or predicted values (regression).
  """
  num_outputs = 1 if regression else num_classes
  y = jnp.asarray(y, jnp.float32 if regression else jnp.int32)
  return np.asarray(_fit_predict(
      jax.random.key(seed), jnp.asarray(x), y, jnp.asarray(x_test), module=probe.module(num_outputs),
      num_outputs=num_outputs, regression=regression, epochs=probe.epochs, learning_rate=probe.learning_rate,
      weight_decay=probe.weight_decay))


def pitch_metrics(predicted: np.ndarray, true: np.ndarray) -> dict[str, float]:
  """``pitch_mse``, and ``pitch_accuracy`` / ``chroma_accuracy`` of the prediction rounded to a MIDI number."""
  predicted = np.asarray(predicted, np.float64)
  true = np.asarray(true, np.int64)
  rounded = np.rint(predicted).astype(np.int64)
  return {"pitch_mse": float(np.mean(np.square(predicted - true))),
          "pitch_accuracy": float(np.mean(rounded == true)),
          "chroma_accuracy": float(np.mean(rounded % 12 == true % 12))}


def evaluate_tasks(seed: int, train_x: np.ndarray, train_labels: dict, test_x: np.ndarray, test_labels: dict, *,
                   num_families: int, num_instruments: int, probe: ProbeConfig = ProbeConfig(),
                   tasks=TASKS) -> dict[str, float]:
  """Every task's test metric for one seed: heads trained on ``train_x``, scored on ``test_x``.

  The pitch regression is fitted on the MIDI number standardised with the
  train mean and std (unit-scale targets suit Adam's step size), and serves ``pitch_mse``, ``pitch_accuracy`` and ``chroma_accuracy``.
  """
  unknown = set(tasks) - set(TASKS)
  if unknown:
    raise ValueError(f"unknown tasks {sorted(unknown)}; tasks are {TASKS}.")
  x, x_test = standardize(train_x, test_x)
  results = {}
  if "family_accuracy" in tasks:
    predicted = fit_predict(seed, x, train_labels["instrument/family"], x_test, regression=False,
                            num_classes=num_families, probe=probe)
    results["family_accuracy"] = float(np.mean(predicted == test_labels["instrument/family"]))
  if "instrument_accuracy" in tasks:
    predicted = fit_predict(seed, x, train_labels["instrument/label"], x_test, regression=False,
                            num_classes=num_instruments, probe=probe)
    results["instrument_accuracy"] = float(np.mean(predicted == test_labels["instrument/label"]))
  if {"pitch_mse", "pitch_accuracy", "chroma_accuracy"} & set(tasks):
    pitch = np.asarray(train_labels["pitch"], np.float32)
    center, scale = float(pitch.mean()), float(pitch.std()) or 1.0
    predicted = fit_predict(seed, x, (pitch - center) / scale, x_test, regression=True, probe=probe) * scale + center
    all_pitch = pitch_metrics(predicted, test_labels["pitch"])
    results.update({k: v for k, v in all_pitch.items() if k in tasks})
  return results
