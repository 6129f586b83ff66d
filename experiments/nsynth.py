"""The main job: pre-train the CFN on a permutation pretext task, probe it downstream.

  python -m experiments.nsynth --workdir DIR [--config experiments/configs/nsynth.py] [--config.key=value ...]

Steps, each resumed or reused if already done in DIR:

1. pre-train every method of ``config.methods`` (a `pretext.loss`) in
   ``DIR/pretrain/METHOD`` (`shuffle_learn.train`, Orbax checkpoints there);
2. embed a fixed pool of train notes and a fixed test set with every method's
   checkpoint and every baseline, cached in ``DIR/embeddings``;
3. train downstream heads (`shuffle_learn.evaluators.probes`) on N notes drawn
   from the pool, for every N of ``eval.n_train`` and every seed;
4. write ``DIR/results.json``, ``DIR/results.md`` (a table like the paper's
   Table I) and ``DIR/results.png``.

results.json::

  {"methods": {METHOD: {TASK: {"mean": float, "std": float, "values": [float, ...]}}},
   "pretext": {METHOD: {"partial_ranks_accuracy": float}},
   "runtime_s": float, "config": {...}}

with TASK as in `probes.TASKS`; with several N, ``methods`` holds the first N
and ``by_n_train`` holds them all ({N: {METHOD: {TASK: ...}}}).

A sweep (``config.sweep.fields`` and ``config.sweep.points``, e.g. the number
of frequency bands, or bands against time frames against tiles) runs the whole
job once per value, in ``DIR/NAME``, each with its own results files, then
writes ``DIR/sweep.json`` ({"sweep": {NAME: results}, "fields": [...],
"runtime_s": float}), ``DIR/sweep.md`` (a row per value) and ``DIR/sweep.png``
(every task against the value, a line per method).
"""

from __future__ import annotations

import json
import os
import time

import jax
import ml_collections
import numpy as np

from shuffle_learn import train
from shuffle_learn.evaluators import embeddings as embeddings_lib
from shuffle_learn.evaluators import probes
from shuffle_learn.evaluators import supervised as supervised_lib

BASELINES = ("random_embedding", "logmel_baseline", "supervised")
# Lower is better for these tasks.
LOWER_IS_BETTER = ("pitch_mse",)


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks the job's own fields (the pre-training config checks itself)."""
  from shuffle_learn import pretext  # pylint: disable=g-import-not-at-top
  for name, pretrain in sweep_points(config):
    try:
      train.validate_config(pretrain)
    except ValueError as e:
      raise ValueError(f"config.sweep point {name!r} gives a bad pre-training config: {e}") from None
  for method in config.methods:
    if method not in pretext.LOSSES:
      raise ValueError(f"config.methods: {method!r} is not a pretext loss {pretext.LOSSES}.")
  for baseline in config.baselines:
    if baseline not in BASELINES:
      raise ValueError(f"config.baselines: {baseline!r} is not one of {BASELINES}.")
  if not config.methods and not config.baselines:
    raise ValueError("config.methods and config.baselines are both empty: nothing to evaluate.")
  n_train = tuple(config.eval.n_train)
  if not n_train or not all(isinstance(n, int) and n >= 2 for n in n_train):
    raise ValueError(f"config.eval.n_train must be a non-empty tuple of integers >= 2, got {n_train!r}.")
  if config.eval.embedding not in embeddings_lib.LAYERS:
    raise ValueError(f"config.eval.embedding must be one of {tuple(embeddings_lib.LAYERS)}, "
                     f"got {config.eval.embedding!r}.")
  if max(n_train) > config.eval.pool_examples:
    raise ValueError(f"config.eval.pool_examples ({config.eval.pool_examples}) must be at least the largest "
                     f"config.eval.n_train ({max(n_train)}).")
  if not isinstance(config.eval.seeds, int) or config.eval.seeds < 1:
    raise ValueError(f"config.eval.seeds must be an integer >= 1, got {config.eval.seeds!r}.")
  if not isinstance(config.eval.test_examples, int) or config.eval.test_examples < 0:
    raise ValueError(f"config.eval.test_examples must be an integer >= 0, got {config.eval.test_examples!r}.")
  unknown = set(config.eval.tasks) - set(probes.TASKS)
  if unknown or not config.eval.tasks:
    raise ValueError(f"config.eval.tasks must be a non-empty subset of {probes.TASKS}, got {config.eval.tasks!r}.")
  try:
    probe_config(config)
  except ValueError as e:
    raise ValueError(f"config.eval: {e}") from None
  train.validate_config(config.pretrain)


def sweep_points(config: ml_collections.ConfigDict) -> list[tuple[str, ml_collections.ConfigDict]]:
  """``(name, pre-training config)`` for every value of ``config.sweep``; [] without a sweep."""
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
  values = train.read_metrics(workdir).get("valid/partial_ranks_accuracy", [])
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


def run_sweep(config, points, workdir: str) -> dict:
  """`run_one` for every sweep point, each in ``workdir/NAME``; a summary over them."""
  start = time.perf_counter()
  results = {}
  for name, pretrain in points:
    print(f"[nsynth] sweep point {name}", flush=True)
    point = config.copy_and_resolve_references()
    point.pretrain = pretrain
    point.sweep.fields = ()
    results[name] = run_one(point, os.path.join(workdir, name))
  summary = {"sweep": results, "fields": list(config.sweep.fields), "runtime_s": time.perf_counter() - start,
             "config": config.to_dict()}
  write_sweep(workdir, summary, tuple(config.eval.tasks))
  return summary


def run_one(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """The job without a sweep; returns what it writes to ``results.json``."""
  start = time.perf_counter()
  os.makedirs(workdir, exist_ok=True)
  probe = probe_config(config)
  tasks = tuple(config.eval.tasks)
  layer = config.eval.embedding
  # Embedders by method name; every CFN method shares the pre-training front end.
  embedders, pretext = {}, {}
  for method in config.methods:
    run_dir = os.path.join(workdir, "pretrain", method)
    print(f"[nsynth] pre-training {method} in {run_dir}", flush=True)
    train.train_and_evaluate(method_config(config, method), run_dir)
    run_config, params, step = train.load_checkpoint(run_dir)
    experiment = train.build(run_config)
    embedders[f"{method}-step{step}-{layer}"] = (method, embeddings_lib.cfn_embedder(experiment, params, layer))
    pretext[method] = {"partial_ranks_accuracy": pretext_accuracy(run_dir)}
  base = train.build(config.pretrain)
  if "random_embedding" in config.baselines:
    params = base.init(config.pretrain.seed).params
    embedders[f"random_embedding-seed{config.pretrain.seed}-{layer}"] = (
        "random_embedding", embeddings_lib.cfn_embedder(base, params, layer))
  if "logmel_baseline" in config.baselines:
    embedders["logmel_baseline"] = ("logmel_baseline", embeddings_lib.logmel_embedder(
        base.num_samples, config.pretrain.features.num_mel_bins))

  train_source = train.make_source(config.pretrain, "train")
  test_source = train.make_source(config.pretrain, "test")
  num_families = 11
  num_instruments = getattr(train_source, "num_instruments", None) or 1006  # NSynth's instrument labels.
  test_n = config.eval.test_examples or None
  by_n: dict[int, dict[str, dict]] = {n: {} for n in config.eval.n_train}
  for key, (method, embed) in embedders.items():
    print(f"[nsynth] embedding with {method}", flush=True)
    cache = os.path.join(workdir, "embeddings")
    pool_x, pool_y = embeddings_lib.cached(
        os.path.join(cache, f"{key}-train{config.eval.pool_examples}.npz"),
        lambda: embeddings_lib.embed_notes(train_source, embed, num_examples=config.eval.pool_examples, seed=0))
    test_x, test_y = embeddings_lib.cached(
        os.path.join(cache, f"{key}-test{test_n or 'all'}.npz"),
        lambda: embeddings_lib.embed_notes(test_source, embed, num_examples=test_n, seed=0))
    for n in config.eval.n_train:
      values = {task: [] for task in tasks}
      for seed in range(config.eval.seeds):
        rows = np.random.default_rng(seed).choice(len(pool_x), n, replace=False)
        scores = probes.evaluate_tasks(
            seed, pool_x[rows], {k: v[rows] for k, v in pool_y.items()}, test_x, test_y,
            num_families=num_families, num_instruments=num_instruments, probe=probe, tasks=tasks)
        for task in tasks:
          values[task].append(scores[task])
      by_n[n][method] = {task: summarize(v) for task, v in values.items()}
      print(f"[nsynth]   N={n}: " + ", ".join(f"{t} {by_n[n][method][t]['mean']:.3f}" for t in tasks), flush=True)
  if "supervised" in config.baselines:
    print(f"[nsynth] supervised CFN from scratch on N={config.eval.n_train}", flush=True)
    supervised = supervised_lib.evaluate(config, base, train_source, test_source, config.eval.n_train, tasks,
                                         num_families=num_families, num_instruments=num_instruments)
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
  write_results(workdir, results, tasks)
  return results


def markdown(results: dict, tasks) -> str:
  """Methods as columns, tasks as rows (like the paper's Table I), a table per N: mean +- std; best in bold."""
  by_n = results.get("by_n_train") or {str(results["n_train"]): results["methods"]}
  seeds = len(next(iter(results["methods"].values()))[tasks[0]]["values"])
  lines = [f"Mean +- std over {seeds} seeds; runtime {results['runtime_s']:.0f} s."]
  for n, by_method in by_n.items():
    methods = list(by_method)
    lines += ["", f"N = {n} labelled notes:", "",
              "| task | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for task in tasks:
      means = [by_method[m][task]["mean"] for m in methods]
      best = min(means) if task in LOWER_IS_BETTER else max(means)
      cells = [(f"**{mu:.3f}**" if mu == best else f"{mu:.3f}") + f" +- {by_method[m][task]['std']:.3f}"
               for m, mu in zip(methods, means)]
      lines.append(f"| {task} | " + " | ".join(cells) + " |")
    if results["pretext"]:
      lines.append("| pretext partial-ranks accuracy | " + " | ".join(
          f"{results['pretext'][m]['partial_ranks_accuracy']:.3f}" if m in results["pretext"] else ""
          for m in methods) + " |")
  return "\n".join(lines) + "\n"


def task_axes(tasks):
  """A figure with one panel per task, drawn off-screen."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks), 3.2), squeeze=False)


def save_figure(fig, axes, path: str) -> None:
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  axes[0][0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def write_results(workdir: str, results: dict, tasks) -> None:
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
  with open(os.path.join(workdir, "results.md"), "w") as f:
    f.write(markdown(results, tasks))
  by_n = results.get("by_n_train") or {str(results["n_train"]): results["methods"]}
  ns = sorted(by_n, key=int)
  methods = list(results["methods"])
  fig, axes = task_axes(tasks)
  for ax, task in zip(axes[0], tasks):
    for i, method in enumerate(methods):
      means = [by_n[n][method][task]["mean"] for n in ns if method in by_n[n]]
      stds = [by_n[n][method][task]["std"] for n in ns if method in by_n[n]]
      xs = [int(n) for n in ns if method in by_n[n]]
      if len(xs) > 1:
        ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=method)
        ax.set_xscale("log")
        ax.set_xlabel("N labelled notes")
      else:
        ax.bar(i, means[0], yerr=stds[0], capsize=3, label=method)
        ax.set_xticks([])
    ax.set_title(task, fontsize=9)
  save_figure(fig, axes, os.path.join(workdir, "results.png"))


def sweep_markdown(summary: dict, tasks) -> str:
  """A row per sweep point, a column per method and task: mean +- std over seeds."""
  points = list(summary["sweep"])
  methods = list(next(iter(summary["sweep"].values()))["methods"])
  header = [f"{m}: {t}" for t in tasks for m in methods]
  lines = [f"Sweep over {', '.join(summary['fields'])}; runtime {summary['runtime_s']:.0f} s.", "",
           "| " + " | ".join(["value", "pretext acc."] + header) + " |", "|---" * (len(header) + 2) + "|"]
  for point in points:
    results = summary["sweep"][point]
    pretext = " / ".join(f"{v['partial_ranks_accuracy']:.3f}" for v in results["pretext"].values())
    cells = [f"{results['methods'][m][t]['mean']:.3f} +- {results['methods'][m][t]['std']:.3f}"
             for t in tasks for m in methods]
    lines.append("| " + " | ".join([point, pretext or "-"] + cells) + " |")
  return "\n".join(lines) + "\n"


def write_sweep(workdir: str, summary: dict, tasks) -> None:
  with open(os.path.join(workdir, "sweep.json"), "w") as f:
    json.dump(summary, f, indent=2)
  with open(os.path.join(workdir, "sweep.md"), "w") as f:
    f.write(sweep_markdown(summary, tasks))
  points = list(summary["sweep"])
  methods = list(next(iter(summary["sweep"].values()))["methods"])
  fig, axes = task_axes(tasks)
  for ax, task in zip(axes[0], tasks):
    for method in methods:
      means = [summary["sweep"][p]["methods"][method][task]["mean"] for p in points]
      stds = [summary["sweep"][p]["methods"][method][task]["std"] for p in points]
      ax.errorbar(range(len(points)), means, yerr=stds, marker="o", capsize=3, label=method)
    ax.set_xticks(range(len(points)), points, fontsize=7, rotation=45 if len(points) > 6 else 0)
    ax.set_xlabel(", ".join(f.split(".")[-1] for f in summary["fields"]), fontsize=8)
    ax.set_title(task, fontsize=9)
  save_figure(fig, axes, os.path.join(workdir, "sweep.png"))


def main(argv) -> None:
  del argv
  from absl import logging  # pylint: disable=g-import-not-at-top
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  results = run(_CONFIG.value, _WORKDIR.value)
  tasks = tuple(_CONFIG.value.eval.tasks)
  print(sweep_markdown(results, tasks) if "sweep" in results else markdown(results, tasks))


if __name__ == "__main__":
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  _CONFIG = config_flags.DEFINE_config_file("config", "experiments/configs/nsynth.py", "Job config.",
                                            lock_config=True)
  _WORKDIR = flags.DEFINE_string("workdir", None, "Job directory.", required=True)
  app.run(main)
