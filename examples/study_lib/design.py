"""What the study trains: its cells, its parts, and their verdicts.

A :class:`Cell` is a task at a batch size with its budget in epochs (the
pilot's choice). For each cell the study tunes every method
(:func:`tune_cell`); at batch 8 it also runs the paper's untuned settings
(:func:`paper_cell`); on the chosen cells it ablates TR
(:func:`ablation_cell`) and maps its sensitivity (:func:`sensitivity_cell`).
"""

import dataclasses
import os

from examples.study_lib import data as data_lib
from examples.study_lib import methods as methods_lib
from examples.study_lib import protocol

PAPER_BATCH_SIZE = 8
# The paper's settings: a rate per method, weight decay 5e-4, TR with
# period 10 and lambda_w = 0.1 eta_0.
PAPER_RATES = {"SGD": 0.1, "TRSGD": 0.1, "Adam": 1e-3, "TRAdam": 1e-3}
PILOT_PATH = os.path.join(
  os.path.dirname(__file__), "..", "..", "docs", "results", "pilot.json"
)


ALL_METHODS = tuple(m.name for m in methods_lib.COMPARED)
PAPER_METHODS = ("SGD", "TRSGD", "Adam", "TRAdam")


@dataclasses.dataclass(frozen=True)
class Cell:
  """A task at a batch size, trained for ``epochs`` epochs.

  ``methods``: the compared methods it tunes (those that apply to its batch
  size). At the paper's batch size a cell with all four of the paper's
  methods also runs the paper's untuned settings.
  """

  task: data_lib.Task
  batch_size: int
  epochs: int
  methods: tuple[str, ...] = ALL_METHODS

  @property
  def runs_paper_settings(self) -> bool:
    return self.batch_size == PAPER_BATCH_SIZE and set(PAPER_METHODS) <= set(
      self.methods
    )

  def compared(self) -> list[methods_lib.Method]:
    return [
      m
      for m in methods_lib.COMPARED
      if m.name in self.methods and m.applies_to(self.batch_size)
    ]


@dataclasses.dataclass(frozen=True)
class Design:
  """Everything the study trains.

  Attributes:
    cells: the tasks and batch sizes of the tuned comparison.
    seeds: seeds per set (two disjoint sets, A and B).
    grid_size: the rates of each method's first grid.
    max_widen: how often a grid may grow by two rates at an edge.
    ablation_cells: the cells where TR is split into its ingredients.
    sensitivity_cell: where TR is mapped over period x lambda_w / eta_0.
    periods: the periods of that map.
    ratios: its values of lambda_w / eta_0.
    pilot_path: the pilot's record, reported with the study.
  """

  cells: tuple[Cell, ...]
  seeds: int
  grid_size: int
  max_widen: int
  ablation_cells: tuple[Cell, ...]
  sensitivity_cell: Cell | None
  periods: tuple[int, ...]
  ratios: tuple[float, ...]
  pilot_path: str | None


MNIST1D, DIGITS = data_lib.TASKS["mnist1d"], data_lib.TASKS["digits"]
DIGITS_BN, DIGITS_GN = data_lib.TASKS["digits-bn"], data_lib.TASKS["digits-gn"]
# The BatchNorm net gets the paper's two optimizers and their TR versions;
# the GroupNorm net, what a user would switch to instead, the plain ones and
# TRSGD.
BN_METHODS = PAPER_METHODS
GN_METHODS = ("SGD", "TRSGD", "Adam")
# The pilot found accumulated SGD still improving at the digits' budgets
# (pilot.json), so the study trains it on MNIST-1D only.
UNACCUMULATED = tuple(m for m in ALL_METHODS if not m.startswith("SGD, accum"))
# The epochs are the pilot's choices (docs/results/pilot.json); a test
# checks that they match. The workers take the cells in this order, the
# longest first.
FULL_CELLS = (
  Cell(MNIST1D, 8, 32),
  Cell(DIGITS_BN, 2, 16, BN_METHODS),
  Cell(DIGITS_BN, 8, 16, BN_METHODS),
  Cell(DIGITS, 2, 8, UNACCUMULATED),
  Cell(DIGITS, 8, 8, UNACCUMULATED),
  Cell(MNIST1D, 32, 64),
  Cell(DIGITS_GN, 8, 8, GN_METHODS),
  Cell(DIGITS_GN, 2, 8, GN_METHODS),
)
FULL = Design(
  cells=FULL_CELLS,
  seeds=8,
  grid_size=5,
  max_widen=1,
  ablation_cells=(FULL_CELLS[0],),
  sensitivity_cell=FULL_CELLS[0],
  periods=(2, 10, 50),
  ratios=(0.01, 0.1, 1.0),
  pilot_path=PILOT_PATH,
)
# A smoke run of every part but the ablation (which only tunes more
# methods), the BatchNorm and GroupNorm nets included, in about two minutes
# on two CPU cores.
QUICK_CELL = Cell(MNIST1D, PAPER_BATCH_SIZE, 1)
QUICK = Design(
  cells=(
    QUICK_CELL,
    Cell(DIGITS_BN, PAPER_BATCH_SIZE, 1, ("SGD", "TRSGD")),
    Cell(DIGITS_GN, PAPER_BATCH_SIZE, 1, ("SGD",)),
  ),
  seeds=2,
  grid_size=3,
  max_widen=0,
  ablation_cells=(),
  sensitivity_cell=QUICK_CELL,
  periods=(10,),
  ratios=(0.1, 1.0),
  pilot_path=None,
)


@dataclasses.dataclass
class Results:
  """The study's records, filled part by part."""

  tunings: list[protocol.Tuning] = dataclasses.field(default_factory=list)
  verdicts: list[protocol.Verdict] = dataclasses.field(default_factory=list)
  ranges: list[protocol.RangeComparison] = dataclasses.field(
    default_factory=list
  )
  paper: list[protocol.Tuning] = dataclasses.field(default_factory=list)
  paper_verdicts: list[protocol.Verdict] = dataclasses.field(
    default_factory=list
  )
  ablation: list[protocol.Tuning] = dataclasses.field(default_factory=list)
  ablation_verdicts: list[protocol.Verdict] = dataclasses.field(
    default_factory=list
  )
  norm_verdicts: list[protocol.Verdict] = dataclasses.field(
    default_factory=list
  )
  sensitivity: list[protocol.SensitivityMap] = dataclasses.field(
    default_factory=list
  )


Tuned = dict[str, protocol.Tuning]  # method name -> its record


def tune(design: Design, runner, cell: Cell, name: str, sets):
  return protocol.tune(
    runner,
    cell.task,
    methods_lib.BY_NAME[name],
    cell.batch_size,
    sets,
    epochs=cell.epochs,
    grid_size=design.grid_size,
    max_widen=design.max_widen,
  )


def tune_cell(design: Design, runner, cell: Cell, sets) -> Tuned:
  """Every compared method of the cell, tuned on both seed sets."""
  return {
    m.name: tune(design, runner, cell, m.name, sets) for m in cell.compared()
  }


def paper_cell(runner, cell: Cell, sets) -> Tuned:
  """SGD, TRSGD, Adam and TRAdam at the paper's rates and weight decay."""
  return {
    name: protocol.at_rate(
      runner,
      cell.task,
      methods_lib.BY_NAME[name],
      cell.batch_size,
      rate,
      sets,
      epochs=cell.epochs,
      weight_decay=methods_lib.PAPER_WEIGHT_DECAY,
    )
    for name, rate in PAPER_RATES.items()
  }


def ablation_cell(design: Design, runner, cell: Cell, sets, tuned: Tuned):
  """Each family's plain, decay-only, pull-only and TR variants."""
  return {
    name: tuned[name]
    if name in tuned
    else tune(design, runner, cell, name, sets)
    for variants in methods_lib.ABLATION.values()
    for name in variants
  }


def sensitivity_cell(design: Design, runner, cell: Cell, seeds, tuned: Tuned):
  """Each TR method at set A's tuned rate over the period x ratio map."""
  return [
    protocol.sensitivity(
      runner,
      cell.task,
      methods_lib.BY_NAME[name],
      cell.batch_size,
      tuned[name].picked_rate("A"),
      seeds,
      epochs=cell.epochs,
      periods=design.periods,
      ratios=design.ratios,
    )
    for name in methods_lib.TR_NAMES
  ]


def tr_verdicts(tuned: Tuned, same_family: bool = False, baselines=None):
  """Each TR method minus each baseline (or only its own plain optimizer).

  ``baselines``: the tunings to compare with, by default ``tuned`` itself
  (another cell's, to set TR on one net against a method on another).
  """
  baselines = tuned if baselines is None else baselines
  return [
    protocol.compare(tuned[ours], baselines[theirs])
    for ours in methods_lib.TR_NAMES
    if ours in tuned
    for theirs in methods_lib.BASELINE_NAMES
    if theirs in baselines
    and (not same_family or theirs == methods_lib.BY_NAME[ours].family)
  ]


def range_verdicts(tuned: Tuned):
  """Each TR method against its plain optimizer: widths, edges, shift."""
  return [
    protocol.compare_ranges(
      tuned[ours], tuned[methods_lib.BY_NAME[ours].family]
    )
    for ours in methods_lib.TR_NAMES
    if ours in tuned
  ]


def ablation_verdicts(ablated: Tuned):
  """Decay only, pull only and both, each minus the plain optimizer."""
  return [
    protocol.compare(ablated[name], ablated[variants[0]])
    for variants in methods_lib.ABLATION.values()
    for name in variants[1:]
  ]


def norm_verdicts(tunings) -> list[protocol.Verdict]:
  """TR on the BatchNorm net minus each method on the GroupNorm net.

  Paired by seed at each batch size where both nets were tuned: the seeds
  share the data split and the data order, not the initialisation.
  """

  def cell_of(task, batch_size) -> Tuned:
    return {
      t.method: t
      for t in tunings
      if (t.task, t.batch_size) == (task.name, batch_size)
    }

  verdicts = []
  for batch_size in sorted({t.batch_size for t in tunings}):
    bn, gn = cell_of(DIGITS_BN, batch_size), cell_of(DIGITS_GN, batch_size)
    if bn and gn:
      verdicts += tr_verdicts(bn, baselines=gn)
  return verdicts


def planned_run_epochs(design: Design, cells=None) -> int:
  """How many run-epochs the study (or ``cells``) trains if no grid widens."""
  configs = 2 * design.seeds
  total = 0
  for cell in design.cells if cells is None else cells:
    runs = len(cell.compared()) * design.grid_size * configs
    if cell.runs_paper_settings:
      runs += len(PAPER_RATES) * configs
    if cell in design.ablation_cells:
      runs += 2 * len(methods_lib.ABLATION) * design.grid_size * configs
    if cell == design.sensitivity_cell:
      runs += (
        len(methods_lib.TR_NAMES)
        * len(design.periods)
        * len(design.ratios)
        * design.seeds
      )
    total += runs * cell.epochs
  return total
