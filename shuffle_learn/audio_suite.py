"""The audio suite: permutation pretexts against the contrastive peers, on three kinds of task, in one table.

    python -m experiments.audio_suite --workdir DIR [--config experiments/configs/audio_suite_full.py]

Every method pre-trains on the same unlabelled clips with the same budget
(steps x batch), then every checkpoint and baseline is probed on the same
labelled examples with the same heads. Steps, each resumed or reused if
already done in ``workdir``:

1. pre-train every method of ``config.methods`` in ``workdir/pretrain/METHOD``
   (`shuffle_learn.train`). A method is a ``pretext.loss`` (the permutation
   objectives, or the peers ``cola``, ``frame``, ``pitch``,
   ``multi_sampling`` of `shuffle_learn.pretext.sampling`) or the name of an
   entry of ``config.variants``: ``config.pretrain`` with the entry's fields
   replaced (the ablation rows of the peer paper's Table 1, another encoder);
2. embed every task's labelled examples with every checkpoint and baseline
   (``random_embedding``: the untrained CFN of ``config.pretrain``;
   ``random_sampling_net``: the peers' network of ``config.pretrain``'s
   ``model.size``, untrained; ``pretrained``: the shipped model,
   `shuffle_learn.pretrained`; ``logmel_baseline``: log-mel statistics), cached in ``workdir/embeddings``:
   clip embeddings for ``pitch`` (gm_notes: HEAR nsynth_pitch's pitch and
   chroma accuracy of a pitch classifier, and family / instrument accuracy)
   and ``words`` (spoken_words: accuracy on voices never heard in training),
   frame embeddings for ``events`` (sound_events: event-based onset F1 and
   segment-based F1 of a per-frame probe, `shuffle_learn.evaluators.sed`);
3. train every probe of ``eval.probes`` (``linear``, the peer paper's
   protocol; ``mlp``, the permutation paper's 3 layers) on N labelled examples
   per task, ``eval.seeds`` seeds (the N examples drawn and the head's
   initialisation);
4. write ``results.json``, ``results.md`` and ``results.png``.

Embeddings: a CFN (permutation objectives, ``random_embedding``) gives its
pooled convolutional features (``eval.embedding``) of the clip's patches for
clip tasks and `CFN.frame_embed` for events; a peer network gives its frame
embeddings ``h`` (`SamplingNet.frames` of the whole clip's log-mel), averaged
over frames for clip tasks and as they are for events.

results.json::

  {"methods": {ROW: {PROBE: {METRIC: {"mean", "std", "values"}}}},
   "rows": {ROW: {"kind", "encoder", "parameters", "steps", "examples_seen",
                  "train_seconds", "seconds_per_step", "dims": {TASK: int},
                  "pretext": {"metric", "value", "chance"}}},
   "tasks": {TASK: {"metrics", "source", "seconds", "n_train", "train_examples", "test_examples"}},
   "paper": the peer paper's Table 1, "runtime_s", "config", "machine"}

References:
  Carr, Berthet, Blondel, Teboul, Zeghidour. Self-Supervised Learning of Audio
  Representations from Permutations with Differentiable Ranking. IEEE SPL 2021.
  Kuroyanagi, Hayashi, Takeda, Toda. Self-Supervised Learning Method Using
  Multiple Sampling Strategies for General-Purpose Audio Representation.
  ICASSP 2022 (Table 1).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Callable

import jax
import ml_collections
import numpy as np

from shuffle_learn import _checks
from shuffle_learn import checkpoints
from shuffle_learn import config as config_lib
from shuffle_learn import job
from shuffle_learn import metrics as metrics_lib
from shuffle_learn import pretext as pretext_lib
from shuffle_learn import pretrained
from shuffle_learn import report
from shuffle_learn import train
from shuffle_learn.data import sources
from shuffle_learn.evaluators import downstream
from shuffle_learn.evaluators import embeddings as embeddings_lib
from shuffle_learn.evaluators import probes
from shuffle_learn.evaluators import sed
from shuffle_learn.pretext import sampling

# The tasks, the label kind of the source each needs, and the metrics each reports.
TASKS = {
    "pitch": ("notes", ("hear_pitch_accuracy", "hear_chroma_accuracy", "family_accuracy", "instrument_accuracy")),
    "words": ("classes", ("accuracy",)),
    "events": ("frames", ("event_onset_f1", "segment_f1")),
}
BASELINES = ("random_embedding", "random_sampling_net", "logmel_baseline", "pretrained")

# Kuroyanagi et al. 2022, Table 1: a linear classifier on frozen embeddings of
# EfficientNet-B0 pre-trained on 18,939 AudioSet clips (250 epochs, batch 1024).
# Columns: Speech Commands accuracy, DCASE 2016 task 2 onset F-measure, NSynth
# pitch and chroma accuracy.
PAPER_TABLE1 = {
    "columns": ["words: accuracy", "events: event_onset_f1", "pitch: hear_pitch_accuracy",
                "pitch: hear_chroma_accuracy"],
    "rows": {
        "PANNs": [0.083, 0.754, 0.012, 0.096],
        "COLA (cola)": [0.459, 0.232, 0.434, 0.470],
        "L_clip + L_frame (clip_frame)": [0.535, 0.344, 0.424, 0.462],
        "L_clip + L_pitch (clip_pitch)": [0.585, 0.244, 0.428, 0.463],
        "L_clip + L_frame + L_pitch (multi_sampling)": [0.572, 0.278, 0.452, 0.487],
    },
}


def method_config(config, method: str) -> ml_collections.ConfigDict:
  """The pre-training config of a method: a ``pretext.loss``, or ``config.variants[method]`` over ``config.pretrain``."""
  pretrain = config.pretrain.copy_and_resolve_references()
  variants = config.get("variants") or {}
  if method in variants:
    _merge(pretrain, variants[method], f"config.variants.{method}")
  else:
    with _checks.prefixed("config"):
      _checks.check_choice("methods", method, (*pretext_lib.LOSSES, *variants))
    pretrain.pretext.loss = method
  return pretrain


def _merge(target, overrides, path: str) -> None:
  for key, value in overrides.items():
    if key not in target:
      raise ValueError(f"{path}.{key} is not a field of config.pretrain.")
    if isinstance(value, ml_collections.ConfigDict):
      _merge(target[key], value, f"{path}.{key}")
      continue
    try:
      target[key] = value
    except TypeError:
      raise ValueError(f"{path}.{key} must have the type of the pre-training field "
                       f"({type(target[key]).__name__}), got {value!r}.") from None


def task_config(config, task: str) -> ml_collections.ConfigDict:
  """The config whose data are the task's labelled examples: ``config.eval.TASK.data`` and ``.seconds`` replaced."""
  settings = _checks.get(config, f"eval.{task}")
  labelled = job.replace_data(config.pretrain, settings.data, f"config.eval.{task}.data")
  labelled.features.seconds = settings.seconds
  return labelled


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks every field of a suite config (``experiments/configs/audio_suite.py``); errors name the field.

  Raises:
    ValueError: a bad field, named.
    ImportError: a package a source needs is missing (the message says what to pip install).
  """
  config_lib.validate(config.pretrain, "config.pretrain")
  sources.check_packages(config.pretrain)
  methods = tuple(_checks.get(config, "methods"))
  if len(set(methods)) != len(methods):
    raise ValueError(f"config.methods has repeated entries: {methods!r}.")
  for method in methods:
    config_lib.validate(method_config(config, method), f"config.pretrain (method {method!r})")
  for baseline in _checks.get(config, "baselines"):
    with _checks.prefixed("config"):
      _checks.check_choice("baselines", baseline, BASELINES)
  if not methods and not config.baselines:
    raise ValueError("config.methods and config.baselines are both empty: nothing to evaluate.")
  eval_config = _checks.get(config, "eval")
  with _checks.prefixed("config.eval"):
    tasks = tuple(_checks.get(eval_config, "tasks", ""))
    if not tasks or len(set(tasks)) != len(tasks):
      raise ValueError(f"tasks must be distinct names among {tuple(TASKS)}, got {tasks!r}.")
    for task in tasks:
      _checks.check_choice("tasks", task, tuple(TASKS))
    for kind in _checks.get(eval_config, "probes", ""):
      _checks.check_choice("probes", kind, probes.PROBES)
    if not eval_config.probes:
      raise ValueError(f"probes must name at least one of {probes.PROBES}.")
    _checks.check_int("seeds", _checks.get(eval_config, "seeds", ""), 1)
    _checks.check_choice("embedding", _checks.get(eval_config, "embedding", ""), tuple(embeddings_lib.LAYERS))
  with _checks.prefixed("config.eval", {"kind": "probes"}):
    probe_configs(config)
  for task in tasks:
    path = f"config.eval.{task}"
    settings = _checks.get(config, f"eval.{task}")
    with _checks.prefixed(path):
      n_train = _checks.check_int("n_train", _checks.get(settings, "n_train", ""), 2)
      _checks.check_int("pool_examples", _checks.get(settings, "pool_examples", ""), n_train)
      _checks.check_int("test_examples", _checks.get(settings, "test_examples", ""), 0)
      _checks.check_number("seconds", _checks.get(settings, "seconds", ""), 0.0, strict=True)
    labelled = task_config(config, task)
    source = labelled.data.source
    if sources.SOURCES[source].labels != TASKS[task][0]:
      raise ValueError(f"{path}.data.source must carry {TASKS[task][0]} labels for task {task!r}; "
                       f"{source!r} carries {sources.SOURCES[source].labels}.")
    with _checks.prefixed(path):
      sources.SOURCES[source].check(labelled.data)
    sources.check_packages(labelled)
    for method in methods:  # Every encoder takes the task's clips.
      run_config = method_config(config, method)
      run_config.features.seconds = settings.seconds
      try:
        config_lib.validate(run_config, "config.pretrain")
      except ValueError as e:
        raise ValueError(f"{path}.seconds={settings.seconds!r} is too short for method {method!r}: {e}") from None


def probe_configs(config) -> dict[str, probes.ProbeConfig]:
  return {kind: probes.ProbeConfig(kind=kind, hidden=config.eval.hidden, epochs=config.eval.epochs,
                                   learning_rate=config.eval.learning_rate, weight_decay=config.eval.weight_decay)
          for kind in config.eval.probes}


@dataclasses.dataclass(frozen=True)
class Row:
  """A method or baseline: its embedders for a clip length, and what it cost.

  ``embedders(seconds)`` gives ``(clip, frames)``: audio ``(batch, samples)``
  -> ``(batch, d)`` and -> ``(batch, T, d)``.
  """

  name: str
  cache_name: str
  embedders: Callable[[float], tuple[Callable, Callable]]
  info: dict


def _cfn_embedders(model, params, input_, layer: str):
  def embedders(seconds: float):
    clip_input = dataclasses.replace(input_, seconds=seconds)
    return (embeddings_lib.cfn_embedder(model, params, clip_input, layer),
            embeddings_lib.frame_embedder(model, params, clip_input))
  return embedders


def _sampling_embedders(model, params, input_: sampling.SegmentsInput):
  def embedders(seconds: float):
    clip_input = dataclasses.replace(input_, seconds=seconds, segment_frames=1)
    return (embeddings_lib.sampling_embedder(model, params, clip_input),
            embeddings_lib.sampling_embedder(model, params, clip_input, frames=True))
  return embedders


# The log-mel baseline's frames for events: mean and std over 16 frames (160 ms), the CFN's frame rate.
LOGMEL_FRAME_POOL = 16


def _logmel_embedders(num_mel_bins: int):
  def embedders(seconds: float):
    num_samples = int(round(seconds * sources.schema.SAMPLE_RATE))
    return (embeddings_lib.logmel_embedder(num_samples, num_mel_bins),
            embeddings_lib.logmel_frame_embedder(num_samples, num_mel_bins, pool=LOGMEL_FRAME_POOL))
  return embedders


def _encoder_name(run_config, pretext) -> str:
  size = run_config.model.size
  if isinstance(pretext, sampling.SamplingPretext):
    return f"{size} on whole clips" if not size.startswith("efficientnet") else size.replace("_", "-")
  rows, cols = run_config.pretext.n_rows, run_config.pretext.n_cols
  return f"CFN {size}, {rows}x{cols} patches"


def _count(params) -> int:
  return int(sum(np.size(leaf) for leaf in jax.tree.leaves(params)))


def pretrain(config, method: str, workdir: str) -> Row:
  """Pre-trains (or reuses) a method's run and returns its row; the training time is kept in ``train_summary.json``."""
  run_dir = os.path.join(workdir, "pretrain", method)
  print(f"[suite] pre-training {method} in {run_dir}", flush=True)
  run_config = method_config(config, method)
  summary_path = os.path.join(run_dir, "train_summary.json")
  previous = {"train_seconds": 0.0, "steps_timed": 0}
  if os.path.exists(summary_path):
    with open(summary_path) as f:
      previous = json.load(f)
  summary = train.train_and_evaluate(run_config, run_dir)
  seconds = previous["train_seconds"] + summary.get("train_seconds", 0.0)
  steps_timed = previous["steps_timed"] + (round(summary["train_seconds"] * summary["steps_per_second"])
                                           if "steps_per_second" in summary else 0)
  with open(summary_path, "w") as f:
    json.dump({"train_seconds": seconds, "steps_timed": steps_timed}, f)
  saved_config, params, step = checkpoints.load_checkpoint(run_dir)
  pretext = pretext_lib.from_config(saved_config)
  model = pretext.make_model(saved_config)
  values = metrics_lib.read_metrics(run_dir).get(f"valid/{pretext.metric}", [])
  info = {
      "kind": "contrastive" if isinstance(pretext, sampling.SamplingPretext) else "permutation",
      "loss": saved_config.pretext.loss, "encoder": _encoder_name(saved_config, pretext),
      "parameters": _count(params), "steps": int(step),
      "examples_seen": int(step) * saved_config.train.batch_size, "train_seconds": seconds,
      # Time per step after each call's first (compiling) step, times the steps.
      "seconds_per_step": seconds / steps_timed if steps_timed else float("nan"),
      "pretext": {"metric": pretext.metric, "value": values[-1][1] if values else float("nan"),
                  "chance": pretext.chance(saved_config.train.batch_size)}}
  if isinstance(pretext, sampling.SamplingPretext):
    embedders = _sampling_embedders(model, params, pretext.input)
  else:
    embedders = _cfn_embedders(model, params, pretext.input, config.eval.embedding)
  return Row(method, f"{method}-step{step}", embedders, info)


def baseline_rows(config) -> list[Row]:
  rows = []
  if "random_embedding" in config.baselines:
    base = train.build(config.pretrain)
    params = base.init(config.pretrain.seed).params
    rows.append(Row("random_embedding", f"random_embedding-seed{config.pretrain.seed}",
                    _cfn_embedders(base.model, params, base.pretext.input, config.eval.embedding),
                    {"kind": "baseline", "encoder": _encoder_name(config.pretrain, base.pretext) + ", untrained",
                     "parameters": _count(params), "steps": 0, "examples_seen": 0, "train_seconds": 0.0}))
  if "random_sampling_net" in config.baselines:
    base = train.build(method_config(config, "cola"))
    params = base.init(config.pretrain.seed).params
    rows.append(Row("random_sampling_net", f"random_sampling_net-seed{config.pretrain.seed}",
                    _sampling_embedders(base.model, params, base.pretext.input),
                    {"kind": "baseline", "encoder": _encoder_name(base.config, base.pretext) + ", untrained",
                     "parameters": _count(params), "steps": 0, "examples_seen": 0, "train_seconds": 0.0}))
  if "pretrained" in config.baselines:  # The shipped model (`shuffle_learn.pretrained`).
    saved_config, params, step = checkpoints.load_checkpoint(pretrained.path())
    pretext = pretext_lib.from_config(saved_config)
    rows.append(Row("pretrained", f"pretrained-step{step}",
                    _cfn_embedders(pretext.make_model(saved_config), params, pretext.input, config.eval.embedding),
                    {"kind": "baseline", "encoder": _encoder_name(saved_config, pretext) + ", the shipped model",
                     "parameters": _count(params), "steps": step,
                     "examples_seen": step * saved_config.train.batch_size, "train_seconds": 0.0}))
  if "logmel_baseline" in config.baselines:
    bins = config.pretrain.features.num_mel_bins
    rows.append(Row("logmel_baseline", f"logmel_baseline-pool{LOGMEL_FRAME_POOL}", _logmel_embedders(bins),
                    {"kind": "baseline", "encoder": f"{bins}-bin log-mel: mean and std over the clip, or over "
                                                    f"{LOGMEL_FRAME_POOL} frames (events)",
                     "parameters": 0, "steps": 0, "examples_seen": 0, "train_seconds": 0.0}))
  return rows


def evaluate_task(config, task: str, rows: list[Row], workdir: str) -> tuple[dict, dict]:
  """``({row: {probe: {metric: summary}}}, task info)`` of one task."""
  settings = config.eval[task]
  labelled = task_config(config, task)
  train_source, test_source = sources.make_source(labelled, "train"), sources.make_source(labelled, "test")
  metrics = TASKS[task][1]
  cache_dir = os.path.join(workdir, "embeddings")
  test_examples = settings.test_examples or None
  info = {"metrics": list(metrics), "source": labelled.data.source, "seconds": settings.seconds,
          "n_train": settings.n_train, "train_examples": min(settings.pool_examples, len(train_source)),
          "test_examples": min(test_examples or len(test_source), len(test_source))}
  results = {}
  for row in rows:
    print(f"[suite] {task}: embedding with {row.name}", flush=True)
    clip_embed, frame_embed = row.embedders(settings.seconds)
    name = f"{task}-{row.cache_name}"
    results[row.name] = {}
    for kind, probe in probe_configs(config).items():
      if task == "events":
        values, dims = _events(settings, train_source, test_source, frame_embed, probe, config.eval.seeds,
                               os.path.join(cache_dir, name))
      else:
        evaluator = downstream.Evaluator(
            train_source, test_source, n_train=(settings.n_train,), seeds=config.eval.seeds,
            pool_examples=settings.pool_examples, test_examples=test_examples, probe=probe, tasks=metrics,
            cache_dir=cache_dir, classes=sources.class_counts(labelled, train_source), raw_key="audio")
        values = {metric: v for (_, metric), v in evaluator.run(name, clip_embed) if metric in metrics}
        dims = evaluator.embed(name, clip_embed)[0].shape[1]  # Read back from the cache.
      row.info.setdefault("dims", {})[task] = int(dims)
      results[row.name][kind] = {metric: job.summarize(values[metric]) for metric in metrics}
      print(f"[suite]   {kind}: " + ", ".join(f"{m} {results[row.name][kind][m]['mean']:.3f}" for m in metrics),
            flush=True)
  return results, info


def _events(settings, train_source, test_source, frame_embed, probe, seeds: int, cache: str) -> tuple[dict, int]:
  """Every seed's SED scores (a per-frame probe on N train mixtures, scored on the test mixtures); the frames' dims."""
  num_train = min(settings.pool_examples, len(train_source))
  num_test = min(settings.test_examples or len(test_source), len(test_source))
  train_x, _ = embeddings_lib.cached(cache + f"-train{num_train}.npz", lambda: embeddings_lib.embed_examples(
      _Prefix(train_source, num_train), frame_embed, raw_key="audio"))
  test_x, _ = embeddings_lib.cached(cache + f"-test{num_test}.npz", lambda: embeddings_lib.embed_examples(
      _Prefix(test_source, num_test), frame_embed, raw_key="audio"))
  train_events = [train_source.events(i) for i in range(num_train)]
  test_events = [test_source.events(i) for i in range(num_test)]
  values = {}
  dims = train_x.shape[-1]
  for seed in range(seeds):
    rows = np.random.default_rng(seed).choice(num_train, settings.n_train, replace=False)
    scores = sed.evaluate_frames(seed, train_x[rows], [train_events[i] for i in rows], test_x, test_events,
                                 seconds=train_source.seconds, class_names=train_source.class_names, probe=probe)
    for metric, value in scores.items():
      values.setdefault(metric, []).append(value)
  return values, dims


class _Prefix:
  """The first ``n`` examples of a source, audio only (a source for `embed_examples`)."""

  def __init__(self, source, n: int):
    self.source, self.n = source, n

  def __len__(self) -> int:
    return self.n

  def __getitem__(self, index: int) -> dict:
    return {"audio": self.source[index]["audio"]}


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """The whole suite; returns what it writes to ``results.json``."""
  validate(config)
  start = time.perf_counter()
  os.makedirs(workdir, exist_ok=True)
  rows = [pretrain(config, method, workdir) for method in config.methods] + baseline_rows(config)
  print(f"[suite] pre-training done at {time.perf_counter() - start:.0f} s", flush=True)
  methods, tasks = {row.name: {} for row in rows}, {}
  for task in config.eval.tasks:
    by_row, tasks[task] = evaluate_task(config, task, rows, workdir)
    print(f"[suite] {task} done at {time.perf_counter() - start:.0f} s", flush=True)
    for name, by_probe in by_row.items():
      for kind, values in by_probe.items():
        methods[name].setdefault(kind, {}).update({f"{task}: {m}": v for m, v in values.items()})
  results = {
      "methods": methods,
      "rows": {row.name: row.info for row in rows},
      "tasks": tasks,
      "paper": PAPER_TABLE1,
      "runtime_s": time.perf_counter() - start,
      "config": config.to_dict(),
      "machine": {"device": str(jax.devices()[0].device_kind), "cpu_count": os.cpu_count()},
  }
  report.write_suite(workdir, results)
  return results


def main(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """`run`, then its tables printed: what ``python -m experiments.audio_suite`` does."""
  results = run(config, workdir)
  print(report.suite_markdown(results))
  return results
