"""The main job: pre-train the CFN with every pretext objective of a config, then probe the frozen embeddings.

One job for every modality (``config.pretrain.pretext.modality``): audio notes
(`experiments.nsynth`), image jigsaws (`experiments.images`) and frame orders
(`experiments.video`). Steps, each resumed or reused if already done in
``workdir``:

1. pre-train every method of ``config.methods`` (a ``pretext.loss``) in
   ``workdir/pretrain/METHOD`` (`shuffle_learn.train`);
2. embed a fixed pool of labelled train examples and a fixed test set with
   every checkpoint and every baseline, cached in ``workdir/embeddings``; the
   labelled examples come from ``config.pretrain.data`` with the fields of
   ``config.eval.data`` replaced (e.g. the video job pre-trains on clips with
   an arrow of time and probes clips whose label is their order alone);
3. train downstream heads on N examples drawn from the pool, for every N of
   ``eval.n_train`` and every seed (`shuffle_learn.evaluators.downstream`);
4. write ``results.json``, ``results.md`` and ``results.png`` (`shuffle_learn.report`).

results.json::

  {"methods": {METHOD: {TASK: {"mean": float, "std": float, "values": [float, ...]}}},
   "pretext": {METHOD: {"partial_ranks_accuracy": float}},
   "runtime_s": float, "config": {...}, "n_train": N, "machine": {...}}

with TASK among `probes.NOTE_TASKS` (audio) or `probes.LABEL_TASKS` (images,
videos); with several N, ``methods`` holds the first N and ``by_n_train``
holds them all ({N: {METHOD: {TASK: ...}}}). For label tasks it also holds
``class_names`` and ``confusion`` ({METHOD: (K, K) counts summed over the
seeds of the first N, rows the true class}).

A sweep (``config.sweep.fields`` and ``config.sweep.points``: e.g. the number
of frequency bands, or bands against time frames against tiles) runs the job
once per point in ``workdir/NAME``, then writes ``sweep.json``, ``sweep.md``
and ``sweep.png``.

References:
  Carr, Berthet, Blondel, Teboul, Zeghidour. Self-Supervised Learning of Audio
  Representations from Permutations with Differentiable Ranking. IEEE SPL 2021
  (Table I, Table II, Figs. 2 and 3).
  Shuffle to Learn: Self-Supervised Learning from Permutations via
  Differentiable Ranking (ICLR 2021 submission), Tables 3 and 4.
"""

from __future__ import annotations

import os
import time

import jax
import ml_collections
import numpy as np

from shuffle_learn import _checks
from shuffle_learn import checkpoints
from shuffle_learn import config as config_lib
from shuffle_learn import metrics as metrics_lib
from shuffle_learn import models
from shuffle_learn import pretext as pretext_lib
from shuffle_learn import pretrained
from shuffle_learn import report
from shuffle_learn import train
from shuffle_learn.data import sources
from shuffle_learn.evaluators import downstream
from shuffle_learn.evaluators import embeddings as embeddings_lib
from shuffle_learn.evaluators import probes
from shuffle_learn.evaluators import supervised as supervised_lib

BASELINES = ("random_embedding", "logmel_baseline", "supervised", "pretrained")
AUDIO_ONLY = ("logmel_baseline", "pretrained")


def tasks_of(source: str) -> tuple[str, ...]:
  """The downstream tasks the labels of a data source (``config.data.source``) allow; () for frame labels."""
  return {"notes": probes.NOTE_TASKS, "classes": probes.LABEL_TASKS}.get(sources.SOURCES[source].labels, ())


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks every field of a job config (``experiments/configs/nsynth.py``); errors name the field."""
  for name, pretrain in sweep_points(config):
    try:
      config_lib.validate(pretrain, "config.pretrain")
    except ValueError as e:
      raise ValueError(f"config.sweep point {name!r} gives a bad pre-training config: {e}") from None
  for method in _checks.get(config, "methods"):
    with _checks.prefixed("config"):
      _checks.check_choice("methods", method, tuple(pretext_lib.OBJECTIVES))
  modality = _checks.get(config, "pretrain.pretext.modality")
  for baseline in _checks.get(config, "baselines"):
    with _checks.prefixed("config"):
      _checks.check_choice("baselines", baseline, BASELINES if modality == "audio" else
                           tuple(b for b in BASELINES if b not in AUDIO_ONLY))
  if not config.methods and not config.baselines:
    raise ValueError("config.methods and config.baselines are both empty: nothing to evaluate.")
  if "pretrained" in config.baselines:
    seconds = checkpoints.read_config(pretrained.path()).features.seconds
    if seconds != _checks.get(config, "pretrain.features.seconds"):
      raise ValueError(f"config.baselines: 'pretrained' embeds {seconds} s clips, config.pretrain.features.seconds "
                       f"is {config.pretrain.features.seconds}.")
  eval_config = _checks.get(config, "eval")
  with _checks.prefixed("config.eval"):
    n_train = _checks.check_ints("n_train", tuple(_checks.get(eval_config, "n_train", "")), 2, 10**9)
    _checks.check_choice("embedding", _checks.get(eval_config, "embedding", ""), tuple(embeddings_lib.LAYERS))
    _checks.check_int("pool_examples", _checks.get(eval_config, "pool_examples", ""), max(n_train))
    _checks.check_int("seeds", _checks.get(eval_config, "seeds", ""), 1)
    _checks.check_int("test_examples", _checks.get(eval_config, "test_examples", ""), 0)
    _checks.check_int("supervised_epochs", _checks.get(eval_config, "supervised_epochs", ""), 1)
  with _checks.prefixed("config.eval", {"kind": "probe"}):
    probe_config(config)
  config_lib.validate(config.pretrain, "config.pretrain")
  labelled = downstream_config(config)
  config_lib.validate(labelled, "config.pretrain (with config.eval.data)")
  tasks, source = _checks.get(eval_config, "tasks", "config.eval"), labelled.data.source
  if not tasks or set(tasks) - set(tasks_of(source)):
    raise ValueError(f"config.eval.tasks must be a non-empty subset of {tasks_of(source)} for source {source!r}, "
                     f"got {tasks!r}.")


def downstream_config(config) -> ml_collections.ConfigDict:
  """The pre-training config with the fields of ``config.eval.data`` set in its ``data``: the labelled examples' source."""
  return replace_data(config.pretrain, _checks.get(config, "eval.data"), "config.eval.data")


def replace_data(pretrain, data, path: str) -> ml_collections.ConfigDict:
  """A copy of a pre-training config with the fields of ``data`` (found at ``path``) set in its ``data``."""
  pretrain = pretrain.copy_and_resolve_references()
  for field, value in data.items():
    if field not in pretrain.data:
      raise ValueError(f"{path}.{field} is not a field of config.pretrain.data.")
    try:
      pretrain.data[field] = value
    except TypeError:
      raise ValueError(f"{path}.{field} must have the type of config.pretrain.data.{field} "
                       f"({type(pretrain.data[field]).__name__}), got {value!r}.") from None
  return pretrain


def sweep_points(config: ml_collections.ConfigDict) -> list[tuple[str, ml_collections.ConfigDict]]:
  """``(name, pre-training config)`` for every point of ``config.sweep``; [] without a sweep."""
  sweep = config.get("sweep")
  if sweep is None or not sweep.fields:
    return []
  fields = tuple(sweep.fields)
  values = tuple(tuple(v) if isinstance(v, (tuple, list)) else (v,) for v in sweep.points)
  names = tuple(sweep.names) if sweep.names else tuple("-".join(str(u) for u in v) for v in values)
  if not values:
    raise ValueError("config.sweep.points is empty: give the sweep at least one point.")
  if any(len(v) != len(fields) for v in values):
    raise ValueError(f"config.sweep.points: every point needs {len(fields)} values, one per field of "
                     f"config.sweep.fields {fields}; got {sweep.points!r}.")
  if len(names) != len(values) or len(set(names)) != len(names) or not all(
      isinstance(n, str) and n and "/" not in n for n in names):
    raise ValueError(f"config.sweep.names must be {len(values)} distinct non-empty names without '/', "
                     f"got {sweep.names!r}.")
  points = []
  for name, value in zip(names, values):
    pretrain = config.pretrain.copy_and_resolve_references()
    for field, v in zip(fields, value):
      *path, last = field.split(".")
      node = pretrain
      try:
        for key in path:
          node = node[key]
        if last not in node:
          raise KeyError(last)
      except KeyError:
        raise ValueError(f"config.sweep.fields: {field!r} is not a field of config.pretrain.") from None
      node[last] = v
    points.append((name, pretrain))
  return points


def probe_config(config) -> probes.ProbeConfig:
  return probes.ProbeConfig(kind=config.eval.probe, hidden=config.eval.hidden, epochs=config.eval.epochs,
                            learning_rate=config.eval.learning_rate, weight_decay=config.eval.weight_decay)


def method_config(config, method: str) -> ml_collections.ConfigDict:
  pretrain = config.pretrain.copy_and_resolve_references()
  pretrain.pretext.loss = method
  return pretrain


def pretext_accuracy(workdir: str) -> float:
  """The last validation partial-ranks accuracy of a run."""
  values = metrics_lib.read_metrics(workdir).get("valid/partial_ranks_accuracy", [])
  return values[-1][1] if values else float("nan")


def summarize(values: list[float]) -> dict:
  return {"mean": float(np.mean(values)), "std": float(np.std(values)), "values": [float(v) for v in values]}


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """The whole job; returns what it writes to ``results.json`` (``sweep.json`` for a sweep)."""
  validate(config)
  points = sweep_points(config)
  if points:
    return run_sweep(config, points, workdir)
  return run_one(config, workdir)


def main(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """`run`, then its table printed: what ``python -m experiments.{nsynth,images,video}`` do."""
  results = run(config, workdir)
  tasks = tuple(config.eval.tasks)
  print(report.sweep_markdown(results, tasks) if "sweep" in results else report.markdown(results, tasks))
  return results


def run_sweep(config, points, workdir: str) -> dict:
  """`run_one` for every sweep point, each in ``workdir/NAME``; a summary over them."""
  start = time.perf_counter()
  results = {}
  for name, pretrain in points:
    print(f"[job] sweep point {name}", flush=True)
    point = config.copy_and_resolve_references()
    point.pretrain = pretrain
    point.sweep.fields = ()
    results[name] = run_one(point, os.path.join(workdir, name))
  summary = {"sweep": results, "fields": list(config.sweep.fields), "runtime_s": time.perf_counter() - start,
             "config": config.to_dict()}
  report.write_sweep(workdir, summary, tuple(config.eval.tasks))
  return summary


def _embedders(config, workdir: str, base: train.Experiment) -> tuple[dict, dict]:
  """``{cache name: (method, embed)}`` for every pre-trained method and embedding baseline; pretext accuracies."""
  layer = config.eval.embedding
  embedders, pretext = {}, {}
  for method in config.methods:
    run_dir = os.path.join(workdir, "pretrain", method)
    print(f"[job] pre-training {method} in {run_dir}", flush=True)
    train.train_and_evaluate(method_config(config, method), run_dir)
    run_config, params, step = checkpoints.load_checkpoint(run_dir)
    run_pretext = pretext_lib.from_config(run_config)
    model = models.from_config(run_config, run_pretext.num_outputs)
    embedders[f"{method}-step{step}-{layer}"] = (
        method, embeddings_lib.cfn_embedder(model, params, run_pretext.input, layer))
    pretext[method] = {"partial_ranks_accuracy": pretext_accuracy(run_dir)}
  if "random_embedding" in config.baselines:
    params = base.init(config.pretrain.seed).params
    embedders[f"random_embedding-seed{config.pretrain.seed}-{layer}"] = (
        "random_embedding", embeddings_lib.cfn_embedder(base.model, params, base.pretext.input, layer))
  if "pretrained" in config.baselines:  # Audio only (`validate`): the shipped model.
    run_config, params, step = checkpoints.load_checkpoint(pretrained.path())
    run_pretext = pretext_lib.from_config(run_config)
    embedders[f"pretrained-step{step}-{layer}"] = ("pretrained", embeddings_lib.cfn_embedder(
        run_pretext.make_model(run_config), params, run_pretext.input, layer))
  if "logmel_baseline" in config.baselines:  # Audio only (`validate`).
    embedders["logmel_baseline"] = ("logmel_baseline", embeddings_lib.logmel_embedder(
        base.pretext.input.num_samples, config.pretrain.features.num_mel_bins))
  return embedders, pretext


def run_one(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """The job without a sweep; returns what it writes to ``results.json``."""
  start = time.perf_counter()
  os.makedirs(workdir, exist_ok=True)
  tasks = tuple(config.eval.tasks)
  base = train.build(config.pretrain)
  embedders, pretext = _embedders(config, workdir, base)
  labelled = downstream_config(config)
  train_source = sources.make_source(labelled, "train")
  test_source = sources.make_source(labelled, "test")
  classes = sources.class_counts(labelled, train_source)
  raw_key = sources.raw_key(labelled)
  evaluator = downstream.Evaluator(
      train_source, test_source, n_train=config.eval.n_train, seeds=config.eval.seeds,
      pool_examples=config.eval.pool_examples, test_examples=config.eval.test_examples or None,
      probe=probe_config(config), tasks=tasks, cache_dir=os.path.join(workdir, "embeddings"), classes=classes,
      raw_key=raw_key)
  by_n: dict[int, dict[str, dict]] = {n: {} for n in config.eval.n_train}
  confusion = {}
  for name, (method, embed) in embedders.items():
    print(f"[job] embedding with {method}", flush=True)
    for (n, task), values in evaluator.run(name, embed):
      if task == "confusion":
        if n == config.eval.n_train[0]:
          confusion[method] = np.sum(values, axis=0).tolist()
        continue
      by_n[n].setdefault(method, {})[task] = summarize(values)
      if task == tasks[-1]:
        print(f"[job]   N={n}: " + ", ".join(f"{t} {by_n[n][method][t]['mean']:.3f}" for t in tasks), flush=True)
  if "supervised" in config.baselines:
    print(f"[job] supervised CFN from scratch on N={config.eval.n_train}", flush=True)
    supervised = supervised_lib.evaluate(config, base.model, base.pretext.input, train_source, test_source,
                                         config.eval.n_train, tasks, raw_key=raw_key, **classes)
    for n, values in supervised.items():
      by_n[n]["supervised"] = {task: summarize(v) for task, v in values.items()}
  first = config.eval.n_train[0]
  results = {
      "methods": by_n[first],
      "pretext": pretext,
      "runtime_s": time.perf_counter() - start,
      "config": config.to_dict(),
      "n_train": first,
      "machine": {"device": str(jax.devices()[0].device_kind), "cpu_count": os.cpu_count()},
  }
  if len(by_n) > 1:
    results["by_n_train"] = {str(n): v for n, v in by_n.items()}
  if confusion:
    results["class_names"] = list(train_source.class_names)
    results["confusion"] = confusion
  report.write_results(workdir, results, tasks)
  return results
