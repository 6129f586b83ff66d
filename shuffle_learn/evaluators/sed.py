"""The frame-level probe of sound event detection: a linear layer on per-frame embeddings, scored with sed_eval.

The peer method's SED protocol (Kuroyanagi et al. 2022, Table 1, DCASE 2016
task 2): a linear classifier on the frozen encoder's frame embeddings, one
sigmoid per event class and frame, trained on the frames of N labelled
mixtures; its test probabilities are turned into events
(`sound_events.frames_to_events`: threshold, runs of active frames) and
scored against the reference events (`sound_events.evaluate`: event-based
onset F-measure with a 0.2 s collar, and segment-based F1 on 1 s segments).

Frame ``t`` of an embedding of ``T`` frames covers ``[t, t + 1) * seconds /
T`` of the clip; its training targets are `sound_events.frame_labels` of the
mixture's events on that grid, so the probe works at the encoder's own frame
rate whatever it is.
"""

from __future__ import annotations

from typing import Sequence

import jax
import numpy as np

from shuffle_learn.data import sound_events
from shuffle_learn.evaluators import probes


def evaluate_frames(seed: int, train_x: np.ndarray, train_events: Sequence, test_x: np.ndarray,
                    test_events: Sequence, *, seconds: float, class_names: Sequence[str],
                    probe: probes.ProbeConfig = probes.ProbeConfig(kind="linear"),
                    threshold: float = 0.5) -> dict[str, float]:
  """SED scores of per-frame embeddings for one seed.

  Args:
    seed: the probe's initialisation.
    train_x, test_x: frame embeddings ``(N, T, d)`` and ``(M, T, d)``.
    train_events, test_events: per mixture, its (onset_s, offset_s, class_name) events.
    seconds: the clip length the ``T`` frames cover.
    class_names: the event classes, in output order.
    probe: the head (linear, as the peer paper) and its training.
    threshold: the activity threshold on the sigmoid probabilities.

  Returns:
    `sound_events.evaluate`'s scores: ``event_onset_f1``, ``segment_f1`` and their error rates.
  """
  train_x, test_x = np.asarray(train_x, np.float32), np.asarray(test_x, np.float32)
  if train_x.ndim != 3 or test_x.ndim != 3 or train_x.shape[1:] != test_x.shape[1:]:
    raise ValueError(f"train_x and test_x must be (examples, frames, features) with the same frames and "
                     f"features, got {train_x.shape} and {test_x.shape}.")
  if len(train_events) != len(train_x) or len(test_events) != len(test_x):
    raise ValueError(f"one event list per example: {len(train_events)} and {len(test_events)} lists for "
                     f"{len(train_x)} and {len(test_x)} examples.")
  num_frames, dims = train_x.shape[1:]
  hop = seconds / num_frames
  targets = np.stack([sound_events.frame_labels(e, num_frames, hop, class_names) for e in train_events])
  x, x_test = probes.standardize(train_x.reshape(-1, dims), test_x.reshape(-1, dims))
  logits = probes.fit_outputs(seed, x, targets.reshape(-1, len(class_names)), x_test, loss="sigmoid",
                              num_outputs=len(class_names), probe=probe)
  probabilities = np.asarray(jax.nn.sigmoid(logits)).reshape(len(test_x), num_frames, len(class_names))
  estimated = [sound_events.frames_to_events(p, hop, class_names, threshold) for p in probabilities]
  return sound_events.evaluate([list(e) for e in test_events], estimated, class_names)
