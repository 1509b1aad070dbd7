"""What a run writes: a markdown page, its JSON record, its figure.

Both stories open their page with :func:`header`: the command that
produced it, how long it took, and the machine and versions it ran on
(:func:`examples.machine.describe`, which the study's report also uses).
Their tables share :func:`cell` and :func:`verdict_table`.
"""

from collections.abc import Mapping, Sequence
import dataclasses
import json
import os
from typing import Any

import numpy as np

from examples import machine
from examples.study_lib import report as study_report


def header(
  command: str, seconds: float, settings: Sequence[tuple[str, str]]
) -> str:
  """A markdown table: the command, its wall time, settings, the machine.

  Args:
    command: the command line that produced the results.
    seconds: its wall time.
    settings: more ``(property, value)`` rows.

  Returns:
    The table.
  """
  rows = [("command", f"`{command}`"), ("wall time", f"{seconds:.0f} s")]
  rows += [*settings, *machine.describe()]
  return study_report.table(["", ""], [list(row) for row in rows])


def jsonable(value: Any) -> Any:
  """``value`` with dataclasses and tuples turned into dicts and lists.

  Args:
    value: what to write as JSON.

  Returns:
    Dicts (with string keys), lists and the leaves of ``value``.
  """
  if dataclasses.is_dataclass(value) and not isinstance(value, type):
    return {
      f.name: jsonable(getattr(value, f.name))
      for f in dataclasses.fields(value)
    }
  if isinstance(value, dict):
    return {str(k): jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [jsonable(v) for v in value]
  return value


def write(out: str, stem: str, text: str, record: Any) -> dict[str, str]:
  """Writes ``OUT/STEM.md`` and ``OUT/STEM.json``.

  Args:
    out: the directory, created if missing.
    stem: the file name without extension.
    text: the markdown page.
    record: what the JSON file holds (dataclasses are converted).

  Returns:
    ``{"md": path, "json": path, "png": path}``, the last one for the
    caller's figure.
  """
  os.makedirs(out, exist_ok=True)
  paths = {
    ext: os.path.join(out, f"{stem}.{ext}") for ext in ("md", "json", "png")
  }
  with open(paths["md"], "w") as f:
    f.write(text.rstrip("\n") + "\n")
  with open(paths["json"], "w") as f:
    json.dump(jsonable(record), f, indent=1)
  return paths


def cell(values_by_set: Mapping[str, Sequence[float]], digits: int = 1) -> str:
  """A table cell: each seed set's ``mean ± std``, joined by `` / ``.

  Args:
    values_by_set: seed set -> one value per seed.
    digits: the digits after the decimal point.

  Returns:
    For instance ``"71.6 ± 1.9 / 72.9 ± 2.2"``.
  """
  return " / ".join(
    f"{np.mean(v):.{digits}f} ± {np.std(v):.{digits}f}"
    for v in values_by_set.values()
  )


def verdict_table(
  head: Sequence[str], rows: Sequence[tuple[Sequence[str], Any]]
) -> str:
  """A markdown table of verdicts: cells, each set's interval, the word.

  Args:
    head: the titles of the leading cells.
    rows: ``(leading cells, verdicts.Verdict)`` per row.

  Returns:
    The table; each seed set's column reads ``mean [low, high]``.
  """
  names = list(rows[0][1].sets) if rows else []
  body = [
    [*cells, *(study_report.interval(d) for d in v.sets.values()), v.word]
    for cells, v in rows
  ]
  return study_report.table(
    [*head, *(f"set {n}" for n in names), "verdict"], body
  )
