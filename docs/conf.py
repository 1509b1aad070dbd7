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

import jax  # noqa: E402
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
  "sphinx_copybutton",
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
html_static_path = ["_static", str(MATHJAX / "tex-svg.js")]
html_css_files = ["custom.css"]  # wide tables scroll instead of being clipped
mathjax_path = "tex-svg.js"
html_theme_options = {
  "show_toc_level": 2,
  "use_download_button": False,
}

# The copy button copies the code without its prompts and doctest output:
# ">>> " and "... " for Python, "$ " for a shell.
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True
copybutton_only_copy_prompt_lines = True

# Signatures print the type aliases of optax and jax by their names, not
# expanded into unions of a dozen array types. The longest expansions are
# replaced first: optax.ScalarOrSchedule's contains optax.Schedule's.
TYPE_ALIASES = {
  "optax.ScalarOrSchedule": optax.ScalarOrSchedule,
  "optax.Schedule": optax.Schedule,
  "PyTree": optax.Params,  # also optax.Updates and optax.OptState
  "DTypeLike": jax.typing.DTypeLike,
}
EXPANSIONS = sorted(
  (
    (sphinx_typing.stringify_annotation(value, "smart"), alias)
    for alias, value in TYPE_ALIASES.items()
  ),
  key=lambda expansion: len(expansion[0]),
  reverse=True,
)


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
  if signature:  # Sphinx prints Callable[..., T] as Callable[[...], T]
    signature = signature.replace("[[...], ", "[..., ")
  for expanded, alias in EXPANSIONS:
    if signature:
      signature = signature.replace(expanded, alias)
    if return_annotation:
      return_annotation = return_annotation.replace(expanded, alias)
  return signature, return_annotation


def setup(app: Sphinx) -> None:
  """Connects the signature hook."""
  app.connect("autodoc-process-signature", shorten_type_aliases)
