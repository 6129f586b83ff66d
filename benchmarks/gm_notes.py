"""Throughput of General-MIDI notes rendered on demand vs materialised to disk.

Measures, on the default SoundFonts (or ``config.soundfonts``):
  * the index: per SoundFont, the time its one-off silence check took (from the
    cache metadata, or measured now with ``cold_index``) and the time to load it;
  * on demand: notes/s through `GMNotesSource.__getitem__` in this process, on
    random train indices, and through the package's grain pipeline
    (`loader.note_batches`, batches of ``batch``) in this process with 1 and 4
    read threads and with ``workers`` worker processes;
  * materialised: the same kind of notes written to a float32 .npy memmap
    (write rate, file size), then read back in random order from the page cache
    and cold (the file's pages dropped with posix_fadvise), in notes/s; the size
    of the whole selection materialised, extrapolated.
Prints a table and writes gm_notes.json under the workdir. The measurements
and the decision they led to (render on demand) are in docs/data/gm_notes.md.

  python -m benchmarks.gm_notes --workdir DIR [--config benchmarks/configs/gm_notes.py]
      [--config.num=2000] [--config.materialise=2000] [--config.workers=2] [--config.batch=32]
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from shuffle_learn.data import gm_index
from shuffle_learn.data import gm_notes
from shuffle_learn.data import soundfonts as soundfonts_lib


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


def main(config, workdir: str) -> dict:
  """Runs the benchmark of ``config`` (`benchmarks/configs/gm_notes.py`); writes and returns its report."""
  out = Path(workdir)
  out.mkdir(parents=True, exist_ok=True)
  soundfonts = config.soundfonts or soundfonts_lib.default_soundfonts()

  with tempfile.TemporaryDirectory(dir=config.tmp_dir or None) as tmp:
    cache_dir = os.path.join(tmp, "cache") if config.cold_index else True
    start = time.perf_counter()
    source = gm_notes.GMNotesSource("train", soundfonts=soundfonts, cache_dir=cache_dir)
    build_s = time.perf_counter() - start
    gm_index._SCANS.clear()  # pylint: disable=protected-access
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
        "on_demand": on_demand(source, indices[: config.num]),
    }
    report["loader"] = [
        through_loader(source, indices[: config.num], batch=config.batch, threads=threads, workers=workers)
        for workers, threads in ((0, 1), (0, 4), (config.workers, 1))
        if workers >= 0
    ]
    if config.materialise:
      report["materialised"] = materialised(source, indices[: config.materialise], tmp)
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
  return report


if __name__ == "__main__":
  from shuffle_learn import cli  # pylint: disable=g-import-not-at-top
  cli.run(main, config="benchmarks/configs/gm_notes.py", workdir_help="Output folder (JSON).")
