"""What machine the figures come from, and its measured copy bandwidth."""

import datetime
import os
import platform

import flax
import jax
import jax.numpy as jnp
import optax

import optax_prox
from benchmarks import _timing


def cpu_model() -> str:
  """The CPU's model name from ``/proc/cpuinfo`` (or the platform's)."""
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
      for line in cpuinfo:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


def memory_gib() -> float:
  """Physical memory in GiB."""
  return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def load_average() -> str:
  """The 1, 5 and 15 minute load averages, as ``uptime`` prints them."""
  return ", ".join(f"{load:.2f}" for load in os.getloadavg())


def describe() -> list[tuple[str, str]]:
  """Rows of (property, value) describing the machine and the software."""
  return [
      ("date (UTC)", datetime.datetime.now(datetime.timezone.utc)
       .strftime("%Y-%m-%d %H:%M")),
      ("CPU", f"{cpu_model()}, {os.cpu_count()} cores"),
      ("memory", f"{memory_gib():.0f} GiB"),
      ("device", str(jax.devices()[0])),
      ("python", platform.python_version()),
      ("jax / optax / flax",
       f"{jax.__version__} / {optax.__version__} / {flax.__version__}"),
      ("optax_prox", optax_prox.__version__),
  ]


def copy_bandwidth(num_floats: int, *, repeats: int) -> float:
  """Measures the copy bandwidth in bytes per second.

  A jitted, donated ``x + 1`` over ``num_floats`` float32 values reads and
  writes every element once: the cheapest memory-bound kernel, so the best
  an optimizer update (another such kernel) can hope for.
  """
  add_one = jax.jit(lambda x: x + 1, donate_argnums=0)
  buffer = [jnp.zeros([num_floats], jnp.float32)]
  steps = 10

  def run() -> None:
    for _ in range(steps):
      buffer[0] = add_one(buffer[0])
    buffer[0].block_until_ready()

  seconds = _timing.median_seconds_per_step(
      {"copy": run}, steps_per_call=steps, repeats=repeats)["copy"]
  return 2 * 4 * num_floats / seconds
