"""The frame-level SED probe (`shuffle_learn.evaluators.sed`) on embeddings that do or do not carry the events."""

import numpy as np
import pytest

from shuffle_learn.data import sound_events
from shuffle_learn.evaluators import probes
from shuffle_learn.evaluators import sed

CLASSES = ("kick", "piano", "flute")
SECONDS, FRAMES = 4.0, 40


def _world(rng, n, informative=True):
  """Mixtures of 1-3 events on a 0.1 s grid; frame embeddings that hold each class's activity, or noise."""
  events, xs = [], []
  for _ in range(n):
    mixture = []
    for _ in range(rng.integers(1, 4)):
      onset = rng.integers(0, 30) / 10
      mixture.append((onset, onset + rng.integers(3, 10) / 10, CLASSES[rng.integers(3)]))
    labels = sound_events.frame_labels(mixture, FRAMES, SECONDS / FRAMES, CLASSES).astype(np.float32)
    noise = rng.standard_normal((FRAMES, 5)).astype(np.float32)
    xs.append(np.concatenate([labels * 3.0 + 0.3 * noise[:, :3], noise[:, 3:]], -1) if informative else noise)
    events.append(mixture)
  return np.stack(xs), events


@pytest.fixture
def rng():
  return np.random.default_rng(0)


def test_embeddings_that_carry_the_events_are_scored_near_the_reference(rng):
  train_x, train_events = _world(rng, 60)
  test_x, test_events = _world(rng, 20)
  probe = probes.ProbeConfig(kind="linear", epochs=300, learning_rate=1e-2)
  scores = sed.evaluate_frames(0, train_x, train_events, test_x, test_events, seconds=SECONDS,
                               class_names=CLASSES, probe=probe)
  assert scores["event_onset_f1"] > 0.9 and scores["segment_f1"] > 0.9


def test_noise_embeddings_score_far_below(rng):
  train_x, train_events = _world(rng, 60, informative=False)
  test_x, test_events = _world(rng, 20, informative=False)
  scores = sed.evaluate_frames(0, train_x, train_events, test_x, test_events, seconds=SECONDS,
                               class_names=CLASSES, probe=probes.ProbeConfig(kind="linear", epochs=300))
  assert scores["event_onset_f1"] < 0.3


def test_shapes_and_counts_are_checked(rng):
  train_x, train_events = _world(rng, 4)
  with pytest.raises(ValueError, match="same frames"):
    sed.evaluate_frames(0, train_x, train_events, train_x[:, :10], train_events, seconds=SECONDS,
                        class_names=CLASSES)
  with pytest.raises(ValueError, match="one event list per example"):
    sed.evaluate_frames(0, train_x, train_events[:3], train_x, train_events, seconds=SECONDS, class_names=CLASSES)
