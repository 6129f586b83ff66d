"""End-to-end input rate: SoundFont notes -> grain batches -> spectrogram patches.

Measures, in one run on this machine, examples/s of
  * the host pipeline: `GMNotesSource` rendering on demand, batched by
    `loader.note_batches` (what feeds the training step);
  * the device front end, jitted: the paper's log spectrogram in 10 frequency
    bands and the log-mel spectrogram in 8 bands, each with on-device
    permutations and rank targets (what the training step will run first);
and prints their ratio. The training step's own rate (issue 4) is the other
side of the "pipeline delivers 3x what training consumes" check.

  python -m benchmarks.data_pipeline [--batches 20] [--batch 32] [--out DIR]
"""

from __future__ import annotations

import argparse
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


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--batches", type=int, default=20)
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--soundfonts", default=None, help="comma-separated .sf2 paths (default: gm_notes')")
  parser.add_argument("--out", default="results/data_pipeline_benchmark")
  args = parser.parse_args()

  source = gm_notes.GMNotesSource("train", soundfonts=args.soundfonts)
  audio = jnp.asarray(np.stack([source[i]["audio"] for i in range(args.batch)]))
  report = {
      "device": f"{jax.devices()[0].platform}: {jax.devices()[0].device_kind}",
      "cpu_count": os.cpu_count(),
      "batch": args.batch,
      "train_notes": len(source),
      "examples_per_s": {
          "host: render + grain batches, 1 thread": host_rate(source, args.batch, args.batches, 1),
          "host: render + grain batches, 2 threads": host_rate(source, args.batch, args.batches, 2),
          "device: log spectrogram, 10 bands, permutations": device_rate(audio, False, 10, args.batches),
          "device: log-mel, 8 bands, permutations": device_rate(audio, True, 8, args.batches),
      },
  }
  rates = report["examples_per_s"]
  host = max(v for k, v in rates.items() if k.startswith("host"))
  lines = [f"Device {report['device']}, {report['cpu_count']} CPU cores, batch {args.batch}.", "",
           "| stage | examples/s | host rate / stage rate |", "|---|---|---|"]
  lines += [f"| {k} | {v:,.0f} | {host / v:.2f}x |" for k, v in rates.items()]
  table = "\n".join(lines) + "\n"
  print(table)
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  (out / "data_pipeline.json").write_text(json.dumps(report, indent=2))
  (out / "data_pipeline.md").write_text(table)


if __name__ == "__main__":
  main()
