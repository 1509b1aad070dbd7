"""Lets long names in table cells wrap where a reader would break them.

A name such as ``trajectory_regularized(lion)`` or ``optax.sgd(momentum)``
has no space, so a browser cannot wrap it, and a table of them is wider
than the page. In the HTML pages this inserts a ``<wbr>`` (a place to break
the line, which adds no character and copies as nothing) after each ``_``
or ``.`` followed by a letter and before each ``(`` that follows a letter,
in the plain text of table cells (math and code keep theirs), so such a
table wraps to the page's width (``docs/_static/custom.css`` makes wide
tables small enough to need it only for their long names). Numbers such as
``1.0M`` keep their point.
"""

import re
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform

BREAK = re.compile(r"(?<=[_.])(?=[A-Za-z])|(?<=[A-Za-z])(?=\()")
PROSE = (nodes.paragraph, nodes.emphasis, nodes.strong, nodes.reference)


class BreakLongNames(SphinxPostTransform):
  """Adds ``<wbr>`` break opportunities to the text of table cells."""

  default_priority = 900
  formats = ("html",)

  def run(self, **kwargs: Any) -> None:
    """Splits each text of a table cell at its break opportunities."""
    del kwargs
    for entry in self.document.findall(nodes.entry):
      for text in list(entry.findall(nodes.Text)):
        if not isinstance(text.parent, PROSE):
          continue  # math, code and raw HTML keep their text
        pieces = BREAK.split(str(text))
        if len(pieces) == 1:
          continue
        replacement: list[nodes.Node] = [nodes.Text(pieces[0])]
        for piece in pieces[1:]:
          replacement.append(nodes.raw("", "<wbr>", format="html"))
          replacement.append(nodes.Text(piece))
        text.parent.replace(text, replacement)


def setup(app: Sphinx) -> dict[str, Any]:
  """Registers the transform."""
  app.add_post_transform(BreakLongNames)
  return {"parallel_read_safe": True, "parallel_write_safe": True}
