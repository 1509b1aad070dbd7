"""Sphinx configuration of the optax_prox documentation.

Builds offline: no intersphinx inventories are fetched, and math is rendered
by MathJax in the reader's browser. ``make docs`` runs ``sphinx-build -W``, so
every warning (a broken reference, an undocumented public name) fails it.
"""

import pathlib
import sys

DOCS = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))  # optax_prox, also without installing
sys.path.insert(0, str(DOCS / "ext"))

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
html_static_path: list[str] = []
html_theme_options = {
  "show_toc_level": 2,
  "use_download_button": False,
}
