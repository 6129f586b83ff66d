"""Data parallelism: the device mesh, shardings, global batches and multi-host start-up.

One mesh axis, ``"data"``, over all devices of all hosts: batches are split
along it, parameters and optimizer state are replicated, and XLA inserts the
gradient all-reduce (``jax.jit`` with `NamedSharding`; no ``pmap``).
"""

from __future__ import annotations

import os
from typing import Mapping

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P


def make_mesh() -> jax.sharding.Mesh:
  """All devices (of all processes) on one ``data`` axis, process after process.

  Process i's devices hold the i-th of `jax.process_count()` equal blocks of
  every batch: the rows `shuffle_learn.data.loader.note_batches` gives it.
  """
  mesh = jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  if jax.process_count() == 1:
    return mesh
  # jax.make_mesh may order devices for the interconnect (TPU rings); keep that order within each process.
  devices = sorted(mesh.devices.flat, key=lambda device: device.process_index)
  return jax.sharding.Mesh(np.array(devices), mesh.axis_names, axis_types=mesh.axis_types)


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P("data"))


def device_batch(input_, mesh: jax.sharding.Mesh, host_batch: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
  """This process's rows of a batch -> the global batch of the input's raw field, sharded over the mesh.

  Args:
    input_: a pretext input (`shuffle_learn.pretext.INPUTS`): which field to
      take and how (`input_.host`).
    mesh: the device mesh (`make_mesh`).
    host_batch: this process's block of the global batch (`jax.process_index()`
      -th of `jax.process_count()` equal blocks of rows).
  """
  raw = input_.host(host_batch)
  return {input_.raw_key: jax.make_array_from_process_local_data(batch_sharding(mesh), raw)}


def maybe_initialize_distributed() -> None:
  """`jax.distributed.initialize` when ``JAX_COORDINATOR_ADDRESS`` is set (once).

  ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` are passed on when set; on a
  cluster JAX detects, they may be left out.
  """
  if not os.environ.get("JAX_COORDINATOR_ADDRESS") or jax.distributed.is_initialized():
    return
  kwargs = {}
  if "JAX_NUM_PROCESSES" in os.environ:
    kwargs["num_processes"] = int(os.environ["JAX_NUM_PROCESSES"])
  if "JAX_PROCESS_ID" in os.environ:
    kwargs["process_id"] = int(os.environ["JAX_PROCESS_ID"])
  jax.distributed.initialize(**kwargs)
