"""Fails the docs build when a public name of optax_prox is undocumented.

Every name in ``optax_prox.__all__`` must be documented by an autodoc
directive (in ``docs/api.rst``). The check reads what Sphinx actually
documented, once all pages are read, and warns for each missing name;
``make docs`` runs ``sphinx-build -W``, so a warning fails the build.
"""

from typing import Any

from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging

import optax_prox

logger = logging.getLogger(__name__)


def undocumented(documented: set[str]) -> list[str]:
  """Returns the public names missing from ``documented`` (full names)."""
  public = {f"optax_prox.{name}" for name in optax_prox.__all__}
  return sorted(public - documented)


def check_coverage(app: Sphinx, env: BuildEnvironment) -> None:
  """Warns for each name of ``__all__`` that ``env`` does not document."""
  del app
  for name in undocumented(set(env.get_domain("py").objects)):
    logger.warning(
      "%s is public but undocumented: add an autodoc directive for it to"
      " docs/api.rst",
      name,
      location="api",
    )


def setup(app: Sphinx) -> dict[str, Any]:
  """Registers the check with Sphinx."""
  app.connect("env-check-consistency", check_coverage)
  return {"parallel_read_safe": True, "parallel_write_safe": True}
