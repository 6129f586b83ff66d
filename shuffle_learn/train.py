"""Pre-training on a pretext task (the CFN on permutations, or a contrastive peer): the state, the pure step, the loop.

    python -m shuffle_learn.train --config experiments/configs/default.py --workdir /tmp/cfn \\
        [--config.pretext.loss=fast_soft_rank ...]

``pretext.loss`` picks the task (`shuffle_learn.pretext.LOSSES`): the
permutation objectives train the CFN; ``cola``, ``frame``, ``pitch`` and
``multi_sampling`` train the peer objectives' `SamplingNet` on segments of the
same clips (`shuffle_learn.pretext.sampling`).

- `Experiment` (`build(config)`): the model, optimizer, pretext task and
  device mesh of a validated config (`shuffle_learn.config.validate`).
- `Experiment.train_step(state, batch, key)`: pure; the pretext's loss of the
  batch (`Pretext.train_loss`: the input's patches and a permutation per
  example drawn from ``key``, forward, loss), its gradient, Adam.
  `Experiment.jit_train_step` jits it with the state donated, the batch
  sharded along the mesh's ``data`` axis and the state replicated
  (`shuffle_learn.parallel`). The global batch and the step's key are the
  same whatever the number of devices, so 1 and 8 devices compute the same
  step (up to the order of floating-point sums).
- `train_and_evaluate(config, workdir)`: the loop. Orbax checkpoints
  (`shuffle_learn.checkpoints`) hold the state and the grain iterator's
  position, so a killed run restarted on its workdir reaches the parameters an
  uninterrupted run reaches. Validation every ``eval_every`` steps
  (`shuffle_learn.evaluators.pretext_accuracy`); metrics to ``metrics.csv``
  and TensorBoard (`shuffle_learn.metrics`).

Multi-host: with ``JAX_COORDINATOR_ADDRESS`` set, `jax.distributed` is
initialised (`shuffle_learn.parallel.maybe_initialize_distributed`). Every
process builds the same global batches and reads its own block of rows of each
(`shuffle_learn.data.loader`), so a run of any number of processes takes the
steps of one process, and its checkpoints restore with any number.

References:
  Carr, Berthet, Blondel, Teboul, Zeghidour. Self-Supervised Learning of Audio
  Representations from Permutations with Differentiable Ranking. IEEE SPL 2021.
  Kuroyanagi, Hayashi, Takeda, Toda. Self-Supervised Learning Method Using
  Multiple Sampling Strategies for General-Purpose Audio Representation.
  ICASSP 2022.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Any, Callable, Mapping

import chex
import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp

from shuffle_learn import checkpoints
from shuffle_learn import config as config_lib
from shuffle_learn import metrics as metrics_lib
from shuffle_learn import parallel
from shuffle_learn import pretext as pretext_lib
from shuffle_learn.data import sources
from shuffle_learn.evaluators import pretext_accuracy


@flax.struct.dataclass
class TrainState:
  """Everything a step changes; a pytree of arrays (checkpointed as is).

  Attributes:
    step: int32 scalar, steps taken.
    params: the network's variables (``{"params": ...}``).
    opt_state: Adam's state.
    rng: uint32 key data of the run's base key; step ``s`` uses ``fold_in(rng, s)``.
  """

  step: jax.Array
  params: Any
  opt_state: Any
  rng: jax.Array


@dataclasses.dataclass(frozen=True)
class Experiment:
  """The static parts of a run, which `train_step` closes over."""

  config: ml_collections.ConfigDict
  model: Any
  optimizer: optax.GradientTransformation
  pretext: pretext_lib.Pretext
  mesh: jax.sharding.Mesh

  def init(self, seed: int) -> TrainState:
    """The initial state (jitted, replicated over the mesh)."""

    def init(key):
      params_key, rng = jax.random.split(key)
      params = self.pretext.init_params(self.model, params_key)
      return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=self.optimizer.init(params),
                        rng=jax.random.key_data(rng))

    return jax.jit(init, out_shardings=parallel.replicated(self.mesh))(jax.random.key(seed))

  def train_step(self, state: TrainState, batch: Mapping[str, jax.Array], key: jax.Array):
    """One pure step: the pretext's loss of the batch (its randomness from ``key``), gradient, Adam.

    For the permutation task: patches, a permutation per example, the CFN's
    outputs and the objective; for a peer objective: segments, shifts,
    similarities (`shuffle_learn.pretext.sampling`).

    Returns:
      ``(new_state, metrics)``, metrics the batch means of ``loss`` and of the
      pretext's metrics (``partial_ranks_accuracy``; ``clip_accuracy`` and the
      loss terms for the peer objectives).
    """
    loss_fn = self.pretext.train_loss(self.model, batch[self.pretext.input.raw_key], key)
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
    return new_state, {"loss": loss, **self.pretext.train_metrics(aux)}

  def jit_train_step(self) -> Callable:
    """`train_step` jitted: state donated and replicated, batch sharded on ``data``; traced once."""
    replicated = parallel.replicated(self.mesh)
    return jax.jit(chex.assert_max_traces(self.train_step, n=1), donate_argnums=0,
                   in_shardings=(replicated, parallel.batch_sharding(self.mesh), replicated),
                   out_shardings=(replicated, replicated))


def make_optimizer(config) -> optax.GradientTransformation:
  """Adam; the learning rate rises linearly over ``warmup_steps``, then stays constant or follows a cosine.

  ``train.schedule="constant"`` (no decay tied to ``num_steps``) lets a
  finished run be extended by resuming it with a larger ``num_steps``;
  ``"cosine"`` decays the rate to 0 at ``num_steps`` (Loshchilov & Hutter
  2017), and such a run resumes only with its own ``num_steps``.
  """
  rate = config.train.learning_rate
  warmup = config.train.warmup_steps
  if config.train.schedule == "cosine":
    rate = optax.warmup_cosine_decay_schedule(rate / warmup if warmup else rate, rate, warmup,
                                              config.train.num_steps, end_value=0.0)
  elif warmup:
    rate = optax.linear_schedule(rate / warmup, rate, warmup)
  adam = optax.adam(rate)
  if config.train.grad_clip_norm:
    return optax.chain(optax.clip_by_global_norm(config.train.grad_clip_norm), adam)
  return adam


def build(config: ml_collections.ConfigDict) -> Experiment:
  """Validates the config and builds the static parts of its run."""
  pretext = config_lib.validate(config)
  model = pretext.make_model(config)
  return Experiment(config=config, model=model, optimizer=make_optimizer(config), pretext=pretext,
                    mesh=parallel.make_mesh())


def num_steps(config, train_source) -> int:
  """``train.num_steps``, or with ``train.num_epochs > 0`` the steps of that many epochs of the source."""
  if not config.train.num_epochs:
    return config.train.num_steps
  examples = sources.num_train_examples(config, train_source)
  return math.ceil(config.train.num_epochs * examples / config.train.batch_size)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       stop_after: int | None = None) -> dict[str, Any]:
  """Pre-trains (or resumes pre-training) in ``workdir``.

  Args:
    config: see ``experiments/configs/default.py``.
    workdir: where the config, checkpoints and metrics go; a run found there is
      resumed from its newest intact checkpoint.
    stop_after: stop (after checkpointing) once this many steps have been
      taken in this call, as if interrupted; for tests.

  Returns:
    A summary: ``step``, ``chance`` (the metric's: 1/n, or 1/batch for the peers), the last ``valid`` metrics,
    ``train_seconds``, ``steps_per_second`` and ``examples_per_second`` (this
    call's steps after its first, which compiles; reading the data included,
    evaluations and checkpoint saves excluded).
  """
  parallel.maybe_initialize_distributed()
  experiment = build(config)
  os.makedirs(workdir, exist_ok=True)
  checkpoints.check_resumable(workdir, config)
  train_source = sources.make_source(config, "train")
  train_iter = sources.train_batches(config, train_source)
  chex.clear_trace_counter()  # The steps below may be traced once each in this run.
  evaluator = pretext_accuracy.Evaluator(experiment.pretext, experiment.model,
                                         sources.eval_batches(config, sources.make_source(config, "valid")),
                                         seed=config.seed, mesh=experiment.mesh)
  state = experiment.init(config.seed)
  manager = checkpoints.manager(workdir, config)
  restored = checkpoints.restore(manager, workdir, lambda: ocp.args.Composite(
      state=ocp.args.StandardRestore(state), data=checkpoints.DataRestore(train_iter)), set_aside=True)
  start = 0
  if restored is not None:
    start, items = restored
    state, train_iter = items["state"], items["data"]
  checkpoints.write_config(workdir, config)
  writer = metrics_lib.MetricWriter(workdir, start)
  step_fn = experiment.jit_train_step()
  rng = jax.random.wrap_key_data(np.asarray(state.rng))  # A copy: the state's buffers are donated.
  total = num_steps(config, train_source)
  last = min(total, start + stop_after) if stop_after is not None else total
  summary: dict[str, Any] = {"chance": experiment.pretext.chance(config.train.batch_size), "valid": {}}
  history = []
  # Step time after the first (compiling) step, without evaluations and
  # checkpoints: `window` since the last log, `total` over this call.
  timer = None
  window_seconds = window_steps = total_seconds = total_steps = 0

  def pause():
    nonlocal timer, window_seconds
    if timer is not None:
      jax.block_until_ready(state)
      window_seconds += time.perf_counter() - timer
      timer = None

  from tqdm import auto as tqdm  # pylint: disable=g-import-not-at-top
  progress = tqdm.tqdm(total=total, initial=start, desc="pre-training", unit="step", dynamic_ncols=True,
                       disable=not config.train.progress or jax.process_index() != 0)
  step = start
  try:
    while step < last:
      batch = parallel.device_batch(experiment.pretext.input, experiment.mesh, next(train_iter))
      state, metrics = step_fn(state, batch, jax.random.fold_in(rng, step))
      history.append(metrics)
      if step == start:
        jax.block_until_ready(state)  # The first step compiles: not timed.
      else:
        window_steps += 1
      step += 1
      timer = timer or time.perf_counter()
      progress.update(1)
      if step % config.train.log_every == 0 or step == last:
        pause()
        means = {f"train/{k}": float(np.mean([float(m[k]) for m in history])) for k in history[0]}
        history = []
        if window_steps:
          means["train/steps_per_second"] = window_steps / window_seconds
          means["train/examples_per_second"] = window_steps * config.train.batch_size / window_seconds
        total_seconds, total_steps = total_seconds + window_seconds, total_steps + window_steps
        window_seconds = window_steps = 0
        writer.write(step, means)
        progress.set_postfix(loss=f"{means['train/loss']:.3f}", acc=f"{means['train/' + experiment.pretext.metric]:.3f}")
      if step % config.train.eval_every == 0 or step == total:
        pause()
        summary["valid"] = dict(evaluator.run(state.params))
        writer.write(step, {f"valid/{k}": v for k, v in summary["valid"].items()})
      if step % config.train.checkpoint_every == 0 or step == last:
        pause()
        manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), data=checkpoints.DataSave(train_iter)))
  finally:
    progress.close()
    manager.wait_until_finished()
    manager.close()
    writer.close()
  summary.update(step=step, train_seconds=total_seconds)
  if total_steps:
    summary["steps_per_second"] = total_steps / total_seconds
    summary["examples_per_second"] = total_steps * config.train.batch_size / total_seconds
  return summary


if __name__ == "__main__":
  from shuffle_learn import cli  # pylint: disable=g-import-not-at-top
  cli.run(train_and_evaluate, config="experiments/configs/default.py", validate=config_lib.validate,
          print_result=True, workdir_help="Run directory (config, checkpoints, metrics).")
