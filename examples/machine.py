"""The machine and the software a measurement ran on, as table rows.

The examples' study and the benchmark's report (``benchmarks/run.py``,
which imports it from here) both open with :func:`describe`, so their
figures name the same things.
"""

import collections
import datetime
import os
import pathlib
import platform
import re

import flax
import jax
import optax

import optax_prox


def _cpu() -> str:
  cpuinfo = pathlib.Path("/proc/cpuinfo")
  text = cpuinfo.read_text() if cpuinfo.exists() else ""
  names = re.findall(r"model name\s*: (.*)", text) or [platform.machine()]
  gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
  return f"{names[0]}, {os.cpu_count()} cores, {gib:.0f} GiB"


def _devices() -> str:
  """JAX's devices by kind, e.g. ``1 x NVIDIA H200 (gpu)`` or ``1 x cpu``."""
  kinds = collections.Counter(
    (device.device_kind, device.platform) for device in jax.devices()
  )
  return ", ".join(
    f"{count} x {kind}" + ("" if kind == backend else f" ({backend})")
    for (kind, backend), count in kinds.items()
  )


def describe() -> list[tuple[str, str]]:
  """(property, value) rows: the date, the CPU, the devices, the versions."""
  now = datetime.datetime.now(datetime.timezone.utc)
  versions = [platform.python_version(), jax.__version__, optax.__version__]
  versions += [flax.__version__, optax_prox.__version__]
  return [
    ("date (UTC)", now.strftime("%Y-%m-%d %H:%M")),
    ("CPU", _cpu()),
    ("JAX devices", _devices()),
    ("python / jax / optax / flax / optax_prox", " / ".join(versions)),
  ]
