"""Throughput of the jitted spectrogram front ends and patch slicing on this machine.

Batches of 32 clips of 4 s at 16 kHz (32 x 64000 float32 samples) through
`log_spectrogram` (398 x 513), `log_mel_spectrogram` (398 x 64), the log mel
spectrogram cut into frequency bands, time segments and time-frequency tiles by
`to_patches`, and the whole pretext input (tiles, sampled permutations,
shuffled patches and target ranks). Also times the two framings that
`stft_magnitude` could use (one gather with constant indices, which it uses, and
reshaping into hops and concatenating shifted copies). Prints a Markdown table
of median and minimum ms per batch and examples per second, and writes JSON and Markdown.

  python -m benchmarks.frontend --workdir DIR [--config benchmarks/configs/frontend.py] [--config.reps=5]
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._machine import machine_info
from shuffle_learn.data import frontend
from shuffle_learn.data import patches
from shuffle_learn.data import permutations

BATCH, SAMPLES = 32, 64000
WINDOW, HOP = 400, 160


def interleaved_ms(fns: dict, reps: int) -> dict:
  """Median and min wall times in ms of blocking callables, timed round-robin.

  Each round times every case once, so that load from other processes on a
  shared machine is spread over all cases rather than biasing one.
  """
  for fn in fns.values():  # Compile and warm up.
    fn()
    fn()
  times = {name: [] for name in fns}
  for _ in range(reps):
    for name, fn in fns.items():
      start = time.perf_counter()
      fn()
      times[name].append(time.perf_counter() - start)
  return {name: (1e3 * float(np.median(t)), 1e3 * float(np.min(t))) for name, t in times.items()}


def _frames_gather(audio):
  frames = 1 + (audio.shape[-1] - WINDOW) // HOP
  index = HOP * np.arange(frames)[:, None] + np.arange(WINDOW)[None, :]
  return audio[..., index]


def _frames_reshape(audio):
  frames = 1 + (audio.shape[-1] - WINDOW) // HOP
  chunks = -(-WINDOW // HOP)
  used = (frames + chunks - 1) * HOP
  audio = jnp.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(0, max(0, used - audio.shape[-1]))])[..., :used]
  hops = audio.reshape(audio.shape[:-1] + (frames + chunks - 1, HOP))
  return jnp.concatenate([hops[..., i:i + frames, :] for i in range(chunks)], axis=-1)[..., :WINDOW]


def _tiles(spec, n_rows, n_cols):
  """(..., frames, bins) -> patches of the (frequency, time) layout."""
  return patches.to_patches(jnp.swapaxes(spec, -1, -2), n_rows, n_cols, crop="end")


def _pretext_input(audio, key):
  tiles = _tiles(frontend.log_mel_spectrogram(audio), 4, 4)
  perms = permutations.sample_permutations(key, audio.shape[0], 16)
  return permutations.shuffle_patches(tiles, perms), permutations.permutation_ranks(perms)


def cases(audio: jax.Array) -> dict:
  """name -> (jitted function, args, output shape)."""
  key = jax.random.key(0)
  fns = {
      "framing: gather (used)": (_frames_gather, (audio,)),
      "framing: reshape + concat": (_frames_reshape, (audio,)),
      "stft_magnitude": (frontend.stft_magnitude, (audio,)),
      "log_spectrogram": (frontend.log_spectrogram, (audio,)),
      "log_mel_spectrogram": (frontend.log_mel_spectrogram, (audio,)),
      "log_mel + to_patches 8x1 (bands)": (lambda a: _tiles(frontend.log_mel_spectrogram(a), 8, 1), (audio,)),
      "log_mel + to_patches 1x10 (segments)": (lambda a: _tiles(frontend.log_mel_spectrogram(a), 1, 10), (audio,)),
      "log_mel + to_patches 4x4 (tiles)": (lambda a: _tiles(frontend.log_mel_spectrogram(a), 4, 4), (audio,)),
      "log_mel + 4x4 tiles + shuffle + targets": (_pretext_input, (audio, key)),
  }
  out = {}
  for name, (fn, args) in fns.items():
    jitted = jax.jit(fn)
    shapes = jax.tree.map(lambda s: tuple(s.shape), jax.eval_shape(jitted, *args))
    out[name] = (lambda f=jitted, a=args: jax.block_until_ready(f(*a)), shapes)
  return out


def run(reps: int) -> dict:
  audio = jnp.asarray(np.random.default_rng(0).standard_normal((BATCH, SAMPLES)).astype(np.float32))
  np.testing.assert_array_equal(_frames_gather(audio), _frames_reshape(audio))
  timed = cases(audio)
  ms = interleaved_ms({name: fn for name, (fn, _) in timed.items()}, reps)
  results = []
  for name, (_, shapes) in timed.items():
    median, best = ms[name]
    results.append({"case": name, "output_shape": shapes, "ms_per_batch": median, "min_ms_per_batch": best,
                    "examples_per_s": BATCH / median * 1e3})
  return {
      **machine_info(),
      "batch": BATCH,
      "samples": SAMPLES,
      "reps": reps,
      "results": results,
  }


def markdown(report: dict) -> str:
  lines = [f"Device: {report['device']} ({report['cpu_count']} CPU cores), JAX {report['jax']}; "
           f"batches of {report['batch']} x {report['samples']} float32 samples (4 s at 16 kHz), jitted, "
           f"{report['reps']} interleaved runs; examples / s from the median.", "",
           "| case | output shape | median ms / batch | min ms / batch | examples / s |", "|---|---|---:|---:|---:|"]
  for r in report["results"]:
    lines.append(f"| {r['case']} | {r['output_shape']} | {r['ms_per_batch']:.1f} | {r['min_ms_per_batch']:.1f} "
                 f"| {r['examples_per_s']:.0f} |")
  return "\n".join(lines) + "\n"


def main(config, workdir: str) -> dict:
  """Runs the benchmark of ``config`` (`benchmarks/configs/frontend.py`); writes and returns its report."""
  out = Path(workdir)
  out.mkdir(parents=True, exist_ok=True)
  print("Front-end benchmark (jitted; compile time excluded):")
  report = run(reps=config.reps)
  table = markdown(report)
  print(table)
  (out / "frontend.json").write_text(json.dumps(report, indent=2))
  (out / "frontend.md").write_text(table)
  print(f"Wrote {out}/frontend.json, frontend.md")
  return report


if __name__ == "__main__":
  from shuffle_learn import cli  # pylint: disable=g-import-not-at-top
  cli.run(main, config="benchmarks/configs/frontend.py", workdir_help="Output folder (JSON, Markdown).")
