"""Downstream probes and frozen embeddings: standardisation, heads, task metrics, embedders, cache."""

import io
import zipfile

import jax.numpy as jnp
import numpy as np
import pytest

from shuffle_learn.data import frontend
from shuffle_learn.data import schema
from shuffle_learn.evaluators import embeddings
from shuffle_learn.evaluators import probes
from shuffle_learn.models import cfn

NOTE_SAMPLES = 1600  # 0.1 s: eight log-mel frames.
# A linear head that converges on small well-conditioned problems.
LINEAR = probes.ProbeConfig(kind="linear", epochs=2000, learning_rate=1e-2, weight_decay=0.0)


class _Notes:
  """A small in-memory note source; note i has pitch 40 + i and its own audio."""

  def __init__(self, n):
    self.n = n

  def __len__(self):
    return self.n

  def __getitem__(self, index):
    rng = np.random.default_rng(index)
    return {"audio": rng.standard_normal(NOTE_SAMPLES).astype(np.float32) * 0.1,
            "pitch": np.int32(40 + index), "velocity": np.int32(index % 5),
            "instrument/label": np.int32(index % 3), "instrument/family": np.int32(index % 11),
            "instrument/source": np.int32(index % 2)}


def _blobs(rng, n, num_classes=4, dim=6, spread=8.0):
  """Gaussian blobs: unit-variance clusters around centres ``spread`` apart on the axes."""
  labels = rng.integers(0, num_classes, n)
  return (spread * np.eye(num_classes, dim)[labels] + rng.standard_normal((n, dim))), labels


# ----------------------------------------------------------------------------
# probes.standardize


def test_standardize_uses_the_train_statistics(rng):
  train_x = rng.standard_normal((50, 4)) * [1.0, 10.0, 1.0, 0.1] + [0.0, 5.0, 0.0, -3.0]
  train_x[:, 2] = 7.0  # A constant dimension.
  test_x = rng.standard_normal((20, 4)) * 3.0 + 1.0
  test_x[:, 2] = 7.0
  x, x_test = probes.standardize(train_x, test_x)
  assert x.dtype == x_test.dtype == np.float32
  varying = [0, 1, 3]
  np.testing.assert_allclose(x[:, varying].mean(axis=0), 0.0, atol=1e-6)
  np.testing.assert_allclose(x[:, varying].std(axis=0), 1.0, rtol=1e-5)
  # The test set is moved by the TRAIN mean and std, not its own.
  mean, std = train_x[:, varying].mean(axis=0), train_x[:, varying].std(axis=0)
  clipped = np.clip(test_x[:, varying], train_x[:, varying].min(axis=0), train_x[:, varying].max(axis=0))
  np.testing.assert_allclose(x_test[:, varying], (clipped - mean) / std, rtol=1e-5, atol=1e-5)
  assert np.abs(x_test[:, varying].mean(axis=0)).max() > 0.1  # Not re-centred on its own mean.
  # The constant dimension is 0 everywhere, no NaN.
  assert np.all(np.isfinite(x)) and np.all(np.isfinite(x_test))
  np.testing.assert_array_equal(x[:, 2], 0.0)
  np.testing.assert_array_equal(x_test[:, 2], 0.0)


def test_standardize_keeps_test_features_inside_the_train_range():
  # A ReLU unit active on one train note in 1000: std 0.03; a test note with
  # the unit at 50 would reach the head at 1,600 stds without the clip.
  train_x = np.zeros((1000, 2))
  train_x[:, 0] = np.linspace(-1, 1, 1000)
  train_x[0, 1] = 1.0
  test_x = np.array([[0.5, 50.0], [-3.0, 0.0]])
  x, x_test = probes.standardize(train_x, test_x)
  assert x_test.max(axis=0)[1] == pytest.approx(x.max(axis=0)[1])
  assert x_test[1, 0] == pytest.approx(x[:, 0].min())  # Clipped to the train minimum.
  assert x_test[0, 0] == pytest.approx((0.5 - train_x[:, 0].mean()) / train_x[:, 0].std(), rel=1e-5)


# ----------------------------------------------------------------------------
# probes.fit_predict


def test_linear_probe_matches_least_squares(rng):
  x, x_test = probes.standardize(rng.standard_normal((200, 5)), rng.standard_normal((50, 5)))
  w, b = rng.standard_normal(5), 0.5
  y = x.astype(np.float64) @ w + b  # Noiseless.
  coef, *_ = np.linalg.lstsq(np.c_[x, np.ones(len(x))], y, rcond=None)
  expected = np.c_[x_test, np.ones(len(x_test))] @ coef
  predicted = probes.fit_predict(0, x, y, x_test, regression=True, probe=LINEAR)
  assert predicted.shape == (50,)
  # Adam stops near, not at, the optimum: within 0.1% of the targets' std (it gets ~1e-6 here).
  np.testing.assert_allclose(predicted, expected, atol=1e-3 * y.std())


@pytest.mark.parametrize("kind", probes.PROBES)
def test_classifiers_separate_blobs_and_stay_at_chance_on_random_labels(rng, kind):
  probe = probes.ProbeConfig(kind=kind, hidden=64, epochs=300, learning_rate=1e-2)
  train_x, train_y = _blobs(rng, 200)
  test_x, test_y = _blobs(rng, 200)
  x, x_test = probes.standardize(train_x, test_x)
  predicted = probes.fit_predict(0, x, train_y, x_test, regression=False, num_classes=4, probe=probe)
  assert predicted.shape == (200,)
  assert np.mean(predicted == test_y) >= 0.95
  # Labels drawn independently of the inputs: nothing to learn, the test split must not leak.
  predicted = probes.fit_predict(0, x, rng.permutation(train_y), x_test, regression=False, num_classes=4,
                                 probe=probe)
  assert np.mean(predicted == rng.permutation(test_y)) < 0.5  # Chance is 0.25.


def test_fit_predict_is_deterministic_per_seed(rng):
  probe = probes.ProbeConfig(kind="mlp", hidden=32, epochs=50)
  x, x_test = probes.standardize(rng.standard_normal((64, 5)), rng.standard_normal((16, 5)))
  y = rng.standard_normal(64)
  fit = lambda seed: probes.fit_predict(seed, x, y, x_test, regression=True, probe=probe)
  first = fit(0)
  np.testing.assert_array_equal(fit(0), first)
  other = fit(1)
  assert np.all(np.isfinite(other)) and np.abs(other - first).max() > 1e-4  # Another initialisation.


# ----------------------------------------------------------------------------
# probes.evaluate_tasks


def _pitch_world(rng, n, num_families=11, num_instruments=6):
  """Embeddings holding the pitch linearly and the family and instrument as one-hot blocks."""
  labels = {"pitch": rng.integers(24, 85, n).astype(np.int32),
            "instrument/family": rng.integers(0, num_families, n).astype(np.int32),
            "instrument/label": rng.integers(0, num_instruments, n).astype(np.int32)}
  x = np.c_[labels["pitch"] + 0.05 * rng.standard_normal(n), np.eye(num_families)[labels["instrument/family"]],
            np.eye(num_instruments)[labels["instrument/label"]], rng.standard_normal((n, 3))]
  return x.astype(np.float32), labels


def test_evaluate_tasks_recovers_linearly_encoded_labels(rng):
  train_x, train_labels = _pitch_world(rng, 300)
  test_x, test_labels = _pitch_world(rng, 100)
  # A larger rate: the pitch weight must grow to ~17 (the pitch's std).
  probe = probes.ProbeConfig(kind="linear", epochs=2000, learning_rate=5e-2, weight_decay=0.0)
  results = probes.evaluate_tasks(0, train_x, train_labels, test_x, test_labels, num_families=11,
                                  num_instruments=6, probe=probe)
  assert set(results) == set(probes.TASKS)
  assert results["family_accuracy"] >= 0.99 and results["instrument_accuracy"] >= 0.99
  assert 0 <= results["pitch_mse"] < 1
  assert results["pitch_accuracy"] > 0.9 and results["chroma_accuracy"] > 0.9
  assert results["chroma_accuracy"] >= results["pitch_accuracy"]
  assert all(0 <= results[k] <= 1 for k in probes.TASKS if k != "pitch_mse")


def test_linear_probe_recovers_a_linearly_encoded_pitch(rng):
  # Standardised targets: a unit weight on one standardised input, reached in 2000 Adam steps at 1e-2.
  train_x, train_labels = _pitch_world(rng, 300)
  test_x, test_labels = _pitch_world(rng, 100)
  results = probes.evaluate_tasks(0, train_x, train_labels, test_x, test_labels, num_families=11,
                                  num_instruments=6, probe=probes.ProbeConfig(kind="linear", epochs=2000, learning_rate=1e-2),
                                  tasks=("pitch_mse", "pitch_accuracy"))
  assert results["pitch_mse"] < 1 and results["pitch_accuracy"] > 0.9


def _fake_fit_outputs(calls, regression_output, classification_output):
  """Stands in for `probes.fit_outputs`: records its arguments, returns outputs whose prediction is the given one."""

  def fake(seed, x, y, x_test, *, loss, num_outputs, probe=None):
    regression = loss == "squared_error"
    num_classes = 0 if regression else num_outputs
    calls.append({"x": x, "y": np.asarray(y), "x_test": x_test, "regression": regression,
                  "num_classes": num_classes})
    if regression:
      return np.asarray(regression_output, np.float64)[:, None]
    return np.eye(num_classes)[classification_output[num_classes]]  # Its argmax is the given prediction.

  return fake


def test_pitch_metrics_are_read_off_the_rounded_regression(rng, monkeypatch):
  train_labels = {"pitch": rng.integers(30, 90, 40).astype(np.int32)}
  true = np.array([60, 60, 60, 60, 61, 70, 25, 100], np.int32)
  center = float(train_labels["pitch"].astype(np.float32).mean())
  scale = float(train_labels["pitch"].astype(np.float32).std())
  x, x_test = rng.standard_normal((40, 3)), rng.standard_normal((8, 3))

  def run(predicted):
    calls = []
    monkeypatch.setattr(probes, "fit_outputs", _fake_fit_outputs(calls, (predicted - center) / scale, {}))
    results = probes.evaluate_tasks(0, x, train_labels, x_test, {"pitch": true}, num_families=11,
                                    num_instruments=3, tasks=("pitch_mse", "pitch_accuracy", "chroma_accuracy"))
    assert len(calls) == 1 and calls[0]["regression"]  # One regression serves the three metrics.
    # It is fitted on the pitch standardised with the train mean and std.
    np.testing.assert_allclose(calls[0]["y"], (train_labels["pitch"] - center) / scale, rtol=1e-5, atol=1e-5)
    return results

  # An octave up: every pitch wrong, every pitch class right.
  results = run(true + 12.0)
  np.testing.assert_allclose(results["pitch_mse"], 144.0, rtol=1e-5)
  assert results["pitch_accuracy"] == 0.0 and results["chroma_accuracy"] == 1.0
  # Fractional predictions, against NumPy.
  predicted = true + np.array([0.4, -0.4, 0.6, -0.6, 11.7, -12.2, 23.6, -0.49])
  results = run(predicted)
  rounded = np.rint(predicted).astype(int)  # 60 60 61 59 73 58 49 100
  np.testing.assert_allclose(results["pitch_mse"], np.mean((predicted - true) ** 2), rtol=1e-5)
  assert results["pitch_accuracy"] == pytest.approx(np.mean(rounded == true)) == 3 / 8
  assert results["chroma_accuracy"] == pytest.approx(np.mean(rounded % 12 == true % 12)) == 6 / 8
  # Equal pitches have equal pitch classes, whatever the predictions.
  for _ in range(5):
    results = run(true + rng.normal(0, 8, len(true)))
    assert results["chroma_accuracy"] >= results["pitch_accuracy"]


def test_evaluate_tasks_returns_the_requested_tasks(rng, monkeypatch):
  n, m = 30, 10
  train_labels = {"pitch": rng.integers(30, 90, n), "instrument/family": rng.integers(0, 11, n),
                  "instrument/label": rng.integers(0, 4, n)}
  test_labels = {"pitch": rng.integers(30, 90, m), "instrument/family": rng.integers(0, 11, m),
                 "instrument/label": rng.integers(0, 4, m)}
  family = test_labels["instrument/family"].copy()
  family[:3] = (family[:3] + 1) % 11  # 7 of 10 right.
  calls = []
  monkeypatch.setattr(probes, "fit_outputs", _fake_fit_outputs(
      calls, np.zeros(m), {11: family, 4: test_labels["instrument/label"]}))
  evaluate = lambda tasks: probes.evaluate_tasks(
      0, rng.standard_normal((n, 5)), train_labels, rng.standard_normal((m, 5)), test_labels, num_families=11,
      num_instruments=4, tasks=tasks)
  for tasks in [("pitch_accuracy",), ("family_accuracy", "chroma_accuracy"), ("instrument_accuracy",),
                probes.TASKS]:
    calls.clear()
    results = evaluate(tasks)
    assert set(results) == set(tasks)
    assert len(calls) == len({"pitch" if "pitch" in t or "chroma" in t else t for t in tasks})
  assert results["family_accuracy"] == pytest.approx(0.7)
  assert results["instrument_accuracy"] == 1.0
  # The heads see standardised inputs with the classes of their task.
  for call in calls:
    np.testing.assert_allclose(call["x"].mean(axis=0), 0.0, atol=1e-5)
  assert sorted(c["num_classes"] for c in calls if not c["regression"]) == [4, 11]
  with pytest.raises(ValueError, match="unknown tasks"):
    evaluate(("family_accuracy", "pitch_rmse"))


def test_probe_config_rejects_bad_values():
  for kwargs in [{"kind": "svm"}, {"hidden": 0}, {"epochs": 0}, {"learning_rate": 0.0},
                 {"learning_rate": -1e-3}, {"learning_rate": float("nan")}, {"weight_decay": -1e-4}]:
    with pytest.raises(ValueError):
      probes.ProbeConfig(**kwargs)
  assert isinstance(probes.ProbeConfig(kind="linear").module(3), probes.Linear)
  assert isinstance(probes.ProbeConfig().module(3), probes.MLP)


# ----------------------------------------------------------------------------
# embeddings: embedders


def test_logmel_embedder_is_the_mean_and_std_over_time(rng):
  audio = (0.1 * rng.standard_normal((3, NOTE_SAMPLES + 800))).astype(np.float32)
  for num_mel_bins in (64, 16):
    embed = embeddings.logmel_embedder(NOTE_SAMPLES, num_mel_bins=num_mel_bins)
    out = embed(audio)
    assert out.shape == (3, 2 * num_mel_bins)
    spec = np.asarray(frontend.log_mel_spectrogram(audio[:, :NOTE_SAMPLES], num_mel_bins=num_mel_bins),
                      np.float64)
    assert spec.shape[1] == 8  # Frames over time.
    np.testing.assert_allclose(out, np.c_[spec.mean(axis=1), spec.std(axis=1)], rtol=1e-4, atol=1e-4)
  # Samples after the first NOTE_SAMPLES are ignored.
  other = audio.copy()
  other[:, NOTE_SAMPLES:] = rng.standard_normal((3, 800))
  np.testing.assert_array_equal(embed(other), out)


@pytest.mark.parametrize("layer,method,dims", [("conv", cfn.CFN.conv_embed, 4 * 2 * 16),
                                              ("fc6", cfn.CFN.fc6_embed, 4 * 32),
                                              ("fc7", cfn.CFN.embed, 64)])
def test_cfn_embedder_is_the_layer_of_the_first_samples(rng, tiny_experiment, layer, method, dims):
  model, params, input_ = tiny_experiment
  num_samples = input_.num_samples
  audio = (0.1 * rng.standard_normal((3, num_samples))).astype(np.float32)
  embed = embeddings.cfn_embedder(model, params, input_, layer)
  out = embed(audio)
  assert out.shape == (3, dims)  # 4 bands x (mean and max of 16 channels, or fc6), or fc7.
  expected = model.apply(params, input_(jnp.asarray(audio)), method=method)
  np.testing.assert_allclose(out, np.asarray(expected), rtol=1e-5, atol=1e-6)
  assert np.abs(out).max() > 0  # Not trivially all zero after the ReLU.
  # Samples appended after the first num_samples change nothing.
  longer = np.c_[audio, rng.standard_normal((3, 500)).astype(np.float32)]
  np.testing.assert_array_equal(embed(longer), out)


def test_cfn_embedder_rejects_an_unknown_layer(tiny_experiment):
  with pytest.raises(ValueError, match="layer must be one of"):
    embeddings.cfn_embedder(*tiny_experiment, "fc8")


# ----------------------------------------------------------------------------
# embeddings.embed_examples


def _head(audio):
  return audio[:, :3] * 2.0


def test_embed_examples_reads_every_note_once_in_order():
  source = _Notes(10)
  out, labels = embeddings.embed_examples(source, _head, batch_size=4)  # Batches of 4, 4 and 2.
  assert out.dtype == np.float32 and out.shape == (10, 3)
  np.testing.assert_array_equal(out, np.stack([_head(source[i]["audio"][None])[0] for i in range(10)]))
  assert set(labels) == set(schema.NOTE_LABELS)
  for key in schema.NOTE_LABELS:
    assert labels[key].dtype == np.int32
    np.testing.assert_array_equal(labels[key], [source[i][key] for i in range(10)])


def test_embed_examples_takes_a_seeded_subset():
  source = _Notes(20)
  embed = lambda seed, k=6: embeddings.embed_examples(source, _head, num_examples=k, seed=seed, batch_size=4)
  out, labels = embed(0)
  assert out.shape == (6, 3) and len(labels["pitch"]) == 6
  # The notes of `loader.Subset`: the first six of the seed's permutation.
  chosen = np.random.default_rng(0).permutation(20)[:6]
  assert sorted(labels["pitch"] - 40) == sorted(chosen)
  # Each embedding goes with its own note's labels.
  for row, pitch in zip(out, labels["pitch"]):
    note = source[int(pitch) - 40]
    np.testing.assert_array_equal(row, _head(note["audio"][None])[0])
    assert labels["instrument/family"][list(labels["pitch"]).index(pitch)] == note["instrument/family"]
  again, again_labels = embed(0)
  np.testing.assert_array_equal(again, out)
  np.testing.assert_array_equal(again_labels["pitch"], labels["pitch"])
  assert set(embed(1)[1]["pitch"]) != set(labels["pitch"])
  # More examples than notes: all of them, once.
  assert sorted(embed(0, k=50)[1]["pitch"]) == list(range(40, 60))


# ----------------------------------------------------------------------------
# embeddings.cached


def _computed(rng):
  out = rng.standard_normal((5, 4)).astype(np.float32)
  labels = {k: rng.integers(0, 100, 5).astype(np.int32) for k in schema.NOTE_LABELS}
  calls = []

  def compute():
    calls.append(1)
    return out, labels

  return out, labels, calls, compute


def test_cached_computes_once_then_reads_back(rng, tmp_path):
  out, labels, calls, compute = _computed(rng)
  path = str(tmp_path / "sub" / "dir" / "embeddings.npz")  # Directories created.
  first = embeddings.cached(path, compute)
  assert calls == [1] and (tmp_path / "sub" / "dir" / "embeddings.npz").exists()
  assert sorted(p.name for p in (tmp_path / "sub" / "dir").iterdir()) == ["embeddings.npz"]  # No temp left.
  np.testing.assert_array_equal(first[0], out)
  second_out, second_labels = embeddings.cached(path, compute)
  assert calls == [1]  # Read back, not recomputed.
  assert second_out.dtype == np.float32
  np.testing.assert_array_equal(second_out, out)
  assert set(second_labels) == set(schema.NOTE_LABELS)  # Keys with '/' survive.
  for key in schema.NOTE_LABELS:
    assert second_labels[key].dtype == np.int32
    np.testing.assert_array_equal(second_labels[key], labels[key])


def test_cached_recomputes_a_garbage_file(rng, tmp_path):
  out, labels, calls, compute = _computed(rng)
  path = tmp_path / "embeddings.npz"
  path.write_bytes(b"not an npz at all \x00\x01\x02" * 10)
  np.testing.assert_array_equal(embeddings.cached(str(path), compute)[0], out)
  assert calls == [1]
  # Overwritten with a good file: the next call reads it.
  np.testing.assert_array_equal(embeddings.cached(str(path), compute)[0], out)
  assert calls == [1]


def test_cached_recomputes_a_file_missing_a_label(rng, tmp_path):
  out, labels, calls, compute = _computed(rng)
  path = tmp_path / "embeddings.npz"
  np.savez(path, embeddings=out[:2], pitch=labels["pitch"][:2])  # From another version.
  np.testing.assert_array_equal(embeddings.cached(str(path), compute, schema.NOTE_LABELS)[0], out)
  assert calls == [1]


def test_cached_recomputes_a_file_whose_arrays_disagree_in_length(rng, tmp_path):
  out, labels, calls, compute = _computed(rng)
  path = tmp_path / "embeddings.npz"
  np.savez(path, embeddings=out[:2], **labels)  # Five labels of each kind for two embeddings.
  np.testing.assert_array_equal(embeddings.cached(str(path), compute)[0], out)
  assert calls == [1]


def test_cached_recomputes_a_truncated_file(rng, tmp_path):
  out, labels, calls, compute = _computed(rng)
  buffer = io.BytesIO()
  np.savez(buffer, embeddings=out, **labels)
  path = tmp_path / "embeddings.npz"
  path.write_bytes(buffer.getvalue()[:len(buffer.getvalue()) // 2])  # Starts like a zip, but cut short.
  with pytest.raises(zipfile.BadZipFile):
    np.load(path)  # What cached() meets.
  np.testing.assert_array_equal(embeddings.cached(str(path), compute)[0], out)
  assert calls == [1]
