"""Downstream evaluation of a frozen embedding: heads trained on N labelled examples, scored on fixed test examples.

Built like big_vision's evaluators: ``Evaluator(train_source, test_source,
...)`` once, then ``run(name, embed)`` yields ``((n, task), values)``: the
test metric of every seed for each N of ``n_train`` and each task. The pool of
``pool_examples`` train examples and the test examples are embedded once per
embedding and cached in ``cache_dir`` (`embeddings.cached`); the N examples of
seed ``s`` are drawn from the pool with ``np.random.default_rng(s)``, and
seed ``s`` also initialises the head (Carr et al. 2021, Section 3: a 3-layer
MLP on the frozen embedding; the ICLR version probes images linearly).
"""

from __future__ import annotations

import os
from typing import Callable, Iterator, Sequence

import numpy as np

from shuffle_learn.evaluators import embeddings as embeddings_lib
from shuffle_learn.evaluators import probes


class Evaluator:
  """Probes of one embedding at every N and seed.

  Args:
    train_source, test_source: sources of labelled examples (`shuffle_learn.data.sources`).
    n_train: the training set sizes N.
    seeds: seeds per N.
    pool_examples: train examples the N are drawn from.
    test_examples: fixed test examples; None for the whole split.
    probe: the head and how it is trained.
    tasks: among `probes.TASKS` (notes) or `probes.LABEL_TASKS`.
    cache_dir: where embeddings are cached.
    classes: the class counts `probes.evaluate_tasks` needs
      (`shuffle_learn.data.sources.class_counts`).
    raw_key: the example field that is embedded.
  """

  def __init__(self, train_source, test_source, *, n_train: Sequence[int], seeds: int, pool_examples: int,
               test_examples: int | None, probe: probes.ProbeConfig, tasks: Sequence[str], cache_dir: str,
               classes: dict[str, int], raw_key: str = "audio"):
    self.train_source, self.test_source = train_source, test_source
    self.classes, self.raw_key = dict(classes), raw_key
    self.n_train, self.seeds, self.tasks = tuple(n_train), seeds, tuple(tasks)
    self.pool_examples, self.test_examples = pool_examples, test_examples
    self.probe, self.cache_dir = probe, cache_dir

  def embed(self, name: str, embed: Callable[[np.ndarray], np.ndarray]):
    """``(pool_x, pool_labels, test_x, test_labels)`` of an embedding, cached under ``name``."""
    label_keys = tuple(k for k in self.test_source[0] if k != self.raw_key)
    pool_x, pool_y = embeddings_lib.cached(
        os.path.join(self.cache_dir, f"{name}-train{self.pool_examples}.npz"),
        lambda: embeddings_lib.embed_examples(self.train_source, embed, num_examples=self.pool_examples, seed=0,
                                              raw_key=self.raw_key), label_keys)
    test_x, test_y = embeddings_lib.cached(
        os.path.join(self.cache_dir, f"{name}-test{self.test_examples or 'all'}.npz"),
        lambda: embeddings_lib.embed_examples(self.test_source, embed, num_examples=self.test_examples, seed=0,
                                              raw_key=self.raw_key), label_keys)
    return pool_x, pool_y, test_x, test_y

  def run(self, name: str, embed: Callable[[np.ndarray], np.ndarray]) -> Iterator[tuple[tuple[int, str], list]]:
    """Yields ``((n, task), [metric of every seed])`` for every N and task.

    For single-label label tasks, also ``((n, "confusion"), [(K, K) confusion of every seed])``.
    """
    pool_x, pool_y, test_x, test_y = self.embed(name, embed)
    for n in self.n_train:
      values = {}
      for seed in range(self.seeds):
        rows = np.random.default_rng(seed).choice(len(pool_x), n, replace=False)
        scores = probes.evaluate_tasks(
            seed, pool_x[rows], {k: v[rows] for k, v in pool_y.items()}, test_x, test_y, probe=self.probe,
            tasks=self.tasks, **self.classes)
        for task, value in scores.items():
          values.setdefault(task, []).append(value)
      for task in (*self.tasks, *sorted(values.keys() - set(self.tasks))):
        yield (n, task), values[task]
