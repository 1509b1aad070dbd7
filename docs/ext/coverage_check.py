"""Fails the docs build when a public name of optax_prox is undocumented.

Every name in ``optax_prox.__all__`` must be documented by an autodoc
directive (in ``docs/api.rst``); the check reads what Sphinx actually
documented, after all pages are read.
"""

from typing import Any

from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.errors import ExtensionError

import optax_prox


def undocumented(documented: set[str]) -> list[str]:
  """Returns the public names missing from ``documented`` (full names)."""
  public = {f"optax_prox.{name}" for name in optax_prox.__all__}
  return sorted(public - documented)


def check_coverage(app: Sphinx, env: BuildEnvironment) -> None:
  """Raises when ``env`` documents fewer names than ``__all__`` has."""
  del app
  missing = undocumented(set(env.get_domain("py").objects))
  if missing:
    raise ExtensionError(
      f"the docs do not document {', '.join(missing)}: add an autodoc"
      " directive for each to docs/api.rst."
    )


def setup(app: Sphinx) -> dict[str, Any]:
  """Registers the check with Sphinx."""
  app.connect("env-check-consistency", check_coverage)
  return {"parallel_read_safe": True, "parallel_write_safe": True}
