"""End-to-end input rate: SoundFont notes -> grain batches -> spectrogram patches.

Measures, in one run on this machine, examples/s of
  * the host pipeline: `GMNotesSource` rendering on demand, batched by
    `loader.note_batches` (what feeds the training step);
  * the device front end, jitted: the paper's log spectrogram in 10 frequency
    bands and the log-mel spectrogram in 8 bands, each with on-device
    permutations and rank targets (what the training step will run first);
and prints their ratio. The training step's own rate (issue 4) is the other
side of the "pipeline delivers 3x what training consumes" check.

  python -m benchmarks.data_pipeline --workdir DIR [--config benchmarks/configs/data_pipeline.py]
      [--config.batches=20] [--config.batch=32] [--config.soundfonts=TimGM6mb,FluidR3_GM]
"""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from shuffle_learn.data import frontend
from shuffle_learn.data import gm_notes
from shuffle_learn.data import loader
from shuffle_learn.data import patches
from shuffle_learn.data import permutations


def host_rate(source, batch_size: int, num_batches: int, num_threads: int) -> float:
  iterator = iter(loader.note_batches(source, batch_size=batch_size, seed=0, num_threads=num_threads))
  next(iterator)  # Loads the SoundFonts and starts the threads.
  start = time.perf_counter()
  for _ in range(num_batches):
    next(iterator)
  return num_batches * batch_size / (time.perf_counter() - start)


@functools.partial(jax.jit, static_argnames=("mel", "bands"))
def pretext_input(audio, key, *, mel: bool, bands: int):
  spectrogram = frontend.log_mel_spectrogram(audio) if mel else frontend.log_spectrogram(audio)
  # (batch, frames, bins) -> (batch, bands, bins // bands, frames)
  bands_ = patches.to_patches(jnp.swapaxes(spectrogram, -1, -2), bands, 1, crop="end")
  perms = permutations.sample_permutations(key, audio.shape[0], bands)
  return permutations.shuffle_patches(bands_, perms), permutations.permutation_ranks(perms)


def device_rate(audio: jax.Array, mel: bool, bands: int, reps: int) -> float:
  key = jax.random.key(0)
  jax.block_until_ready(pretext_input(audio, key, mel=mel, bands=bands))
  start = time.perf_counter()
  for i in range(reps):
    jax.block_until_ready(pretext_input(audio, jax.random.fold_in(key, i), mel=mel, bands=bands))
  return reps * audio.shape[0] / (time.perf_counter() - start)


def main(config, workdir: str) -> dict:
  """Runs the benchmark of ``config`` (`benchmarks/configs/data_pipeline.py`); writes and returns its report."""
  source = gm_notes.GMNotesSource("train", soundfonts=config.soundfonts or None)
  audio = jnp.asarray(np.stack([source[i]["audio"] for i in range(config.batch)]))
  report = {
      "device": f"{jax.devices()[0].platform}: {jax.devices()[0].device_kind}",
      "cpu_count": os.cpu_count(),
      "batch": config.batch,
      "train_notes": len(source),
      "examples_per_s": {
          "host: render + grain batches, 1 thread": host_rate(source, config.batch, config.batches, 1),
          "host: render + grain batches, 2 threads": host_rate(source, config.batch, config.batches, 2),
          "device: log spectrogram, 10 bands, permutations": device_rate(audio, False, 10, config.batches),
          "device: log-mel, 8 bands, permutations": device_rate(audio, True, 8, config.batches),
      },
  }
  rates = report["examples_per_s"]
  host = max(v for k, v in rates.items() if k.startswith("host"))
  lines = [f"Device {report['device']}, {report['cpu_count']} CPU cores, batch {config.batch}.", "",
           "| stage | examples/s | host rate / stage rate |", "|---|---|---|"]
  lines += [f"| {k} | {v:,.0f} | {host / v:.2f}x |" for k, v in rates.items()]
  table = "\n".join(lines) + "\n"
  print(table)
  out = Path(workdir)
  out.mkdir(parents=True, exist_ok=True)
  (out / "data_pipeline.json").write_text(json.dumps(report, indent=2))
  (out / "data_pipeline.md").write_text(table)
  return report


if __name__ == "__main__":
  from shuffle_learn import cli  # pylint: disable=g-import-not-at-top
  cli.run(main, config="benchmarks/configs/data_pipeline.py", workdir_help="Output folder (JSON, Markdown).")
