"""The study's record on disk: ``study.json`` to and from its dataclasses.

:func:`save` writes the header and every result as JSON;
:func:`load` reads them back into the same dataclasses, so that the report
(and the test that checks the pages against the data) can be rebuilt from
the file alone, without training.
"""

import dataclasses
import json

from examples.study_lib import design as design_lib
from examples.study_lib import protocol
from examples.study_lib import report
from examples.study_lib import stats


def save(path: str, header: report.Header, results: design_lib.Results) -> None:
  with open(path, "w") as f:
    json.dump(
      {"header": dataclasses.asdict(header), **dataclasses.asdict(results)}, f
    )


def tuple_fields(record: dict, *names: str) -> dict:
  """``record`` with the ``names`` fields as tuples (JSON has only lists)."""
  return {
    k: tuple(tuple(x) if isinstance(x, list) else x for x in v)
    if k in names
    else v
    for k, v in record.items()
  }


def set_result(saved: dict) -> protocol.SetResult:
  return protocol.SetResult(
    **tuple_fields(
      saved, "seeds", "val_mean", "test_mean", "test", "test_at_best_val"
    ),
  )


def tuning(saved: dict) -> protocol.Tuning:
  sets = {n: set_result(s) for n, s in saved["sets"].items()}
  return protocol.Tuning(**{**tuple_fields(saved, "rates"), "sets": sets})


def verdict(saved: dict) -> protocol.Verdict:
  sets = {n: stats.Comparison(**c) for n, c in saved["sets"].items()}
  pooled = stats.Comparison(**saved["pooled"])
  return protocol.Verdict(**{**saved, "sets": sets, "pooled": pooled})


def range_stats(saved: dict) -> stats.RangeStats:
  intervals = ("width_interval", "width_gap_interval", "shift_interval")
  return stats.RangeStats(
    **{k: tuple(v) if k in intervals else v for k, v in saved.items()}
  )


def range_comparison(saved: dict) -> protocol.RangeComparison:
  sets = {
    n: (range_stats(pair[0]), range_stats(pair[1]))
    for n, pair in saved["sets"].items()
  }
  edges = tuple(tuple(e) for e in saved["open_edges"])
  return protocol.RangeComparison(
    **{**saved, "sets": sets, "open_edges": edges}
  )


def sensitivity_map(saved: dict) -> protocol.SensitivityMap:
  return protocol.SensitivityMap(
    **tuple_fields(saved, "periods", "ratios", "mean", "std")
  )


READERS = {
  "tunings": tuning,
  "paper": tuning,
  "ablation": tuning,
  "verdicts": verdict,
  "paper_verdicts": verdict,
  "ablation_verdicts": verdict,
  "norm_verdicts": verdict,
  "ranges": range_comparison,
  "sensitivity": sensitivity_map,
}


def load(path: str) -> tuple[report.Header, design_lib.Results]:
  """The header and the results that :func:`save` wrote to ``path``."""
  with open(path) as f:
    saved = json.load(f)
  head = dict(saved.pop("header"))
  head["epochs"] = {
    task: {int(b): e for b, e in by_batch.items()}
    for task, by_batch in head["epochs"].items()
  }
  results = design_lib.Results(
    **{name: [READERS[name](r) for r in saved[name]] for name in READERS}
  )
  return report.Header(**head), results
