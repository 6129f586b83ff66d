"""The ``supervised`` baseline: the same CFN trained end to end from scratch on the N labels.

The papers' "without pretraining" column: the CFN's backbone and fc7 (from a
fresh initialisation), under the same downstream head as the probes (the
3-layer MLP or the linear layer), all trained together on the N labelled
notes of each task, with Adam, minibatches of the pre-training batch size,
``eval.supervised_epochs`` epochs. One network per task and seed; the pitch
network serves the three pitch metrics, as in `probes.evaluate_tasks`.
"""

from __future__ import annotations

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


def train_and_predict(cfn_model, input_, audio, targets, test_audio, *, regression: bool, num_outputs: int,
                      probe: probes.ProbeConfig, epochs: int, batch_size: int, learning_rate: float,
                      seed: int) -> np.ndarray:
  """Trains a `SupervisedCFN` like ``cfn_model`` on ``(audio, targets)``; predictions for ``test_audio``.

  ``input_`` (a `shuffle_learn.pretext` input) cuts the raw inputs into patches.
  """
  model = SupervisedCFN(cfn_model.size, cfn_model.normalize_patches, probe.module(num_outputs))
  key = jax.random.key(seed)
  params = jax.jit(lambda k, a: model.init(k, input_(a)))(key, jnp.asarray(audio[:1]))
  optimizer = optax.adam(learning_rate)
  opt_state = optimizer.init(params)

  @jax.jit
  def step(params, opt_state, audio, y, key):
    def loss_fn(params):
      out = model.apply(params, input_(audio), train=True, rngs={"dropout": key})
      if regression:
        return jnp.mean(jnp.square(out[:, 0] - y))
      return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(out, y))
    grads = jax.grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  @jax.jit
  def predict(params, audio):
    out = model.apply(params, input_(audio))
    return out[:, 0] if regression else jnp.argmax(out, axis=-1)

  rng = np.random.default_rng(seed)
  batch_size = min(batch_size, len(audio))
  y_all = np.asarray(targets, np.float32 if regression else np.int32)
  for epoch in range(epochs):
    order = rng.permutation(len(audio))
    for i in range(len(audio) // batch_size):
      rows = order[i * batch_size:(i + 1) * batch_size]
      params, opt_state = step(params, opt_state, audio[rows], y_all[rows], jax.random.fold_in(key, epoch * 10**6 + i))
  return np.concatenate([np.asarray(predict(params, test_audio[i:i + 256])) for i in range(0, len(test_audio), 256)])


def evaluate(config, cfn_model, input_, train_source, test_source, n_train, tasks, *, num_families: int,
             num_instruments: int) -> dict[int, dict[str, list[float]]]:
  """For every N of ``n_train``, per task, the test metric of every seed (``config.eval.seeds``).

  ``config`` is the main job's (``eval.*`` and ``pretrain.train``); the network
  is ``cfn_model``'s size, fed by the pretext input ``input_``.

  The N notes of seed ``s`` are those the probes use: drawn from the same pool
  of ``eval.pool_examples`` train notes with ``np.random.default_rng(s)``. The
  pool and the test notes are read once, through `embeddings.embed_notes` with
  the audio itself as the "embedding".
  """
  clip = lambda audio: input_.host({input_.raw_key: audio})
  pool_audio, pool_labels = embeddings.embed_notes(train_source, clip, num_examples=config.eval.pool_examples)
  test_audio, test_labels = embeddings.embed_notes(test_source, clip, num_examples=config.eval.test_examples or None)
  probe = probes.ProbeConfig(kind=config.eval.probe, hidden=config.eval.hidden)
  common = dict(probe=probe, epochs=config.eval.supervised_epochs, batch_size=config.pretrain.train.batch_size,
                learning_rate=config.pretrain.train.learning_rate)
  results = {}
  for n in n_train:
    values = results[n] = {task: [] for task in tasks}
    for seed in range(config.eval.seeds):
      rows = np.random.default_rng(seed).choice(len(pool_audio), n, replace=False)
      audio = pool_audio[rows]
      for task, label, classes in (("family_accuracy", "instrument/family", num_families),
                                   ("instrument_accuracy", "instrument/label", num_instruments)):
        if task in tasks:
          predicted = train_and_predict(cfn_model, input_, audio, pool_labels[label][rows], test_audio, regression=False,
                                        num_outputs=classes, seed=seed, **common)
          values[task].append(float(np.mean(predicted == test_labels[label])))
      if {"pitch_mse", "pitch_accuracy", "chroma_accuracy"} & set(tasks):
        pitch = pool_labels["pitch"][rows].astype(np.float32)
        center, scale = float(pitch.mean()), float(pitch.std()) or 1.0
        predicted = train_and_predict(cfn_model, input_, audio, (pitch - center) / scale, test_audio, regression=True,
                                      num_outputs=1, seed=seed, **common) * scale + center
        metrics = probes.pitch_metrics(predicted, test_labels["pitch"])
        for task in metrics:
          if task in tasks:
            values[task].append(metrics[task])
  return results
