"""Training throughput beside the input pipeline's rate, in one run.

For a training config (``config.pretrain``; by default the CPU main job,
``experiments/configs/default.py``) measures on this machine:

  * the host input pipeline alone: `GMNotesSource` (or NSynth) -> grain
    batches, notes/s, for 1 and 2 read threads;
  * the jitted train step alone, on a batch already on the device: steps/s and
    examples/s (front end, patches, permutations, CFN forward and backward,
    Adam);
  * the two together: `train.train_and_evaluate` for ``config.steps`` steps
    (its own timing: after the compiling first step, evaluation and
    checkpoint saves excluded);

and prints which one bounds training: the pipeline must deliver at least 3x
what the step consumes, and the end-to-end rate says what is left when both
share the machine (on a CPU they share its cores). The only benchmark that
imports the trainer: the trainer is what it measures.

  python -m benchmarks.training --workdir DIR [--config benchmarks/configs/training.py] [--config.steps=200]
      [--config.pretrain.pretext.loss=mse ...]
  python -m benchmarks.training --config benchmarks/configs/training_paper.py --workdir DIR
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import chex
import jax
import ml_collections
import numpy as np

from benchmarks._machine import machine_info
from shuffle_learn import cli
from shuffle_learn import config as config_lib
from shuffle_learn import parallel
from shuffle_learn import train
from shuffle_learn.data import sources


def _flatten(node, prefix: str = "") -> dict:
  """``{"pretext.loss": "mse", ...}``: the leaves of a config by their dotted paths."""
  out = {}
  for key, value in node.items():
    if isinstance(value, ml_collections.ConfigDict):
      out.update(_flatten(value, f"{prefix}{key}."))
    else:
      out[prefix + key] = value
  return out


def overrides(pretrain, path: str) -> list[str]:
  """``field=value`` for every field where ``pretrain`` differs from the config file at ``path``."""
  base = _flatten(cli.load_config(path))
  return [f"{field}={value}" for field, value in _flatten(pretrain).items()
          if field not in base or base[field] != value]


def pipeline_rate(config, source, num_batches: int, num_threads: int) -> float:
  config = config.copy_and_resolve_references()
  config.data.num_threads = num_threads
  iterator = sources.train_batches(config, source)
  next(iterator)  # Loads the SoundFonts, starts the threads.
  start = time.perf_counter()
  for _ in range(num_batches):
    next(iterator)
  return num_batches * config.train.batch_size / (time.perf_counter() - start)


def step_rate(experiment, source, num_steps: int) -> float:
  """Steps/s of the jitted step alone, on one real batch kept on the device."""
  config, input_ = experiment.config, experiment.pretext.input
  raw = np.stack([source[i][input_.raw_key] for i in range(config.train.batch_size)])
  batch = parallel.device_batch(input_, experiment.mesh, {input_.raw_key: raw})
  state = experiment.init(config.seed)
  chex.clear_trace_counter()  # The step is traced again if `main` runs twice in one process.
  step = experiment.jit_train_step()
  state, _ = step(state, batch, jax.random.key(0))
  jax.block_until_ready(state)
  start = time.perf_counter()
  for i in range(num_steps):
    state, _ = step(state, batch, jax.random.key(i))
  jax.block_until_ready(state)
  return num_steps / (time.perf_counter() - start)


def main(config, workdir: str) -> dict:
  """Runs the benchmark of ``config`` (`benchmarks/configs/training.py`); writes and returns its report."""
  changed = overrides(config.pretrain, config.pretrain_config)
  pretrain = config.pretrain.copy_and_resolve_references()
  pretrain.train.progress = False
  steps = config.steps
  experiment = train.build(pretrain)
  source = sources.make_source(pretrain, "train")
  batch = pretrain.train.batch_size
  pipeline = {threads: pipeline_rate(pretrain, source, max(steps // 4, 10), threads) for threads in (1, 2)}
  steps_alone = step_rate(experiment, source, steps)
  with tempfile.TemporaryDirectory() as run_dir:
    e2e_config = pretrain.copy_and_resolve_references()
    e2e_config.train.num_steps = steps + 1
    e2e_config.train.num_epochs = 0.0  # Else `num_steps` is ignored (the paper's config counts epochs).
    e2e_config.train.eval_every = e2e_config.train.checkpoint_every = e2e_config.train.log_every = steps + 1
    summary = train.train_and_evaluate(e2e_config, run_dir)
  e2e = summary["steps_per_second"]
  best_pipeline = max(pipeline.values())
  ratio = best_pipeline / (steps_alone * batch)
  bound = ("the train step (compute)" if ratio >= 3 else "the input pipeline") + (
      f": the pipeline alone delivers {ratio:.1f}x what the step alone consumes")
  report = {
      "machine": machine_info(),
      "config": config.pretrain_config,
      "overrides": changed,
      "batch_size": batch,
      "input_shape": list(jax.eval_shape(experiment.pretext.patches, experiment.pretext.input.dummy(1)).shape[1:]),
      "pipeline_notes_per_second": {f"{t} threads": r for t, r in pipeline.items()},
      "step_alone": {"steps_per_second": steps_alone, "examples_per_second": steps_alone * batch},
      "end_to_end": {"steps_per_second": e2e, "examples_per_second": e2e * batch},
      "pipeline_over_step": ratio,
      "end_to_end_over_step_alone": e2e / steps_alone,
      "bound": bound,
  }
  m = report["machine"]
  lines = [
      f"Config `{config.pretrain_config}` {' '.join(changed)}; batch {batch}, patches {report['input_shape']}; "
      f"{m['device']}, {m['cpu_count']} CPU cores, jax {m['jax']}.", "",
      "| stage | steps/s | examples/s | ratio to the step alone |", "|---|---|---|---|",
  ]
  for threads, rate in pipeline.items():
    lines.append(f"| input pipeline alone, {threads} thread{'s' if threads > 1 else ''} | | {rate:,.0f} | "
                 f"{rate / (steps_alone * batch):.2f}x |")
  lines.append(f"| train step alone (batch on device) | {steps_alone:.3g} | {steps_alone * batch:,.0f} | 1.00x |")
  lines.append(f"| end to end (`train_and_evaluate`) | {e2e:.3g} | {e2e * batch:,.0f} | {e2e / steps_alone:.2f}x |")
  lines += ["", f"Bound: {bound}."]
  table = "\n".join(lines) + "\n"
  print(table)
  out = Path(workdir)
  out.mkdir(parents=True, exist_ok=True)
  (out / "training.json").write_text(json.dumps(report, indent=2))
  (out / "training.md").write_text(table)
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  names = [f"pipeline\n{t} thread{'s' if t > 1 else ''}" for t in pipeline] + ["step\nalone", "end to\nend"]
  values = list(pipeline.values()) + [steps_alone * batch, e2e * batch]
  fig, ax = plt.subplots(figsize=(6, 3.5))
  ax.bar(names, values, color=["tab:blue"] * len(pipeline) + ["tab:orange", "tab:green"])
  ax.set_ylabel("examples / s")
  ax.set_title(f"Training throughput, {m['device']}, {m['cpu_count']} cores")
  fig.tight_layout()
  fig.savefig(out / "training.png", dpi=120)
  return report


if __name__ == "__main__":
  cli.run(main, config="benchmarks/configs/training.py",
          validate=lambda config: config_lib.validate(config.pretrain, "config.pretrain"),
          workdir_help="Output folder (JSON, Markdown, PNG).")
