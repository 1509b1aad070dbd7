"""Markdown tables of the measurements."""

from typing import Sequence

from benchmarks import _optimizers
from benchmarks import _timing
from benchmarks import _training_step
from benchmarks import _update_step

MB = 1e6
# (candidate, baseline, ceiling on the ratio) from the issue.
UPDATE_TARGETS = (
    (_optimizers.TRSGD.name, 1.25),
    (_optimizers.TRADAM.name, 1.18),
)
TRAINING_TARGET = 1.03


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
  """A markdown table; columns after the first are right-aligned."""
  lines = [
      "| " + " | ".join(headers) + " |",
      "|" + "|".join([":---"] + ["---:"] * (len(headers) - 1)) + "|",
  ]
  lines += ["| " + " | ".join(row) + " |" for row in rows]
  return "\n".join(lines)


def millions(count: int) -> str:
  return f"{count / 1e6:.1f}M" if count >= 1e5 else f"{count / 1e3:.0f}k"


def machine_table(rows: Sequence[tuple[str, str]]) -> str:
  return table(["machine", ""], [list(row) for row in rows])


def _ratio(ratio: _timing.Ratio | None, is_baseline: bool) -> str:
  return "-" if is_baseline or ratio is None else str(ratio)


def _milliseconds(seconds: float | None) -> str:
  return "-" if seconds is None else f"{1e3 * seconds:.2f}"


def update_table(
    rows: Sequence[_update_step.UpdateRow], copy_bandwidth: float
) -> str:
  """Time per update, the ratio to the bare optimizer and bandwidth used."""
  return table(
      ["params", "optimizer", "arrays", "ms / step, 1 call each",
       "vs bare (quartiles)", "ms / step, scanned", "vs bare (quartiles)",
       "ideal", "XLA streams", "GB/s",
       "% of copy"],
      [[millions(row.num_params), row.optimizer, str(row.num_arrays),
        _milliseconds(row.seconds),
        _ratio(row.ratio, row.optimizer == row.baseline),
        _milliseconds(row.scanned_seconds),
        _ratio(row.scanned_ratio, row.optimizer == row.baseline),
        "-" if row.optimizer == row.baseline else f"{row.ideal_ratio:.2f}x",
        f"{row.hlo_streams:.1f}",
        f"{row.bytes_per_second / 1e9:.1f}",
        f"{100 * row.bytes_per_second / copy_bandwidth:.0f}%"]
       for row in rows])


def training_table(rows: Sequence[_training_step.TrainingRow]) -> str:
  """Time per training step and the ratio to the bare optimizer."""
  return table(
      ["model", "params", "optimizer", "ms / step, 1 call each",
       "vs bare (quartiles)", "ms / step, scanned", "vs bare (quartiles)"],
      [[row.model, millions(row.num_params), row.optimizer,
        _milliseconds(row.seconds),
        _ratio(row.ratio, row.optimizer == row.baseline),
        _milliseconds(row.scanned_seconds),
        _ratio(row.scanned_ratio, row.optimizer == row.baseline)]
       for row in rows])


def memory_table(
    update_rows: Sequence[_update_step.UpdateRow],
    training_rows: Sequence[_training_step.TrainingRow],
) -> str:
  """Optimizer memory and compiled temporaries at the largest sizes."""
  largest = max(row.num_params for row in update_rows)
  largest_model = max((row.num_params for row in training_rows), default=0)
  training_temp = {row.optimizer: row.temp_bytes for row in training_rows
                   if row.num_params == largest_model}
  return table(
      ["optimizer", "state MB", "state / params", "update temp MB",
       "training-step temp MB"],
      [[row.optimizer, f"{row.state_bytes / MB:.1f}",
        f"{row.state_bytes / (4 * row.num_params):.2f}",
        f"{row.temp_bytes / MB:.1f}",
        f"{training_temp[row.optimizer] / MB:.1f}"
        if row.optimizer in training_temp else "-"]
       for row in update_rows if row.num_params == largest])


def targets_table(
    update_rows: Sequence[_update_step.UpdateRow],
    training_rows: Sequence[_training_step.TrainingRow],
) -> str:
  """Each target of the issue next to the measured ratios."""
  checks = [
      (f"{name} update, {millions(row.num_params)} params", ceiling,
       row.ratio, row.scanned_ratio)
      for name, ceiling in UPDATE_TARGETS
      for row in update_rows if row.optimizer == name
  ]
  checks += [
      (f"{row.model} training step, {row.optimizer}", TRAINING_TARGET,
       row.ratio, row.scanned_ratio)
      for row in training_rows if row.optimizer != row.baseline
  ]

  def verdict(ratio: _timing.Ratio | None, ceiling: float) -> str:
    if ratio is None:
      return "-"
    return "yes" if ratio.median <= ceiling else "**no**"

  return table(
      ["target", "ceiling", "1 call each (quartiles)", "met",
       "scanned (quartiles)", "met"],
      [[name, f"{ceiling:.2f}x", _ratio(ratio, False),
        verdict(ratio, ceiling), _ratio(scanned, False),
        verdict(scanned, ceiling)]
       for name, ceiling, ratio, scanned in checks])
