"""Two processes train as one process does: the same global batches, losses, parameters and checkpoints.

Each process is started as a user starts one on a cluster (`TRAIN` with the
environment of `process_env`): ``jax.distributed`` on a localhost coordinator,
4 CPU devices each, collectives through gloo.
"""

import os
import socket
import subprocess
import sys
import time

import jax
import numpy as np

from shuffle_learn import checkpoints
from shuffle_learn import metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = [sys.executable, "-m", "shuffle_learn.train", "--config", "experiments/configs/tiny.py",
         "--config.train.log_every=1", "--config.train.eval_every=3", "--config.train.checkpoint_every=3"]


def cpu_env(devices: int, **variables: str) -> dict[str, str]:
  return dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
              **variables)


def process_env(index: int, count: int, port: int) -> dict[str, str]:
  """Process ``index`` of ``count`` on this machine, 4 CPU devices, the coordinator on ``port``."""
  return cpu_env(4, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES=str(count),
                 JAX_PROCESS_ID=str(index), JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo")


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def start(workdir: str, steps: int, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
  """Trains in ``workdir`` to ``steps``; the process and its log file (next to the workdir)."""
  log = f"{workdir}.{env.get('JAX_PROCESS_ID', 'one')}.log"
  with open(log, "a") as f:
    process = subprocess.Popen(TRAIN + ["--workdir", workdir, f"--config.train.num_steps={steps}"], cwd=ROOT,
                               env=env, stdout=f, stderr=subprocess.STDOUT)
  return process, log


def finish(*started: tuple[subprocess.Popen, str]) -> None:
  """Waits for every process; the first to fail (or 300 s) ends them all, and the test shows its log."""
  deadline = time.time() + 300
  try:
    while time.time() < deadline and any(p.poll() is None for p, _ in started) and not any(
        p.poll() for p, _ in started):
      time.sleep(0.1)
    failed = [log for p, log in started if p.poll() != 0]
  finally:
    for process, _ in started:
      process.kill()
      process.wait()
  if failed:
    with open(failed[0]) as f:
      raise AssertionError(f"{failed[0]}:\n{f.read()[-3000:]}")


def test_two_processes_take_the_steps_of_one_and_their_checkpoint_restores_in_one(tmp_path):
  """2 processes x 4 devices train 3 steps; one process x 8 devices resumes them to 6 and trains 6 from scratch."""
  one, pair = str(tmp_path / "one"), str(tmp_path / "pair")
  port = free_port()
  reference = start(one, 6, cpu_env(8))
  finish(*[start(pair, 3, process_env(i, 2, port)) for i in range(2)], reference)
  finish(start(pair, 6, cpu_env(8)))  # The pair's checkpoint (state and data position) restored in one process.
  assert not os.path.exists(os.path.join(pair, checkpoints.DAMAGED_DIR))  # Restored, not set aside.
  resumed, uninterrupted = metrics.read_metrics(pair), metrics.read_metrics(one)
  for name in ("train/loss", "valid/loss", "valid/partial_ranks_accuracy"):
    steps, values = zip(*resumed[name])
    assert steps == tuple(s for s, _ in uninterrupted[name]) == ((1, 2, 3, 4, 5, 6) if name == "train/loss" else (3, 6))
    # As on 8 devices of one process, only the order of floating-point sums differs.
    np.testing.assert_allclose(values, [v for _, v in uninterrupted[name]], rtol=1e-5, err_msg=name)
  for step in (3, 6):
    params = checkpoints.load_checkpoint(pair, step)[1]
    expected = checkpoints.load_checkpoint(one, step)[1]
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), params, expected)
