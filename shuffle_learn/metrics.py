"""Training metrics: scalars to ``metrics.csv`` and TensorBoard, and reading them back.

``workdir/metrics.csv`` has one row per (step, name, value); TensorBoard event
files go to ``workdir/tensorboard``. Only process 0 writes.
"""

from __future__ import annotations

import csv
import os
from typing import Mapping

import jax

METRICS_FILE = "metrics.csv"


class MetricWriter:
  """Scalars to ``metrics.csv`` (step, name, value) and TensorBoard, on process 0.

  On resume from step ``s``, rows after ``s`` (written after the checkpoint
  being resumed) are dropped from the CSV and purged from TensorBoard, so
  that each step appears once.
  """

  def __init__(self, workdir: str, start_step: int):
    self._enabled = jax.process_index() == 0
    if not self._enabled:
      return
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    path = os.path.join(workdir, METRICS_FILE)
    rows = []
    if os.path.exists(path):
      with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["step"]) <= start_step]
    self._file = open(path, "w", newline="")
    self._csv = csv.DictWriter(self._file, fieldnames=("step", "name", "value"))
    self._csv.writeheader()
    self._csv.writerows(rows)
    self._file.flush()
    self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"), purge_step=start_step + 1 if start_step else None)

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    if not self._enabled:
      return
    for name, value in scalars.items():
      self._csv.writerow({"step": step, "name": name, "value": repr(float(value))})
      self._tb.add_scalar(name, float(value), step)
    self._file.flush()

  def close(self) -> None:
    if self._enabled:
      self._file.close()
      self._tb.close()


def read_metrics(workdir: str) -> dict[str, list[tuple[int, float]]]:
  """``metrics.csv`` as ``{name: [(step, value), ...]}``."""
  metrics: dict[str, list[tuple[int, float]]] = {}
  with open(os.path.join(workdir, METRICS_FILE), newline="") as f:
    for row in csv.DictReader(f):
      metrics.setdefault(row["name"], []).append((int(row["step"]), float(row["value"])))
  return metrics
