"""The machine a benchmark ran on, recorded beside its numbers."""

import os
import platform

import jax


def machine_info() -> dict:
  device = jax.devices()[0]
  return {
      "device": f"{device.platform}: {device.device_kind}",
      "cpu_count": os.cpu_count(),
      "machine": platform.processor() or platform.machine(),
      "jax": jax.__version__,
  }
