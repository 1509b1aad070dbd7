"""Sphinx configuration of the optax_prox documentation.

Builds offline: no intersphinx inventories are fetched, and math is rendered
by MathJax in the reader's browser. ``make docs`` runs ``sphinx-build -W``, so
every warning (a broken reference, an undocumented public name) fails it.
"""

import importlib.util
import pathlib
import sys

DOCS = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))  # optax_prox, also without installing
sys.path.insert(0, str(DOCS / "ext"))

import optax  # noqa: E402
from sphinx.application import Sphinx  # noqa: E402
from sphinx.util import typing as sphinx_typing  # noqa: E402

import optax_prox  # noqa: E402  (needs the path above)

project = "optax_prox"
author = "the optax_prox authors"
copyright = "the optax_prox authors"  # noqa: A001  (a Sphinx setting)
release = optax_prox.__version__
version = release

extensions = [
  "myst_parser",
  "sphinx.ext.autodoc",
  "sphinx.ext.napoleon",
  "sphinx.ext.mathjax",
  "coverage_check",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# optax, jax and numpy types appear in signatures; without intersphinx (no
# network at build time) they cannot be linked, which is not an error here.
nitpicky = False

html_theme = "sphinx_book_theme"
html_title = f"optax_prox {release}"
# MathJax ships with the pages (one file, SVG output: no fonts to fetch), so
# the math renders offline too; the sphinx-mathjax-offline package carries it.
_mathjax_package = importlib.util.find_spec("sphinx-mathjax-offline")
assert _mathjax_package is not None and _mathjax_package.origin is not None
MATHJAX = pathlib.Path(_mathjax_package.origin).parent / "static" / "mathjax"
html_static_path = [str(MATHJAX / "tex-svg.js")]
mathjax_path = "tex-svg.js"
html_theme_options = {
  "show_toc_level": 2,
  "use_download_button": False,
}

# Signatures print optax's type aliases by their names, not expanded into
# unions of a dozen array types.
TYPE_ALIASES = {
  "optax.ScalarOrSchedule": optax.ScalarOrSchedule,
  "PyTree": optax.Params,  # also optax.Updates and optax.OptState
}


def shorten_type_aliases(
  app: Sphinx,
  what: str,
  name: str,
  obj: object,
  options: object,
  signature: str | None,
  return_annotation: str | None,
) -> tuple[str | None, str | None]:
  """Replaces the expanded type aliases in a signature by their names."""
  del app, what, name, obj, options
  for alias, value in TYPE_ALIASES.items():
    expanded = sphinx_typing.stringify_annotation(value, "smart")
    if signature:
      signature = signature.replace(expanded, alias)
    if return_annotation:
      return_annotation = return_annotation.replace(expanded, alias)
  return signature, return_annotation


def setup(app: Sphinx) -> None:
  """Connects the signature hook."""
  app.connect("autodoc-process-signature", shorten_type_aliases)
