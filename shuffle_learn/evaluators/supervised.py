"""The ``supervised`` baseline: the same CFN trained end to end from scratch on the N labels.

The papers' "without pretraining" column: the CFN's backbone and fc7 (from a
fresh initialisation), under the same downstream head as the probes (the
3-layer MLP or the linear layer), all trained together on the N labelled
examples of each task, with Adam, minibatches of the pre-training batch size,
``eval.supervised_epochs`` epochs. One network per task and seed; the pitch
network serves the three pitch metrics, and for images and videos one
network on ``label`` serves the label tasks, as in `probes.evaluate_tasks`.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from shuffle_learn.evaluators import embeddings
from shuffle_learn.evaluators import probes
from shuffle_learn.models import cfn


class SupervisedCFN(nn.Module):
  """CFN patches -> fc7 embedding -> a downstream head."""

  size: cfn.BackboneSize
  normalize_patches: bool
  head: nn.Module

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    embedding = cfn.CFN(self.size, num_outputs=1, normalize_patches=self.normalize_patches, name="cfn").embed(
        x, train=train)
    return self.head(embedding)


@functools.partial(jax.jit, static_argnames=("model", "input_", "loss", "learning_rate"))
def _step(params, opt_state, inputs, y, key, *, model, input_, loss, learning_rate):
  def loss_fn(params):
    return probes.head_loss(loss, model.apply(params, input_(inputs), train=True, rngs={"dropout": key}), y)
  grads = jax.grad(loss_fn)(params)
  updates, opt_state = optax.adam(learning_rate).update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state


@functools.partial(jax.jit, static_argnames=("model", "input_"))
def _predict(params, inputs, *, model, input_):
  return model.apply(params, input_(inputs))


def train_and_predict(cfn_model, input_, inputs, targets, test_inputs, *, loss: str, num_outputs: int,
                      probe: probes.ProbeConfig, epochs: int, batch_size: int, learning_rate: float,
                      seed: int) -> np.ndarray:
  """Trains a `SupervisedCFN` like ``cfn_model`` on ``(inputs, targets)``; its outputs on ``test_inputs``.

  ``input_`` (a `shuffle_learn.pretext` input) cuts the raw inputs into
  patches; ``loss`` is one of `probes.LOSSES`; returns ``(M, num_outputs)``.
  The step and the prediction are compiled once per model, loss and input
  shape, not per seed.
  """
  model = SupervisedCFN(cfn_model.size, cfn_model.normalize_patches, probe.module(num_outputs))
  key = jax.random.key(seed)
  params = jax.jit(model.init)(key, input_(jnp.asarray(inputs[:1])))
  opt_state = optax.adam(learning_rate).init(params)
  static = dict(model=model, input_=input_)
  rng = np.random.default_rng(seed)
  batch_size = min(batch_size, len(inputs))
  y_all = np.asarray(targets, np.int32 if loss == "softmax" else np.float32)
  for epoch in range(epochs):
    order = rng.permutation(len(inputs))
    for i in range(len(inputs) // batch_size):
      rows = order[i * batch_size:(i + 1) * batch_size]
      params, opt_state = _step(params, opt_state, inputs[rows], y_all[rows], jax.random.fold_in(key, epoch * 10**6 + i),
                                loss=loss, learning_rate=learning_rate, **static)
  return np.concatenate([np.asarray(_predict(params, test_inputs[i:i + 256], **static))
                         for i in range(0, len(test_inputs), 256)])


def evaluate(config, cfn_model, input_, train_source, test_source, n_train, tasks, *, raw_key: str = "audio",
             **classes) -> dict[int, dict[str, list[float]]]:
  """For every N of ``n_train``, per task, the test metric of every seed (``config.eval.seeds``).

  ``config`` is the main job's (``eval.*`` and ``pretrain.train``); the network
  is ``cfn_model``'s size, fed by the pretext input ``input_``; ``classes``
  are the class counts of the tasks (`shuffle_learn.data.sources.class_counts`).

  The N examples of seed ``s`` are those the probes use: drawn from the same
  pool of ``eval.pool_examples`` train examples with
  ``np.random.default_rng(s)``. The pool and the test examples are read once,
  through `embeddings.embed_examples` with the raw input itself as the
  "embedding".
  """
  clip = lambda raw: input_.host({input_.raw_key: raw})
  read = lambda source, num_examples: embeddings.embed_examples(source, clip, num_examples=num_examples,
                                                                raw_key=raw_key)
  pool_inputs, pool_labels = read(train_source, config.eval.pool_examples)
  test_inputs, test_labels = read(test_source, config.eval.test_examples or None)
  probe = probes.ProbeConfig(kind=config.eval.probe, hidden=config.eval.hidden)
  common = dict(probe=probe, epochs=config.eval.supervised_epochs, batch_size=config.pretrain.train.batch_size,
                learning_rate=config.pretrain.train.learning_rate)
  results = {}
  for n in n_train:
    values = results[n] = {task: [] for task in tasks}
    for seed in range(config.eval.seeds):
      rows = np.random.default_rng(seed).choice(len(pool_inputs), n, replace=False)
      labels = {k: v[rows] for k, v in pool_labels.items()}
      fit = lambda targets, loss, num_outputs: train_and_predict(
          cfn_model, input_, pool_inputs[rows], targets, test_inputs, loss=loss, num_outputs=num_outputs, seed=seed,
          **common)
      scores = probes.score_tasks(fit, labels, test_labels, tasks=tasks, **classes)
      for task in tasks:
        values[task].append(scores[task])
  return results
