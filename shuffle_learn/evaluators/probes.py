"""Downstream heads on frozen embeddings: the paper's 3-layer MLP and a linear probe.

Note tasks (`TASKS`), on NSynth's labels:

- ``family_accuracy``: 11-way instrument family, softmax cross-entropy.
- ``instrument_accuracy``: instrument (one per SoundFont x program here),
  softmax cross-entropy.
- ``pitch_mse``: the MIDI pitch by regression with squared error (Carr et al.
  2021 report the mean squared error in semitones squared).
- ``pitch_accuracy`` and ``chroma_accuracy``: the two metrics of HEAR's
  nsynth_pitch task, but read off the same regression (HEAR's own protocol
  is the classifier of `HEAR_PITCH_TASKS`): the predicted MIDI number
  rounded to the nearest integer equals the true pitch, or equals it modulo 12
  (pitch class).

HEAR pitch tasks (`HEAR_PITCH_TASKS`): the same two metrics as HEAR's
nsynth_pitch task scores them (Turian et al. 2022), and as Kuroyanagi et al.
2022 report them after CREPE (Kim et al. 2018): read off a CLASSIFIER over the
`NUM_MIDI_PITCHES` MIDI numbers, one softmax head trained on the note's
``pitch`` that serves both:

- ``hear_pitch_accuracy``: the head's argmax equals the true MIDI number;
- ``hear_chroma_accuracy``: it equals it modulo 12 (the pitch class; an
  octave error counts as right).

`NOTE_TASKS` is `TASKS` followed by `HEAR_PITCH_TASKS`; `TASKS` stays the
configs' default.

Label tasks (`LABEL_TASKS`), on the ``label`` of images and videos, read off
one softmax head: ``accuracy``, ``balanced_accuracy`` (the mean of the
per-class recalls, for unbalanced classes such as the emoji categories) and
``mean_auc`` (one-vs-rest ROC AUC of the softmax probabilities, averaged over
the classes present in the test set; for a multi-label source, whose examples
carry a multi-hot ``labels`` such as VOC 2007/2012's objects, of one sigmoid
head per class instead, the metric of the ICLR paper's Table 4).

Embeddings are standardised with the mean and std of the N training examples.
Heads are trained full-batch with Adam for a fixed number of epochs (no early
stopping on the test split); one fit is one jitted `lax.fori_loop`, so a probe
takes well under a second on CPU.

References:
  Turian et al. HEAR: Holistic Evaluation of Audio Representations. NeurIPS
  2021 Competitions and Demonstrations Track, PMLR 176, 2022 (nsynth_pitch:
  pitch and chroma accuracy of a pitch classifier).
  Kuroyanagi, Hayashi, Takeda, Toda. Self-Supervised Learning Method Using
  Multiple Sampling Strategies for General-Purpose Audio Representation.
  ICASSP 2022 (Table 1: NSynth pitch and chroma accuracy).
  Kim, Salamon, Li, Bello. CREPE: A Convolutional Representation for Pitch
  Estimation. ICASSP 2018.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn import metrics as sk_metrics

TASKS = ("family_accuracy", "instrument_accuracy", "pitch_mse", "pitch_accuracy", "chroma_accuracy")
HEAR_PITCH_TASKS = ("hear_pitch_accuracy", "hear_chroma_accuracy")
NOTE_TASKS = TASKS + HEAR_PITCH_TASKS
# The classes of the HEAR pitch head: the MIDI numbers 0-127.
NUM_MIDI_PITCHES = 128
LABEL_TASKS = ("accuracy", "balanced_accuracy", "mean_auc")
LOSSES = ("squared_error", "softmax", "sigmoid")
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


def head_loss(loss: str, outputs: jax.Array, y: jax.Array) -> jax.Array:
  """The mean loss of head outputs ``(batch, k)``: squared error on ``outputs[:, 0]``, softmax or sigmoid cross-entropy."""
  if loss == "squared_error":
    return jnp.mean(jnp.square(outputs[:, 0] - y))
  if loss == "softmax":
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(outputs, y))
  return jnp.mean(optax.sigmoid_binary_cross_entropy(outputs, y))


@functools.partial(jax.jit, static_argnames=("module", "loss", "epochs", "learning_rate", "weight_decay"))
def _fit_outputs(key, x, y, x_test, *, module, loss, epochs, learning_rate, weight_decay):
  params = module.init(key, x[:1])
  optimizer = optax.adamw(learning_rate, weight_decay=weight_decay)
  opt_state = optimizer.init(params)

  def body(_, carry):
    params, opt_state = carry
    grads = jax.grad(lambda p: head_loss(loss, module.apply(p, x), y))(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  params, _ = jax.lax.fori_loop(0, epochs, body, (params, opt_state))
  return module.apply(params, x_test)


def fit_outputs(seed: int, x: np.ndarray, y: np.ndarray, x_test: np.ndarray, *, loss: str, num_outputs: int,
                probe: ProbeConfig = ProbeConfig()) -> np.ndarray:
  """Trains a head on ``(x, y)``; its outputs on ``x_test``, ``(M, num_outputs)``.

  Args:
    seed: the head's initialisation seed.
    x, x_test: standardised float32 embeddings ``(N, d)``, ``(M, d)``.
    y: float targets ``(N,)`` (``"squared_error"``), int labels ``(N,)`` in
      ``[0, num_outputs)`` (``"softmax"``) or multi-hot ``(N, num_outputs)``
      (``"sigmoid"``).
    loss: one of `LOSSES` (`head_loss`).
    num_outputs: the head's width.
    probe: the head and its training.
  """
  if loss not in LOSSES:
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}.")
  y = jnp.asarray(y, jnp.int32 if loss == "softmax" else jnp.float32)
  return np.asarray(_fit_outputs(
      jax.random.key(seed), jnp.asarray(x), y, jnp.asarray(x_test), module=probe.module(num_outputs), loss=loss,
      epochs=probe.epochs, learning_rate=probe.learning_rate, weight_decay=probe.weight_decay))


def fit_predict(seed: int, x: np.ndarray, y: np.ndarray, x_test: np.ndarray, *, regression: bool,
                num_classes: int = 0, probe: ProbeConfig = ProbeConfig()) -> np.ndarray:
  """Trains a head on ``(x, y)`` and predicts ``x_test`` (`fit_outputs`).

  Returns:
    ``(M,)``: predicted values (``regression``, one output under squared
    error), else the argmax of ``num_classes`` softmax outputs.
  """
  if regression:
    return fit_outputs(seed, x, y, x_test, loss="squared_error", num_outputs=1, probe=probe)[:, 0]
  return np.argmax(fit_outputs(seed, x, y, x_test, loss="softmax", num_outputs=num_classes, probe=probe), axis=-1)


def pitch_metrics(predicted: np.ndarray, true: np.ndarray) -> dict[str, float]:
  """``pitch_mse``, and ``pitch_accuracy`` / ``chroma_accuracy`` of the prediction rounded to a MIDI number."""
  predicted = np.asarray(predicted, np.float64)
  true = np.asarray(true, np.int64)
  rounded = np.rint(predicted).astype(np.int64)
  return {"pitch_mse": float(np.mean(np.square(predicted - true))),
          "pitch_accuracy": float(np.mean(rounded == true)),
          "chroma_accuracy": float(np.mean(rounded % 12 == true % 12))}


def label_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
  """``accuracy``, ``balanced_accuracy``, one-vs-rest ``mean_auc`` and the ``confusion`` matrix of class scores ``(M, K)``.

  From sklearn's metrics; ``confusion[i, j]`` counts examples of class ``i``
  predicted as ``j`` (int64 ``(K, K)``). ``mean_auc`` averages the ROC AUC of ``scores[:, k]`` for class ``k`` against
  the rest over the classes that have both positives and negatives in
  ``labels`` (NaN if none has).
  """
  scores, labels = np.asarray(scores, np.float64), np.asarray(labels)
  predicted = np.argmax(scores, axis=-1)
  num_classes = scores.shape[-1]
  with warnings.catch_warnings():  # A predicted class absent from the test labels is fine here.
    warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
    balanced = float(sk_metrics.balanced_accuracy_score(labels, predicted))
  return {"accuracy": float(np.mean(predicted == labels)),
          "balanced_accuracy": balanced,
          "mean_auc": mean_auc(scores, np.eye(num_classes, dtype=bool)[labels]),
          "confusion": sk_metrics.confusion_matrix(labels, predicted, labels=np.arange(num_classes))}


def mean_auc(scores: np.ndarray, multi_hot: np.ndarray) -> float:
  """The ROC AUC of every column of ``scores`` against the same column of ``multi_hot``, averaged over the
  columns with both positives and negatives (NaN if none)."""
  multi_hot = np.asarray(multi_hot, bool)
  aucs = [sk_metrics.roc_auc_score(multi_hot[:, k], scores[:, k]) for k in range(multi_hot.shape[1])
          if 0 < multi_hot[:, k].sum() < len(multi_hot)]
  return float(np.mean(aucs)) if aucs else float("nan")


def check_tasks(tasks) -> None:
  """Tasks are a non-empty subset of `NOTE_TASKS` or of `LABEL_TASKS`."""
  if not tasks or (not set(tasks) <= set(NOTE_TASKS) and not set(tasks) <= set(LABEL_TASKS)):
    raise ValueError(f"unknown tasks {sorted(set(tasks) - set(NOTE_TASKS) - set(LABEL_TASKS))} or a mix of note "
                     f"and label tasks; tasks are among {NOTE_TASKS} or among {LABEL_TASKS}.")


def hear_pitch_metrics(predicted: np.ndarray, true: np.ndarray) -> dict[str, float]:
  """``hear_pitch_accuracy`` and ``hear_chroma_accuracy`` of predicted MIDI classes (integers)."""
  predicted, true = np.asarray(predicted, np.int64), np.asarray(true, np.int64)
  return {"hear_pitch_accuracy": float(np.mean(predicted == true)),
          "hear_chroma_accuracy": float(np.mean(predicted % 12 == true % 12))}


def score_tasks(fit, train_labels: dict, test_labels: dict, *, tasks, num_families: int = 0,
                num_instruments: int = 0, num_classes: int = 0) -> dict[str, float]:
  """Every task's test metric from heads fitted by ``fit``: the task logic the probes and the supervised CFN share.

  Args:
    fit: ``(targets, loss, num_outputs) -> test outputs (M, num_outputs)``, a
      head (or a network) trained on the train examples with ``loss`` (one of
      `LOSSES`) and applied to the test examples.
    train_labels, test_labels: the examples' labels.
    tasks: among `NOTE_TASKS` (note labels; ``num_families``,
      ``num_instruments``) or among `LABEL_TASKS` (``label`` or a multi-hot
      ``labels``; ``num_classes``); a single-label source also gets its
      ``confusion``.

  The pitch regression is fitted on the MIDI number standardised with the
  train mean and std (unit-scale targets suit Adam's step size), and serves
  ``pitch_mse``, ``pitch_accuracy`` and ``chroma_accuracy``. The HEAR pitch
  tasks share one softmax head over the `NUM_MIDI_PITCHES` MIDI numbers,
  fitted on the integer pitch; its argmax is the predicted pitch.

  Raises:
    ValueError: for unknown tasks or a mix of note and label tasks; for HEAR
      pitch tasks, a train pitch outside ``[0, NUM_MIDI_PITCHES)``.
  """
  check_tasks(tasks)
  if set(tasks) <= set(LABEL_TASKS):
    if "labels" in train_labels:  # Multi-label: one sigmoid per class; mean AUC only.
      if set(tasks) - {"mean_auc"}:
        raise ValueError(f"a multi-label source (examples with 'labels') has only the task 'mean_auc', got {tasks}.")
      return {"mean_auc": mean_auc(fit(train_labels["labels"], "sigmoid", num_classes), test_labels["labels"])}
    scores = label_metrics(jax.nn.softmax(fit(train_labels["label"], "softmax", num_classes), axis=-1),
                           test_labels["label"])
    return {task: scores[task] for task in (*tasks, "confusion")}
  results = {}
  for task, key, classes in (("family_accuracy", "instrument/family", num_families),
                             ("instrument_accuracy", "instrument/label", num_instruments)):
    if task in tasks:
      predicted = np.argmax(fit(train_labels[key], "softmax", classes), axis=-1)
      results[task] = float(np.mean(predicted == test_labels[key]))
  if {"pitch_mse", "pitch_accuracy", "chroma_accuracy"} & set(tasks):
    pitch = np.asarray(train_labels["pitch"], np.float32)
    center, scale = float(pitch.mean()), float(pitch.std()) or 1.0
    predicted = fit((pitch - center) / scale, "squared_error", 1)[:, 0] * scale + center
    results.update({k: v for k, v in pitch_metrics(predicted, test_labels["pitch"]).items() if k in tasks})
  if set(HEAR_PITCH_TASKS) & set(tasks):
    pitch = np.asarray(train_labels["pitch"])
    if pitch.size and (pitch.min() < 0 or pitch.max() >= NUM_MIDI_PITCHES):
      raise ValueError(f"HEAR pitch tasks classify MIDI numbers in [0, {NUM_MIDI_PITCHES}), got train pitches in "
                       f"[{pitch.min()}, {pitch.max()}].")
    predicted = np.argmax(fit(pitch, "softmax", NUM_MIDI_PITCHES), axis=-1)
    results.update({k: v for k, v in hear_pitch_metrics(predicted, test_labels["pitch"]).items() if k in tasks})
  return results


def evaluate_tasks(seed: int, train_x: np.ndarray, train_labels: dict, test_x: np.ndarray, test_labels: dict, *,
                   num_families: int = 0, num_instruments: int = 0, num_classes: int = 0,
                   probe: ProbeConfig = ProbeConfig(), tasks=TASKS) -> dict[str, float]:
  """Every task's test metric for one seed: heads trained on ``train_x``, scored on ``test_x`` (`score_tasks`).

  Note tasks (`NOTE_TASKS`) read the note labels and need ``num_families``
  and ``num_instruments``; label tasks (`LABEL_TASKS`) read ``label`` (or
  ``labels``) and need ``num_classes``, and a single-label source also gets
  its ``confusion`` matrix (`label_metrics`); one call takes tasks of one kind.
  """
  check_tasks(tasks)
  x, x_test = standardize(train_x, test_x)
  fit = lambda y, loss, num_outputs: fit_outputs(seed, x, y, x_test, loss=loss, num_outputs=num_outputs, probe=probe)
  return score_tasks(fit, train_labels, test_labels, tasks=tasks, num_families=num_families,
                     num_instruments=num_instruments, num_classes=num_classes)
