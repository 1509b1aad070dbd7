"""What the study trains: its cells, seeds and budgets.

A :class:`Cell` is a task at a batch size with its budget in epochs. Every
net at a batch size gets the same epochs; the study checks each budget
itself, by training every method's pick for twice as long on the tuning
seeds (:func:`examples.study_lib.protocol.check`).
"""

import dataclasses

from examples.study_lib import methods as methods_lib

ALL = tuple(methods_lib.BY_NAME)
BASELINES = ("SGD", "Adam")
LARGE_BATCH = 64
PAPER_BATCH = 8


@dataclasses.dataclass(frozen=True)
class Cell:
  """A task at a batch size, trained for ``epochs`` epochs.

  A cell at :data:`LARGE_BATCH` is a control: it trains the baselines only,
  to measure what small batches cost.
  """

  task: str
  batch_size: int
  epochs: int
  methods: tuple[str, ...] = ALL

  @property
  def name(self) -> str:
    return f"{self.task} b{self.batch_size}"

  @property
  def pairs(self) -> tuple[tuple[str, str], ...]:
    """The declared comparisons: each TR method against its own base."""
    by_name = methods_lib.BY_NAME
    return tuple(
      (m, by_name[m].family)
      for m in self.methods
      if by_name[m].is_tr and by_name[m].family in self.methods
    )

  @property
  def has_paper_settings(self) -> bool:
    return self.batch_size == PAPER_BATCH


@dataclasses.dataclass(frozen=True)
class Design:
  """Everything the study trains.

  Attributes:
    cells: the tasks and batch sizes.
    tuning_seeds: seeds that pick each method's rate (on validation).
    coarse: rates of each first grid, half a decade apart.
    refine: whether the grid then adds the rates a quarter decade either
      side of the best.
    margin: the equivalence margin (points), fixed before the run; a cell
      whose most seeds cannot reach 80% power at it gets the smallest
      margin they reach, rounded up to a quarter point.
    most_seeds: the most confirmation seeds a cell gets.
    least_seeds: the fewest.
  """

  cells: tuple[Cell, ...]
  tuning_seeds: int
  coarse: int
  refine: bool
  margin: float
  most_seeds: int
  least_seeds: int

  @property
  def primary(self) -> int:
    """The declared family's size: each TR method against its base."""
    return sum(len(c.pairs) for c in self.cells)


DIGITS_NETS = ("digits", "digits-bn", "digits-gn")
FULL = Design(
  cells=(
    *(Cell(net, 2, 16) for net in DIGITS_NETS),
    *(Cell(net, 8, 16) for net in DIGITS_NETS),
    Cell("mnist1d", 32, 64),
    Cell("mnist1d", 8, 32),
    *(Cell(net, LARGE_BATCH, 32, BASELINES) for net in DIGITS_NETS),
  ),
  tuning_seeds=6,
  coarse=5,
  refine=True,
  margin=0.5,
  most_seeds=32,
  least_seeds=8,
)
# Every net and every kind of job, at 1 epoch on few seeds, in about 2
# minutes on two cores (a test runs it): compiling dominates, so it trains
# fewer methods and skips the refinement.
QUICK_METHODS = ("SGD", "TRSGD")
QUICK = Design(
  cells=(
    Cell("mnist1d", PAPER_BATCH, 1, QUICK_METHODS),
    Cell("digits", PAPER_BATCH, 1, ("SGD",)),
    Cell("digits-bn", PAPER_BATCH, 1, QUICK_METHODS),
    Cell("digits-gn", LARGE_BATCH, 1, ("SGD",)),
  ),
  tuning_seeds=2,
  coarse=2,
  refine=False,
  margin=0.5,
  most_seeds=3,
  least_seeds=3,
)
