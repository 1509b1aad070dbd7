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
  "sphinx_copybutton",
  "coverage_check",
  "readable_types",
  "table_breaks",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "signature"  # as the source writes them: readable_types
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_attr_annotations = False  # readable_types gives attributes types

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
html_static_path = ["_static", str(MATHJAX / "tex-svg.js")]
html_css_files = ["custom.css"]  # wide tables that fit, output apart
mathjax_path = "tex-svg.js"
html_theme_options = {
  "show_toc_level": 2,
  "use_download_button": False,
  # One search box, the sidebar's: the theme would add a second in a header.
  "navbar_persistent": [],
}

# The code blocks have no prompts, so the copy button copies them as they
# are. It leaves out ``text`` blocks: a block's printed output, and the
# ``>>>`` transcripts of lines that raise on purpose (tests/test_docs.py).
copybutton_selector = "div:not(.highlight-text) > div.highlight pre"
