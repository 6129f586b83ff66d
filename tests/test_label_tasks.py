"""Label tasks of images and videos: metrics, heads, the Evaluator's confusions and the report's tables."""

import itertools
import warnings

import numpy as np
import pytest
from sklearn import metrics as sk_metrics

from shuffle_learn import report
from shuffle_learn.data import moving_sprites
from shuffle_learn.evaluators import downstream
from shuffle_learn.evaluators import probes

LINEAR = probes.ProbeConfig(kind="linear", epochs=300, learning_rate=1e-2)


def pairwise_auc(scores, positive):
  """Brute-force ROC AUC: P(score of a positive > score of a negative), ties counted 1/2 (Mann-Whitney)."""
  pos, neg = scores[positive], scores[~positive]
  wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
  return wins / (len(pos) * len(neg))


def brute_mean_auc(scores, multi_hot):
  aucs = [pairwise_auc(scores[:, k], multi_hot[:, k]) for k in range(multi_hot.shape[1])
          if 0 < multi_hot[:, k].sum() < len(multi_hot)]
  return np.mean(aucs) if aucs else np.nan


# ----------------------------------------------------------------------------
# label_metrics and mean_auc


def test_label_metrics_match_sklearn_and_brute_force(rng):
  scores = rng.random((60, 5))
  labels = rng.integers(0, 5, 60)
  labels[:30] = np.argmax(scores[:30], axis=1)  # Half right, so every metric is away from chance.
  got = probes.label_metrics(scores, labels)
  predicted = np.argmax(scores, axis=1)
  assert set(got) == {"accuracy", "balanced_accuracy", "mean_auc", "confusion"}
  assert got["accuracy"] == pytest.approx(sk_metrics.accuracy_score(labels, predicted))
  assert got["balanced_accuracy"] == pytest.approx(sk_metrics.balanced_accuracy_score(labels, predicted))
  recalls = [np.mean(predicted[labels == k] == k) for k in range(5)]
  assert got["balanced_accuracy"] == pytest.approx(np.mean(recalls))
  np.testing.assert_array_equal(got["confusion"], sk_metrics.confusion_matrix(labels, predicted))
  assert got["confusion"].shape == (5, 5) and got["confusion"].sum() == 60
  assert got["mean_auc"] == pytest.approx(brute_mean_auc(scores, np.eye(5, dtype=bool)[labels]))


def test_label_metrics_with_ties_and_a_class_absent_from_the_test_labels():
  """Class 3 has no test example: its row of the confusion is 0 and it is left out of the recalls and AUCs."""
  scores = np.array([[0.5, 0.2, 0.2, 0.1], [0.2, 0.5, 0.2, 0.1], [0.2, 0.2, 0.5, 0.1], [0.1, 0.1, 0.1, 0.7],
                     [0.5, 0.2, 0.2, 0.1], [0.2, 0.2, 0.5, 0.1], [0.2, 0.5, 0.2, 0.1], [0.1, 0.2, 0.2, 0.5]])
  labels = np.array([0, 1, 2, 0, 1, 2, 1, 2])
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # sklearn: y_pred holds class 3, absent from y_true.
    got = probes.label_metrics(scores, labels)
    expected_balanced = sk_metrics.balanced_accuracy_score(labels, np.argmax(scores, axis=1))
  predicted = np.argmax(scores, axis=1)  # [0, 1, 2, 3, 0, 2, 1, 3]
  assert got["accuracy"] == pytest.approx(5 / 8)
  assert got["balanced_accuracy"] == pytest.approx((1 / 2 + 2 / 3 + 2 / 3) / 3)  # Recalls of classes 0, 1, 2.
  assert got["balanced_accuracy"] == pytest.approx(expected_balanced)
  np.testing.assert_array_equal(got["confusion"],
                                sk_metrics.confusion_matrix(labels, predicted, labels=np.arange(4)))
  np.testing.assert_array_equal(got["confusion"][3], 0)
  np.testing.assert_array_equal(got["confusion"].sum(axis=1), [2, 3, 3, 0])
  multi_hot = np.eye(4, dtype=bool)[labels]
  expected = np.mean([pairwise_auc(scores[:, k], multi_hot[:, k]) for k in range(3)])  # Class 3 left out.
  assert got["mean_auc"] == pytest.approx(expected)
  assert got["mean_auc"] == pytest.approx(brute_mean_auc(scores, multi_hot))


def test_mean_auc_against_pairwise_counts_with_ties(rng):
  scores = rng.integers(0, 4, (40, 6)).astype(float)  # Few values: many ties.
  multi_hot = rng.random((40, 6)) < 0.4
  multi_hot[:, 4] = False  # No positive: left out.
  multi_hot[:, 5] = True  # No negative: left out.
  got = probes.mean_auc(scores, multi_hot)
  assert got == pytest.approx(np.mean([pairwise_auc(scores[:, k], multi_hot[:, k]) for k in range(4)]))
  assert np.isnan(probes.mean_auc(scores, np.zeros((40, 6), bool)))
  perfect = np.array([[0.9], [0.8], [0.2], [0.2]])
  assert probes.mean_auc(perfect, np.array([[1], [1], [0], [0]])) == 1.0
  assert probes.mean_auc(perfect, np.array([[1], [0], [1], [0]])) == pytest.approx(pairwise_auc(
      perfect[:, 0], np.array([True, False, True, False])))  # 0.5 + 0.5 * 0.5 tie = 0.625
  assert probes.mean_auc(perfect, np.array([[1], [0], [1], [0]])) == pytest.approx(0.625)


# ----------------------------------------------------------------------------
# head_loss and fit_outputs


def test_head_loss_matches_numpy_formulas(rng):
  outputs = rng.standard_normal((7, 4)).astype(np.float32) * 3
  targets = rng.standard_normal(7).astype(np.float32)
  got = float(probes.head_loss("squared_error", outputs, targets))
  assert got == pytest.approx(np.mean((outputs[:, 0] - targets) ** 2), rel=1e-5)
  labels = rng.integers(0, 4, 7)
  logsumexp = np.log(np.sum(np.exp(outputs.astype(np.float64)), axis=1))
  expected = np.mean(logsumexp - outputs[np.arange(7), labels])
  assert float(probes.head_loss("softmax", outputs, labels)) == pytest.approx(expected, rel=1e-5)
  multi_hot = (rng.random((7, 4)) < 0.5).astype(np.float32)
  p = 1 / (1 + np.exp(-outputs.astype(np.float64)))
  expected = np.mean(-(multi_hot * np.log(p) + (1 - multi_hot) * np.log(1 - p)))  # Over examples and classes.
  assert float(probes.head_loss("sigmoid", outputs, multi_hot)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("loss,num_outputs", [("squared_error", 1), ("softmax", 3), ("sigmoid", 4)])
def test_fit_outputs_shapes(rng, loss, num_outputs):
  x, x_test = rng.standard_normal((12, 5)).astype(np.float32), rng.standard_normal((9, 5)).astype(np.float32)
  y = {"squared_error": rng.standard_normal(12), "softmax": rng.integers(0, 3, 12),
       "sigmoid": rng.random((12, 4)) < 0.5}[loss]
  probe = probes.ProbeConfig(kind="linear", epochs=5)
  out = probes.fit_outputs(0, x, y, x_test, loss=loss, num_outputs=num_outputs, probe=probe)
  assert isinstance(out, np.ndarray) and out.shape == (9, num_outputs) and np.all(np.isfinite(out))
  np.testing.assert_array_equal(out, probes.fit_outputs(0, x, y, x_test, loss=loss, num_outputs=num_outputs,
                                                        probe=probe))  # Seeded.


def test_fit_outputs_rejects_an_unknown_loss(rng):
  x = rng.standard_normal((4, 2)).astype(np.float32)
  with pytest.raises(ValueError, match="loss must be one of"):
    probes.fit_outputs(0, x, np.zeros(4), x, loss="hinge", num_outputs=2)


# ----------------------------------------------------------------------------
# evaluate_tasks


def _encoded(rng, labels, num_classes, dim=12, noise=0.3):
  """Embeddings that encode one-hot (or multi-hot) labels linearly, plus Gaussian noise."""
  codes = rng.standard_normal((num_classes, dim))
  hot = labels if labels.ndim == 2 else np.eye(num_classes)[labels]
  return (hot @ codes + noise * rng.standard_normal((len(labels), dim))).astype(np.float32)


def test_multi_label_evaluate_tasks_reaches_a_high_mean_auc(rng):
  multi_hot = (rng.random((300, 4)) < 0.4).astype(np.int32)
  x = _encoded(rng, multi_hot, 4)
  train, test = {"labels": multi_hot[:200]}, {"labels": multi_hot[200:]}
  got = probes.evaluate_tasks(0, x[:200], train, x[200:], test, num_classes=4, probe=LINEAR, tasks=("mean_auc",))
  assert set(got) == {"mean_auc"}  # No confusion for a multi-label source.
  assert got["mean_auc"] > 0.95
  for tasks in (("accuracy",), probes.LABEL_TASKS):
    with pytest.raises(ValueError, match="multi-label"):
      probes.evaluate_tasks(0, x[:200], train, x[200:], test, num_classes=4, probe=LINEAR, tasks=tasks)


def test_single_label_evaluate_tasks_recovers_encoded_labels_and_not_shuffled_ones(rng):
  labels = rng.integers(0, 4, 600)
  x = _encoded(rng, labels, 4)
  test = {"label": labels[200:]}
  got = probes.evaluate_tasks(0, x[:200], {"label": labels[:200]}, x[200:], test, num_classes=4, probe=LINEAR,
                              tasks=probes.LABEL_TASKS)
  assert list(got) == [*probes.LABEL_TASKS, "confusion"]
  assert got["accuracy"] > 0.95 and got["balanced_accuracy"] > 0.95 and got["mean_auc"] > 0.99
  assert got["confusion"].shape == (4, 4) and got["confusion"].sum() == 400
  assert got["accuracy"] == pytest.approx(np.trace(got["confusion"]) / 400)
  shuffled = {"label": rng.permutation(labels[:200])}
  chance = probes.evaluate_tasks(0, x[:200], shuffled, x[200:], test, num_classes=4, probe=LINEAR,
                                 tasks=probes.LABEL_TASKS)
  assert chance["accuracy"] < 0.4 and chance["balanced_accuracy"] < 0.4  # Chance 0.25; std 0.022 on 400.
  assert abs(chance["mean_auc"] - 0.5) < 0.1
  subset = probes.evaluate_tasks(0, x[:200], {"label": labels[:200]}, x[200:], test, num_classes=4, probe=LINEAR,
                                 tasks=("balanced_accuracy",))
  assert list(subset) == ["balanced_accuracy", "confusion"]
  assert subset["balanced_accuracy"] == got["balanced_accuracy"]  # Same seed, same head.


@pytest.mark.parametrize("tasks", [("accuracy", "family_accuracy"), ("pitch_mse", "mean_auc"), ("top5",)])
def test_evaluate_tasks_rejects_mixed_or_unknown_tasks(rng, tasks):
  x = rng.standard_normal((8, 3)).astype(np.float32)
  labels = {"label": np.arange(8) % 2, "pitch": np.arange(8), "instrument/family": np.arange(8) % 2,
            "instrument/label": np.arange(8) % 2}
  with pytest.raises(ValueError, match="a mix of note and label tasks"):
    probes.evaluate_tasks(0, x, labels, x, labels, num_classes=2, num_families=2, num_instruments=2, tasks=tasks)


# ----------------------------------------------------------------------------
# downstream.Evaluator on an in-memory image source


class _Images:
  """Images whose mean colour tells their class (3 classes), with noise."""

  num_classes = 3

  def __init__(self, n, seed):
    self.n, self.seed = n, seed

  def __len__(self):
    return self.n

  def __getitem__(self, index):
    rng = np.random.default_rng((self.seed, index))
    label = index % 3
    image = rng.integers(0, 100, (8, 8, 3))
    image[..., label] += 150
    return {"image": image.astype(np.uint8), "label": np.int32(label)}


def _mean_colour(images):
  return images.astype(np.float32).mean(axis=(1, 2))


def test_evaluator_yields_every_task_and_a_confusion_per_seed(tmp_path):
  evaluator = downstream.Evaluator(
      _Images(40, 0), _Images(15, 1), n_train=(6, 12), seeds=2, pool_examples=30, test_examples=None,
      probe=LINEAR, tasks=probes.LABEL_TASKS, cache_dir=str(tmp_path), classes={"num_classes": 3},
      raw_key="image")
  results = list(evaluator.run("colour", _mean_colour))
  assert [key for key, _ in results] == [(n, task) for n in (6, 12) for task in (*probes.LABEL_TASKS, "confusion")]
  by_key = dict(results)
  for n in (6, 12):
    for task in probes.LABEL_TASKS:
      assert len(by_key[n, task]) == 2 and all(0 <= v <= 1 for v in by_key[n, task])
    confusions = by_key[n, "confusion"]
    assert len(confusions) == 2
    for seed, confusion in enumerate(confusions):
      confusion = np.asarray(confusion)
      assert confusion.shape == (3, 3) and confusion.sum() == 15
      np.testing.assert_array_equal(confusion.sum(axis=1), [5, 5, 5])  # Test labels 0, 1, 2, 0, ...
      assert by_key[n, "accuracy"][seed] == pytest.approx(np.trace(confusion) / 15)
  assert min(by_key[12, "accuracy"]) > 0.9  # The mean colour gives the class away.
  assert sorted(p.name for p in tmp_path.iterdir()) == ["colour-testall.npz", "colour-train30.npz"]  # Cached.


# ----------------------------------------------------------------------------
# report.direction_accuracy and report.confusion_markdown


def test_direction_accuracy_on_a_hand_made_matrix():
  confusion = np.array([[8, 2, 1, 0],
                        [4, 6, 0, 3],
                        [0, 0, 0, 0],
                        [1, 0, 0, 9]])
  assert report.direction_accuracy(confusion, 0, 1) == pytest.approx((8 + 6) / (8 + 2 + 4 + 6))
  assert report.direction_accuracy(confusion.tolist(), 0, 1) == pytest.approx(0.7)  # Lists, as in results.json.
  assert report.direction_accuracy(confusion, 2, 3) == pytest.approx(9 / 9)
  assert np.isnan(report.direction_accuracy(np.diag([0, 0, 5, 5]), 0, 1))


def _results(names, confusion):
  return {"n_train": 8, "class_names": list(names), "confusion": confusion}


def test_confusion_markdown_has_recalls_and_a_direction_table_only_for_moving_sprites():
  k = len(moving_sprites.CLASS_NAMES)
  good = np.eye(k, dtype=int) * 4  # Every class right.
  swapped = np.zeros((k, k), int)
  for c in range(k):
    swapped[c, c ^ 1] = 3  # Every clip predicted as its time-reversed partner.
    swapped[c, c] = 1
  table = report.confusion_markdown(_results(moving_sprites.CLASS_NAMES, {"a": good.tolist(), "b": swapped.tolist()}))
  assert "Per-class recall at N = 8" in table
  assert "| moving left to right | 1.000 | 0.250 |" in table
  assert "| uncovering | 1.000 | 0.250 |" in table
  assert "Direction accuracy per time-reversed pair" in table
  assert "| moving left to right / moving right to left | 1.000 | 0.250 |" in table
  assert "| covering / uncovering | 1.000 | 0.250 |" in table
  assert table.count(" / ") == k // 2

  other = report.confusion_markdown(_results(("cat", "dog", "bird", "fish"), {"a": np.eye(4, dtype=int).tolist()}))
  assert "| cat | 1.000 |" in other and "| fish | 1.000 |" in other
  assert "Direction accuracy" not in other
  hand = np.array([[3, 1, 0], [0, 0, 0], [2, 2, 4]])
  absent = report.confusion_markdown(_results(("x", "y", "z"), {"m": hand.tolist()}))
  assert "| x | 0.750 |" in absent and "| y | 0.000 |" in absent and "| z | 0.500 |" in absent
