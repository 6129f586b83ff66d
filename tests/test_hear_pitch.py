"""The HEAR nsynth_pitch tasks of `shuffle_learn.evaluators.probes`: one MIDI classifier, pitch and chroma accuracy."""

import numpy as np
import pytest

from shuffle_learn import job as job_lib
from shuffle_learn.evaluators import probes

LINEAR = probes.ProbeConfig(kind="linear", epochs=300, learning_rate=1e-2)


def _fake_fit(calls, outputs_by_loss):
  """A ``fit(targets, loss, num_outputs)`` that records its arguments and returns the chosen outputs of ``loss``."""

  def fit(targets, loss, num_outputs):
    calls.append((np.asarray(targets), loss, num_outputs))
    out = np.asarray(outputs_by_loss[loss, num_outputs], np.float64)
    assert out.shape[-1] == num_outputs
    return out

  return fit


def _note_labels(rng, n, pitches=np.arange(48, 72)):
  return {"pitch": rng.choice(pitches, n).astype(np.int32), "instrument/family": rng.integers(0, 11, n),
          "instrument/label": rng.integers(0, 4, n)}


def test_the_task_lists():
  assert probes.TASKS == ("family_accuracy", "instrument_accuracy", "pitch_mse", "pitch_accuracy",
                          "chroma_accuracy")  # Unchanged: the configs' default.
  assert probes.HEAR_PITCH_TASKS == ("hear_pitch_accuracy", "hear_chroma_accuracy")
  assert probes.NOTE_TASKS == probes.TASKS + probes.HEAR_PITCH_TASKS
  for tasks in (probes.HEAR_PITCH_TASKS, ("hear_chroma_accuracy",), ("pitch_mse", "hear_pitch_accuracy"),
                probes.NOTE_TASKS, probes.TASKS, probes.LABEL_TASKS):
    probes.check_tasks(tasks)
  for tasks in ((), ("hear_pitch_accuracy", "accuracy"), ("hear_pitch",)):
    with pytest.raises(ValueError, match="tasks"):
      probes.check_tasks(tasks)
  assert job_lib.tasks_of("nsynth") == job_lib.tasks_of("gm_notes") == probes.NOTE_TASKS


def test_score_tasks_reads_the_argmax_of_one_midi_classifier(rng):
  train, test = _note_labels(rng, 40), _note_labels(rng, 200)
  true = test["pitch"]
  scores = rng.standard_normal((200, probes.NUM_MIDI_PITCHES))
  # Make some argmaxes right, some an octave off, the rest wherever the noise puts them.
  rows = np.arange(200)
  scores[rows[:60], true[:60]] += 10.0
  scores[rows[60:100], true[60:100] + 12] += 10.0
  scores[rows[100:120], true[100:120] - 24] += 10.0
  calls = []
  results = probes.score_tasks(_fake_fit(calls, {("softmax", 128): scores}), train, test,
                               tasks=probes.HEAR_PITCH_TASKS)
  assert len(calls) == 1  # One head serves both metrics.
  targets, loss, num_outputs = calls[0]
  assert loss == "softmax" and num_outputs == 128
  np.testing.assert_array_equal(targets, train["pitch"])  # Fitted on the integer MIDI numbers.
  predicted = scores.argmax(axis=1)
  expected_pitch = np.mean(predicted == true)
  expected_chroma = np.mean(predicted % 12 == true % 12)
  assert results == {"hear_pitch_accuracy": pytest.approx(expected_pitch),
                     "hear_chroma_accuracy": pytest.approx(expected_chroma)}
  assert 0.3 <= expected_pitch < expected_chroma  # The octave errors count for chroma only.
  assert expected_chroma >= 0.6
  # One task alone.
  only = probes.score_tasks(_fake_fit([], {("softmax", 128): scores}), train, test,
                            tasks=("hear_chroma_accuracy",))
  assert only == {"hear_chroma_accuracy": pytest.approx(expected_chroma)}


def test_score_tasks_exact_values():
  # Predictions written out: pitch 60 (C4) predicted as 60, 72 (C5), 61, 48 (C3), 59.
  true = np.array([60, 60, 60, 60, 60])
  predicted = np.array([60, 72, 61, 48, 59])
  scores = np.eye(128)[predicted]
  results = probes.score_tasks(_fake_fit([], {("softmax", 128): scores}), {"pitch": np.array([60, 61])},
                               {"pitch": true}, tasks=probes.HEAR_PITCH_TASKS)
  assert results == {"hear_pitch_accuracy": 0.2, "hear_chroma_accuracy": 0.6}


def test_the_existing_note_tasks_are_unchanged_alongside(rng):
  train, test = _note_labels(rng, 40), _note_labels(rng, 30)
  outputs = {("softmax", 11): rng.standard_normal((30, 11)), ("softmax", 4): rng.standard_normal((30, 4)),
             ("squared_error", 1): rng.standard_normal((30, 1)),
             ("softmax", 128): rng.standard_normal((30, 128))}
  score = lambda tasks, calls: probes.score_tasks(_fake_fit(calls, outputs), train, test, tasks=tasks,
                                                  num_families=11, num_instruments=4)
  alone_calls, both_calls = [], []
  alone = score(probes.TASKS, alone_calls)
  both = score(probes.NOTE_TASKS, both_calls)
  assert list(both) == list(probes.NOTE_TASKS)
  assert {k: both[k] for k in probes.TASKS} == alone
  assert [c[1:] for c in both_calls] == [c[1:] for c in alone_calls] + [("softmax", 128)]
  # The regression's metrics still come from the rounded regression, not from the classifier.
  pitch = train["pitch"].astype(np.float32)
  regression = outputs["squared_error", 1][:, 0] * pitch.std() + pitch.mean()
  np.testing.assert_allclose(both["pitch_accuracy"], np.mean(np.rint(regression) == test["pitch"]))


def test_evaluate_tasks_alongside_gives_the_same_values(rng):
  # The real probes: adding the HEAR tasks adds a head and leaves the others' values bit-identical.
  train, test = _note_labels(rng, 60), _note_labels(rng, 30)
  train_x, test_x = rng.standard_normal((60, 8)), rng.standard_normal((30, 8))
  kwargs = dict(num_families=11, num_instruments=4, probe=probes.ProbeConfig(kind="mlp", hidden=16, epochs=50))
  alone = probes.evaluate_tasks(0, train_x, train, test_x, test, **kwargs)  # The default: TASKS.
  both = probes.evaluate_tasks(0, train_x, train, test_x, test, tasks=probes.NOTE_TASKS, **kwargs)
  assert set(alone) == set(probes.TASKS) and set(both) == set(probes.NOTE_TASKS)
  assert {k: both[k] for k in probes.TASKS} == alone


def _pitch_embeddings(rng, labels, carry="pitch"):
  """One-hot of the pitch (or of its pitch class, or nothing) times 6, plus unit noise: classes 8.5 stds apart."""
  pitch = labels["pitch"]
  n = len(pitch)
  if carry == "pitch":
    signal = 6.0 * (pitch[:, None] == np.arange(48, 72)).astype(float)
  elif carry == "chroma":
    signal = 6.0 * (pitch[:, None] % 12 == np.arange(12)).astype(float)
  else:
    signal = np.zeros((n, 12))
  return (signal + rng.standard_normal(signal.shape)).astype(np.float32)


def test_evaluate_tasks_on_separable_and_noise_embeddings(rng):
  # 24 pitches over two octaves: chance is 1/24 for the pitch and 1/12 for the pitch class.
  train, test = _note_labels(rng, 600), _note_labels(rng, 300)
  evaluate = lambda carry: probes.evaluate_tasks(
      0, _pitch_embeddings(rng, train, carry), train, _pitch_embeddings(rng, test, carry), test,
      probe=LINEAR, tasks=probes.HEAR_PITCH_TASKS)
  separable = evaluate("pitch")
  assert separable["hear_pitch_accuracy"] >= 0.95 and separable["hear_chroma_accuracy"] >= 0.95
  # Embeddings that hold the pitch class only: chroma is learnt, the octave is a coin toss.
  chroma = evaluate("chroma")
  assert chroma["hear_chroma_accuracy"] >= 0.95
  assert 0.3 <= chroma["hear_pitch_accuracy"] <= 0.7
  noise = evaluate("noise")
  assert noise["hear_pitch_accuracy"] <= 0.12 and noise["hear_chroma_accuracy"] <= 0.2


def test_a_pitch_outside_the_midi_range_is_rejected():
  fit = _fake_fit([], {("softmax", 128): np.zeros((2, 128))})
  for pitch in ([60, 128], [-1, 60]):
    with pytest.raises(ValueError, match=r"MIDI numbers in \[0, 128\)"):
      probes.score_tasks(fit, {"pitch": np.array(pitch)}, {"pitch": np.array([60, 61])},
                         tasks=("hear_pitch_accuracy",))
