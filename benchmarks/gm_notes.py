"""Throughput of General-MIDI notes rendered on demand vs materialised to disk.

Measures, on the default SoundFonts (or --soundfonts):
  * the index: per SoundFont, the time its one-off silence check took (from the
    cache metadata, or measured now with --cold-index) and the time to load it;
  * on demand: notes/s through `GMNotesSource.__getitem__` in this process, on
    random train indices, and through the package's grain pipeline
    (`loader.note_batches`, batches of --batch) in this process with 1 and 4
    read threads and with --workers worker processes;
  * materialised: the same kind of notes written to a float32 .npy memmap
    (write rate, file size), then read back in random order from the page cache
    and cold (the file's pages dropped with posix_fadvise), in notes/s; the size
    of the whole selection materialised, extrapolated.
Prints a table and writes gm_notes.json under --out.

  python -m benchmarks.gm_notes [--num 2000] [--materialise 2000] [--workers 2] [--batch 32] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from shuffle_learn.data import gm_notes


def on_demand(source, indices) -> dict:
  """Notes/s and per-note milliseconds of `source[i]` in this process."""
  source[int(indices[0])]  # Loads the SoundFonts.
  times = []
  start = time.perf_counter()
  for i in indices:
    t = time.perf_counter()
    source[int(i)]
    times.append(time.perf_counter() - t)
  total = time.perf_counter() - start
  ms = 1e3 * np.asarray(times)
  return {
      "notes": len(indices),
      "notes_per_s": len(indices) / total,
      "ms_per_note": {"median": float(np.median(ms)), "p90": float(np.percentile(ms, 90)), "max": float(ms.max())},
  }


def through_loader(source, indices, *, batch: int, threads: int, workers: int) -> dict:
  """Notes/s through the package's grain pipeline, `loader.note_batches`."""
  from shuffle_learn.data import loader  # pylint: disable=g-import-not-at-top

  if workers:
    from absl import flags  # pylint: disable=g-import-not-at-top

    if not flags.FLAGS.is_parsed():  # grain's worker processes read absl flags.
      flags.FLAGS(sys.argv[:1])

  class Subset:
    """The benchmark's indices of `source`, as a data source."""

    def __len__(self):
      return len(indices)

    def __getitem__(self, i):
      return source[int(indices[i])]

    def __repr__(self):
      return f"Subset({source!r}, {len(indices)})"

  start = time.perf_counter()
  batches = loader.note_batches(
      Subset(), batch_size=batch, seed=0, num_epochs=1, num_threads=threads, worker_count=workers)
  count, first = 0, None
  for b in batches:
    if first is None:
      first = time.perf_counter()
    else:
      count += len(b["pitch"])
  end = time.perf_counter()
  return {
      "workers": workers,
      "threads": threads,
      "batch": batch,
      "notes_after_first_batch": count,
      "first_batch_s": first - start,
      "notes_per_s_after_first": count / (end - first),
  }


def materialised(source, indices, directory: str) -> dict:
  """Writes the notes to a float32 .npy memmap and reads them back at random."""
  path = os.path.join(directory, "gm_notes_materialised.npy")
  n, length = len(indices), source[0]["audio"].shape[0]
  start = time.perf_counter()
  array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, length))
  for row, i in enumerate(indices):
    array[row] = source[int(i)]["audio"]
  array.flush()
  del array
  with open(path, "rb+") as f:
    os.fsync(f.fileno())
  write_s = time.perf_counter() - start
  order = np.random.default_rng(1).permutation(n)

  def read(drop_cache: bool) -> float:
    if drop_cache:
      fd = os.open(path, os.O_RDONLY)
      os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
      os.close(fd)
    data = np.load(path, mmap_mode="r")
    start = time.perf_counter()
    checksum = 0.0
    for row in order:
      checksum += float(np.array(data[row])[0])
    return n / (time.perf_counter() - start)

  cold = read(drop_cache=True)
  warm = read(drop_cache=False)
  size = os.path.getsize(path)
  os.remove(path)
  return {
      "notes": n,
      "file_bytes": size,
      "bytes_per_note": size / n,
      "render_and_write_notes_per_s": n / write_s,
      "random_read_cold_notes_per_s": cold,
      "random_read_warm_notes_per_s": warm,
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument(
      "--soundfonts", default=None, help="comma-separated .sf2/.sf3 paths (default: the GM ones installed)",
  )
  parser.add_argument("--num", type=int, default=2000, help="notes rendered on demand")
  parser.add_argument("--materialise", type=int, default=2000, help="notes written to disk and read back (0: skip)")
  parser.add_argument("--workers", type=int, default=2, help="loader worker processes to try (-1: skip)")
  parser.add_argument("--batch", type=int, default=32, help="loader batch size")
  parser.add_argument("--cold-index", action="store_true", help="rebuild the index in a fresh cache to time it")
  parser.add_argument("--tmp-dir", default=None, help="where the materialised file is written (default: system temp)")
  parser.add_argument("--out", default="results/gm_notes_benchmark", help="output folder")
  args = parser.parse_args()
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  soundfonts = args.soundfonts or gm_notes.default_soundfonts()

  with tempfile.TemporaryDirectory(dir=args.tmp_dir) as tmp:
    cache_dir = os.path.join(tmp, "cache") if args.cold_index else True
    start = time.perf_counter()
    source = gm_notes.GMNotesSource("train", soundfonts=soundfonts, cache_dir=cache_dir)
    build_s = time.perf_counter() - start
    gm_notes._SCANS.clear()  # pylint: disable=protected-access
    start = time.perf_counter()
    gm_notes.GMNotesSource("train", soundfonts=soundfonts, cache_dir=cache_dir)
    load_s = time.perf_counter() - start
    summary = source.summary
    indices = np.random.default_rng(0).permutation(len(source))
    report = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "soundfonts": soundfonts,
        "summary": summary,
        "index": {
            "construct_s": build_s,
            "construct_from_cache_s": load_s,
            "check_s_per_soundfont": {k: v["check_seconds"] for k, v in summary["soundfonts"].items()},
            "check_ms_per_note": {
                k: 1e3 * v["check_seconds"] / max(v["rendered"], 1) for k, v in summary["soundfonts"].items()
            },
        },
        "on_demand": on_demand(source, indices[: args.num]),
    }
    report["loader"] = [
        through_loader(source, indices[: args.num], batch=args.batch, threads=threads, workers=workers)
        for workers, threads in ((0, 1), (0, 4), (args.workers, 1))
        if workers >= 0
    ]
    if args.materialise:
      report["materialised"] = materialised(source, indices[: args.materialise], tmp)
      kept = summary["total"]["kept"]
      report["materialised"]["all_kept_notes"] = kept
      report["materialised"]["all_kept_float32_gb"] = kept * report["materialised"]["bytes_per_note"] / 1e9
      report["materialised"]["all_kept_int16_gb"] = report["materialised"]["all_kept_float32_gb"] / 2

  total = summary["total"]
  print(f"SoundFonts: {', '.join(summary['soundfonts'])}; {summary['instruments']} instruments; "
        f"notes rendered {total['rendered']}, kept {total['kept']}, silent {total['silent']}, "
        f"clipped {total['clipped']}; splits {summary['splits']}")
  for name, seconds in report["index"]["check_s_per_soundfont"].items():
    print(f"index check {name}: {seconds:.1f} s ({report['index']['check_ms_per_note'][name]:.2f} ms/note)")
  print(f"construct: {build_s:.2f} s; from the cache: {load_s:.2f} s")
  od = report["on_demand"]
  print(f"on demand, 1 process: {od['notes_per_s']:.0f} notes/s (median {od['ms_per_note']['median']:.2f} ms, "
        f"p90 {od['ms_per_note']['p90']:.2f} ms)")
  for run in report["loader"]:
    print(f"on demand, loader.note_batches, {run['workers']} workers, {run['threads']} threads, batch {run['batch']}: "
          f"{run['notes_per_s_after_first']:.0f} notes/s after the first batch ({run['first_batch_s']:.1f} s to start)")
  if "materialised" in report:
    m = report["materialised"]
    print(f"materialised float32 memmap ({m['notes']} notes, {m['file_bytes'] / 1e6:.0f} MB): written "
          f"{m['render_and_write_notes_per_s']:.0f} notes/s (render + write); random reads "
          f"{m['random_read_warm_notes_per_s']:.0f} notes/s warm, "
          f"{m['random_read_cold_notes_per_s']:.0f} notes/s cold; "
          f"all {m['all_kept_notes']} kept notes: {m['all_kept_float32_gb']:.1f} GB float32, "
          f"{m['all_kept_int16_gb']:.1f} GB int16")
  (out / "gm_notes.json").write_text(json.dumps(report, indent=2))
  print(f"Wrote {out}/gm_notes.json")


if __name__ == "__main__":
  main()
