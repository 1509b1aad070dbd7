"""What machine the figures come from, and its measured copy bandwidth."""

import datetime
import os
import platform

import flax
import jax
import jax.numpy as jnp
import optax

import optax_prox
from benchmarks import _stepping
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
  steps = 10
  loop = _stepping.DonatedLoop(
      lambda x: (x + 1,), (jnp.zeros([num_floats], jnp.float32),), (),
      steps_per_call=steps)
  seconds = _timing.median_seconds_per_step(
      {"copy": loop}, steps_per_call=steps, repeats=repeats)["copy"]
  return 2 * 4 * num_floats / seconds


def dispatch_seconds_per_array(num_arrays: int, *, repeats: int) -> float:
  """The host's cost per donated array in a call of a jitted function.

  Times a jitted ``(x, extras) -> (x + 1, extras)`` with everything donated,
  with ``num_arrays`` small extra arrays and with none, interleaved; the
  difference per extra array is what each param-shaped leaf of an
  optimizer's state adds to every step that is its own call, whatever its
  size.
  """
  calls = 100
  loops = {
      count: _stepping.DonatedLoop(
          lambda x, extras: (x + 1, extras),
          (jnp.zeros([1024], jnp.float32),
           [jnp.zeros([1024], jnp.float32) for _ in range(count)]),
          (), steps_per_call=calls)
      for count in (0, num_arrays)
  }
  seconds = _timing.median_seconds_per_step(
      loops, steps_per_call=calls, repeats=repeats)
  return (seconds[num_arrays] - seconds[0]) / num_arrays
