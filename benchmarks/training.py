"""Training throughput beside the input pipeline's rate, in one run.

For a config (by default the CPU main job, ``experiments/configs/default.py``)
measures on this machine:

  * the host input pipeline alone: `GMNotesSource` (or NSynth) -> grain
    batches, notes/s, for 1 and 2 read threads;
  * the jitted train step alone, on a batch already on the device: steps/s and
    examples/s (front end, patches, permutations, CFN forward and backward,
    Adam);
  * the two together: `train.train_and_evaluate` for ``--steps`` steps (its
    own timing: after the compiling first step, evaluation and checkpoint
    saves excluded);

and prints which one bounds training: the pipeline must deliver at least 3x
what the step consumes, and the end-to-end rate says what is left when both
share the machine (on a CPU they share its cores).

  python -m benchmarks.training [--config experiments/configs/default.py] [--steps 200] [--out DIR]
      [--set pretext.loss=mse ...]
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from benchmarks._machine import machine_info
from shuffle_learn import train


def load_config(path: str, overrides: list[str]):
  spec = importlib.util.spec_from_file_location("benchmark_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  for item in overrides:
    field, value = item.split("=", 1)
    parent, name = field.split(".")
    try:
      value = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      pass  # A bare string.
    config[parent][name] = value
  return config


def pipeline_rate(config, source, num_batches: int, num_threads: int) -> float:
  config = config.copy_and_resolve_references()
  config.data.num_threads = num_threads
  iterator = train.train_batches(config, source)
  next(iterator)  # Loads the SoundFonts, starts the threads.
  start = time.perf_counter()
  for _ in range(num_batches):
    next(iterator)
  return num_batches * config.train.batch_size / (time.perf_counter() - start)


def step_rate(experiment, source, num_steps: int) -> float:
  """Steps/s of the jitted step alone, on one real batch kept on the device."""
  config = experiment.config
  audio = np.stack([source[i]["audio"] for i in range(config.train.batch_size)])
  batch = experiment.device_batch({"audio": audio})
  state = experiment.init(config.seed)
  step = experiment.jit_train_step()
  state, _ = step(state, batch, jax.random.key(0))
  jax.block_until_ready(state)
  start = time.perf_counter()
  for i in range(num_steps):
    state, _ = step(state, batch, jax.random.key(i))
  jax.block_until_ready(state)
  return num_steps / (time.perf_counter() - start)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--config", default="experiments/configs/default.py")
  parser.add_argument("--set", nargs="*", default=[], help="overrides, e.g. pretext.loss=mse")
  parser.add_argument("--steps", type=int, default=200)
  parser.add_argument("--out", default="results/training_benchmark")
  args = parser.parse_args()

  config = load_config(args.config, args.set)
  config.train.progress = False
  experiment = train.build(config)
  source = train.make_source(config, "train")
  batch = config.train.batch_size
  pipeline = {threads: pipeline_rate(config, source, max(args.steps // 4, 10), threads) for threads in (1, 2)}
  steps_alone = step_rate(experiment, source, args.steps)
  with tempfile.TemporaryDirectory() as workdir:
    e2e_config = config.copy_and_resolve_references()
    e2e_config.train.num_steps = args.steps + 1
    e2e_config.train.eval_every = e2e_config.train.checkpoint_every = e2e_config.train.log_every = args.steps + 1
    summary = train.train_and_evaluate(e2e_config, workdir)
  e2e = summary["steps_per_second"]
  best_pipeline = max(pipeline.values())
  ratio = best_pipeline / (steps_alone * batch)
  bound = ("the train step (compute)" if ratio >= 3 else "the input pipeline") + (
      f": the pipeline alone delivers {ratio:.1f}x what the step alone consumes")
  report = {
      "machine": machine_info(),
      "config": args.config,
      "overrides": args.set,
      "batch_size": batch,
      "input_shape": list(experiment.inputs(np.zeros((1, experiment.num_samples), np.float32)).shape[1:]),
      "pipeline_notes_per_second": {f"{t} threads": r for t, r in pipeline.items()},
      "step_alone": {"steps_per_second": steps_alone, "examples_per_second": steps_alone * batch},
      "end_to_end": {"steps_per_second": e2e, "examples_per_second": e2e * batch},
      "pipeline_over_step": ratio,
      "end_to_end_over_step_alone": e2e / steps_alone,
      "bound": bound,
  }
  m = report["machine"]
  lines = [
      f"Config `{args.config}` {' '.join(args.set)}; batch {batch}, patches {report['input_shape']}; "
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
  out = Path(args.out)
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


if __name__ == "__main__":
  main()
