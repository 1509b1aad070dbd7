"""Markdown tables of the measurements."""

from typing import Sequence

from benchmarks import _optimizers
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


def update_table(
    rows: Sequence[_update_step.UpdateRow], copy_bandwidth: float
) -> str:
  """Time per update, the ratio to the bare optimizer and bandwidth used."""
  return table(
      ["params", "optimizer", "ms / step", "vs bare", "ideal",
       "XLA streams", "GB/s", "% of copy"],
      [[millions(row.num_params), row.optimizer,
        f"{1e3 * row.seconds:.2f}",
        "-" if row.optimizer == row.baseline else f"{row.ratio:.2f}x",
        "-" if row.optimizer == row.baseline else f"{row.ideal_ratio:.2f}x",
        f"{row.hlo_streams:.1f}",
        f"{row.bytes_per_second / 1e9:.1f}",
        f"{100 * row.bytes_per_second / copy_bandwidth:.0f}%"]
       for row in rows])


def training_table(rows: Sequence[_training_step.TrainingRow]) -> str:
  """Time per training step and the ratio to the bare optimizer."""
  return table(
      ["model", "params", "optimizer", "ms / step", "vs bare"],
      [[row.model, millions(row.num_params), row.optimizer,
        f"{1e3 * row.seconds:.2f}",
        "-" if row.optimizer == row.baseline else f"{row.ratio:.3f}x"]
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
  """Each target of the issue next to the measured ratio."""
  checks = [
      (f"{name} update, {millions(row.num_params)} params", row.ratio, ceiling)
      for name, ceiling in UPDATE_TARGETS
      for row in update_rows if row.optimizer == name
  ]
  checks += [
      (f"{row.model} training step, {row.optimizer}", row.ratio,
       TRAINING_TARGET)
      for row in training_rows if row.optimizer != row.baseline
  ]
  return table(
      ["target", "measured", "ceiling", "met"],
      [[name, f"{ratio:.3f}x", f"{ceiling:.2f}x",
        "yes" if ratio <= ceiling else "**no**"]
       for name, ratio, ceiling in checks])
