"""The wheel a user installs: it builds cleanly, carries what it must, imports.

The sources a release needs are copied to a scratch folder and built as
``python -m build`` builds them (an sdist, then the wheel from the sdist),
without build isolation: the build requirements come from the test extra, so
nothing is downloaded. The wheel is then installed, without dependencies, into
a fresh venv that sees this environment's packages (jax, optax) only behind
its own site-packages, and imported there.
"""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

import optax_prox

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCES = ["pyproject.toml", "README.md", "LICENSE", "optax_prox"]
RUNTIME_DEPENDENCIES = {"jax", "optax"}


def run(*command: str | pathlib.Path, cwd: pathlib.Path) -> str:
  """Runs a command; returns its output, or fails the test with it."""
  env = dict(os.environ)
  env.pop("PYTHONDONTWRITEBYTECODE", None)  # else setuptools warns about it
  result = subprocess.run(
    [str(c) for c in command],
    cwd=cwd,
    env=env,
    capture_output=True,
    text=True,
    check=False,
  )
  output = result.stdout + result.stderr
  if result.returncode:
    pytest.fail(f"{' '.join(map(str, command))} failed:\n{output}")
  return output


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
  scratch = tmp_path_factory.mktemp("packaging")
  source = scratch / "source"
  source.mkdir()
  for name in SOURCES:
    path = ROOT / name
    if path.is_dir():
      shutil.copytree(
        path, source / name, ignore=shutil.ignore_patterns("__pycache__")
      )
    else:
      shutil.copy(path, source / name)
  build = [sys.executable, "-m", "build", "--no-isolation", "--outdir"]
  output = run(*build, scratch / "dist", source, cwd=scratch)
  warnings = [line for line in output.splitlines() if "warn" in line.lower()]
  assert not warnings, "the build warns:\n" + "\n".join(warnings)
  (built,) = (scratch / "dist").glob("*.whl")
  return built


def test_wheel_carries_the_license_and_type_marker(wheel: pathlib.Path):
  with zipfile.ZipFile(wheel) as archive:
    names = archive.namelist()
    metadata = archive.read(next(n for n in names if n.endswith("/METADATA")))
  assert "optax_prox/py.typed" in names
  assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
  assert not [n for n in names if n.startswith(("tests/", "examples/"))]
  text = metadata.decode()
  assert "License-Expression: Apache-2.0" in text
  assert f"Version: {optax_prox.__version__}\n" in text
  assert wheel.name.startswith(f"optax_prox-{optax_prox.__version__}-")
  required = [
    re.split(r"[\s;<>=!~\[]", line.removeprefix("Requires-Dist: "))[0]
    for line in text.splitlines()
    if line.startswith("Requires-Dist:") and "extra ==" not in line
  ]
  assert set(required) == RUNTIME_DEPENDENCIES, required


def test_wheel_installs_into_a_fresh_venv_and_imports(
  wheel: pathlib.Path, tmp_path: pathlib.Path
):
  venv = tmp_path / "venv"
  run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
  python = venv / "bin" / "python"
  pip = [sys.executable, "-m", "pip", "--python", python, "install"]
  run(*pip, "--quiet", "--no-deps", "--no-index", wheel, cwd=tmp_path)
  where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
  site_packages = run(python, "-c", where, cwd=tmp_path).strip()
  # jax and optax from this environment, after the venv's own packages; an
  # appended path's .pth files are not read, so the editable install of the
  # work tree stays out of sight.
  outer = [p for p in sys.path if p.endswith("site-packages")]
  pathlib.Path(site_packages, "outer.pth").write_text("\n".join(outer) + "\n")
  script = (
    "import jax.numpy as jnp, optax_prox\n"
    "tx, w = optax_prox.trsgd(0.1), jnp.zeros(2)\n"
    "updates, _ = tx.update(jnp.ones(2), tx.init(w), w)\n"
    "print(optax_prox.__file__, updates.tolist())\n"
  )
  location, updates = run(python, "-c", script, cwd=tmp_path).split(" ", 1)
  assert location.startswith(site_packages), location
  # The first step of TRSGD: the full learning rate against the gradient.
  assert json.loads(updates) == pytest.approx([-0.1, -0.1], rel=1e-6)
