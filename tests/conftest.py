"""Eight simulated CPU devices and strict numerics for every test.

XLA fixes the number of CPU devices when jax starts its backend, so the flag
is set here, before any test module imports jax; pytest loads this file
first in the main process and in every pytest-xdist worker. One-device code
runs on the first device as before; ``tests/test_sharding.py`` and
``tests/test_common.py`` lay arrays out over all eight.

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
import tempfile

DEVICE_COUNT = 8
_DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"

_flags = os.environ.get("XLA_FLAGS", "")
if _DEVICE_COUNT_FLAG not in _flags:
  os.environ["XLA_FLAGS"] = (
    f"{_flags} {_DEVICE_COUNT_FLAG}={DEVICE_COUNT}".strip()
  )

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
import pytest  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
  config.addinivalue_line(
    "markers",
    "optax_not_strict: runs optax code that strict dtype promotion rejects",
  )
  config.addinivalue_line(
    "markers", "runs_long: takes half a minute or more; scheduled first"
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
