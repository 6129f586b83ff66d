"""The jobs' results as files: ``results.json``, a Markdown table and a PNG per run, sweep or suite.

`write_results` writes a run's (a table per N, like the papers' Table I; a bar
per method, or every task against N like Fig. 2), `write_sweep` a sweep's (a
row per point; every task against the point, like Fig. 3), `write_suite` the
audio suite's (a table per probe, the pre-training budget, the peer paper's
Table 1 beside; a bar per method for every task metric).
"""

from __future__ import annotations

import json
import os

import numpy as np

# Lower is better for these tasks.
LOWER_IS_BETTER = ("pitch_mse",)


def markdown(results: dict, tasks) -> str:
  """Methods as columns, tasks as rows (like the paper's Table I), a table per N: mean +- std; best in bold."""
  by_n = results.get("by_n_train") or {str(results["n_train"]): results["methods"]}
  seeds = len(next(iter(results["methods"].values()))[tasks[0]]["values"])
  lines = [f"Mean +- std over {seeds} seeds; runtime {results['runtime_s']:.0f} s."]
  for n, by_method in by_n.items():
    methods = list(by_method)
    lines += ["", f"N = {n} labelled examples:", "",
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
  if results.get("confusion"):
    lines += ["", confusion_markdown(results)]
  return "\n".join(lines) + "\n"


def confusion_markdown(results: dict) -> str:
  """Per-class recall of every method (from ``confusion``, all seeds of the first N), classes as rows.

  Classes that come in time-reversed pairs (``c`` and ``c ^ 1``, as the
  moving-sprite clips) get a second table: the direction accuracy of each
  pair, the fraction of its test clips predicted as one of the pair that are
  predicted as the right one (0.5 when only the order tells them apart and it
  is not read).
  """
  names, confusion = results["class_names"], results["confusion"]
  methods = list(confusion)
  recall = {m: np.diag(np.asarray(c, float)) / np.maximum(np.sum(c, axis=1), 1) for m, c in confusion.items()}
  lines = [f"Per-class recall at N = {results['n_train']} (all seeds):", "",
           "| class | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
  for k, name in enumerate(names):
    lines.append(f"| {name} | " + " | ".join(f"{recall[m][k]:.3f}" for m in methods) + " |")
  from shuffle_learn.data import moving_sprites  # pylint: disable=g-import-not-at-top
  if tuple(names) == moving_sprites.CLASS_NAMES:
    lines += ["", "Direction accuracy per time-reversed pair (chance 0.5):", "",
              "| pair | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for a in range(0, len(names), 2):
      cells = [f"{direction_accuracy(confusion[m], a, a + 1):.3f}" for m in methods]
      lines.append(f"| {names[a]} / {names[a + 1]} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def direction_accuracy(confusion, a: int, b: int) -> float:
  """Of the examples of classes ``a`` and ``b`` predicted as ``a`` or ``b``, the fraction predicted right."""
  c = np.asarray(confusion, float)
  within = c[a, a] + c[a, b] + c[b, a] + c[b, b]
  return float((c[a, a] + c[b, b]) / within) if within else float("nan")


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
        ax.set_xlabel("N labelled examples")
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


PROBE_TITLES = {"linear": "Linear probe (the peer paper's protocol)", "mlp": "3-layer MLP probe (the permutation paper's)"}


def suite_markdown(results: dict) -> str:
  """The audio suite (`shuffle_learn.audio_suite`): a table per probe (methods as rows, task metrics as columns),
  the pre-training budget of every row, and the peer paper's Table 1 beside."""
  methods = results["methods"]
  rows = list(methods)
  probes = list(next(iter(methods.values())))
  columns = list(next(iter(methods.values()))[probes[0]])
  seeds = len(next(iter(methods.values()))[probes[0]][columns[0]]["values"])
  tasks = results["tasks"]
  lines = [f"Mean +- std over {seeds} seeds; runtime {results['runtime_s']:.0f} s on "
           f"{results['machine']['cpu_count']} CPUs ({results['machine']['device']}). Labelled examples: " +
           "; ".join(f"{t} {info['source']} ({info['seconds']:g} s clips), N = {info['n_train']} of "
                     f"{info['train_examples']}, {info['test_examples']} test" for t, info in tasks.items()) + "."]
  for probe in probes:
    lines += ["", f"{PROBE_TITLES.get(probe, probe)}:", "",
              "| method | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    best = {c: max(methods[r][probe][c]["mean"] for r in rows) for c in columns}
    for r in rows:
      cells = []
      for c in columns:
        value = methods[r][probe][c]
        mean = f"**{value['mean']:.3f}**" if value["mean"] == best[c] else f"{value['mean']:.3f}"
        cells.append(f"{mean} +- {value['std']:.3f}")
      lines.append(f"| {r} | " + " | ".join(cells) + " |")
  lines += ["", "Pre-training (the same clips and batches for every method; time on this machine):", "",
            "| method | kind | encoder | parameters | embedding dims | steps | examples seen | train time (s) | "
            "s / step | pretext metric (chance) |", "|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    info = results["rows"][r]
    pretext = info.get("pretext")
    metric = f"{pretext['metric']} {pretext['value']:.3f} ({pretext['chance']:.3f})" if pretext else "-"
    per_step = info.get("seconds_per_step", float("nan"))
    per_step = f"{per_step:.3f}" if np.isfinite(per_step) else "-"
    dims = " / ".join(f"{t} {d}" for t, d in info.get("dims", {}).items()) or "-"
    lines.append(f"| {r} | {info['kind']} | {info['encoder']} | {info['parameters']:,} | {dims} | {info['steps']} | "
                 f"{info['examples_seen']:,} | {info['train_seconds']:.0f} | {per_step} | {metric} |")
  paper = results.get("paper")
  if paper:
    lines += ["", "The peer paper's Table 1 (Kuroyanagi et al. 2022: EfficientNet-B0 pre-trained on 18,939 "
              "AudioSet clips, linear probe on Speech Commands, DCASE 2016 task 2 and NSynth):", "",
              "| row | " + " | ".join(paper["columns"]) + " |", "|---|" + "---|" * len(paper["columns"])]
    for name, values in paper["rows"].items():
      lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
  return "\n".join(lines) + "\n"


def write_suite(workdir: str, results: dict) -> None:
  """``results.json``, ``results.md`` (`suite_markdown`) and ``results.png``: a bar per method, a panel per
  task metric, a row of panels per probe."""
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
  with open(os.path.join(workdir, "results.md"), "w") as f:
    f.write(suite_markdown(results))
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  methods = results["methods"]
  rows = list(methods)
  probes = list(next(iter(methods.values())))
  columns = list(next(iter(methods.values()))[probes[0]])
  fig, axes = plt.subplots(len(probes), len(columns), figsize=(2.6 * len(columns), 2.8 * len(probes)),
                           squeeze=False)
  colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  for i, probe in enumerate(probes):
    for ax, column in zip(axes[i], columns):
      for k, r in enumerate(rows):
        value = methods[r][probe][column]
        ax.bar(k, value["mean"], yerr=value["std"], capsize=2, color=colors[k % len(colors)], label=r)
      ax.set_xticks([])
      ax.set_title(f"{column}\n({probe})", fontsize=8)
  handles, labels = axes[0][0].get_legend_handles_labels()
  fig.legend(handles, labels, loc="center right", fontsize=8)  # Beside the panels, over no bar.
  fig.tight_layout(rect=(0, 0, 0.88, 1))
  fig.savefig(os.path.join(workdir, "results.png"), dpi=110)
  plt.close(fig)
