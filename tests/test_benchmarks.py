"""Smoke tests of `make bench`: both sections at tiny sizes, on the CPU.

Nothing here checks a timing or a memory figure against a threshold: times
are only required to be finite and positive, ratios to be consistent with
their quartiles, and XLA's memory figures to be computed and consistent
with each other. What is checked exactly is what holds on any backend: the
state and the arrays each call passes.
"""

import math
import pathlib
import time

from flax import nnx
import jax
import jax.numpy as jnp
import pytest

from benchmarks import _report
from benchmarks import _timing
from benchmarks import models
from benchmarks import run
from examples import machine
from examples import models as example_models
from tests import helpers


@pytest.fixture(scope="module")
def cpu_measured() -> _report.Measurements:
  with jax.numpy_dtype_promotion("standard"):  # optax's adam and lion
    return run.measure(run.cpu_section(quick=True))


@pytest.fixture(scope="module")
def accelerator_measured() -> _report.Measurements:
  with jax.numpy_dtype_promotion("standard"):
    return run.measure(run.accelerator_section(quick=True))


def _check_timing(timing: _timing.Timing, is_baseline: bool) -> None:
  assert math.isfinite(timing.seconds) and timing.seconds > 0
  ratio = timing.ratio
  assert 0 < ratio.low <= ratio.median <= ratio.high < math.inf
  if is_baseline:
    assert (ratio.low, ratio.median, ratio.high) == (1.0, 1.0, 1.0)


def _expected_rows(section: run.Section) -> list[tuple[str, str]]:
  return [
    (workload.kind, candidate.name)
    for workload in section.workloads
    for group in workload.groups
    for candidate in group
  ]


def test_cpu_section_times_each_step_one_call_each_and_scanned(cpu_measured):
  section = run.cpu_section(quick=True)
  rows = cpu_measured.rows
  assert [(row.kind, row.optimizer) for row in rows] == _expected_rows(section)
  assert cpu_measured.copy_bandwidth > 0
  for row in rows:
    _check_timing(row.per_call, row.optimizer == row.baseline)
    _check_timing(row.scanned, row.optimizer == row.baseline)
    assert row.xla_streams > 0

  report = _report.render(cpu_measured, section.notes, period=run.PERIOD)
  for text in (
    "## Update step",
    "## Whole training step",
    "## Memory",
    "| copy bandwidth |",
    "| JAX devices |",
    "ms, scanned",
    "target: met",
    section.notes,
  ):
    assert text in report
  for row in rows:
    assert f"| {row.optimizer} |" in report


def test_accelerator_section_runs_on_a_cpu_one_call_each(
  accelerator_measured,
):
  section = run.accelerator_section(quick=True)
  assert all(not workload.scanned for workload in section.workloads)
  assert all(workload.budget for workload in section.workloads)
  rows = accelerator_measured.rows
  assert [(row.kind, row.optimizer) for row in rows] == _expected_rows(section)
  optimizers = {row.optimizer for row in rows}
  assert {run.SGD.name, run.TRSGD.name} <= optimizers
  assert {row.model for row in rows} >= {"Linear"}
  assert any(row.model.startswith("Transformer") for row in rows)
  for row in rows:
    _check_timing(row.per_call, row.optimizer == row.baseline)
    assert row.scanned is None

  report = _report.render(
    accelerator_measured, section.notes, period=run.PERIOD
  )
  assert section.notes in report
  assert "ms, 1 call each" in report
  assert "scanned" not in report.split("## Update step")[1]


@pytest.mark.optax_not_strict  # optax's adam and lion
@pytest.mark.parametrize("section", ["cpu", "accelerator"])
def test_each_row_counts_the_state_and_arrays_the_step_passes(
  section, cpu_measured, accelerator_measured
):
  measured = {"cpu": cpu_measured, "accelerator": accelerator_measured}
  candidates = {c.name: c for group in run.ALL_GROUPS for c in group}
  params = nnx.state(nnx.eval_shape(run.linear().make), nnx.Param)
  num_leaves = len(jax.tree.leaves(params))
  rows = [row for row in measured[section].rows if row.model == "Linear"]
  assert rows
  for row in rows:
    state = jax.eval_shape(candidates[row.optimizer].make().init, params)
    # The state the bench carries is the one the optimizer builds (its size
    # against the bare optimizer's: tests/test_common.py).
    assert row.state_bytes == _timing.tree_bytes(state)
    assert 4 * row.num_params == _timing.tree_bytes(params)  # float32
    # Params and state, then gradients or a batch (inputs and labels).
    others = num_leaves if row.kind == "update" else 2
    assert row.arrays == num_leaves + len(jax.tree.leaves(state)) + others


def test_memory_figures_are_reported_for_each_row_and_tr_lion(
  cpu_measured, accelerator_measured
):
  for measured in (cpu_measured, accelerator_measured):
    baselines = {}
    for row in measured.rows:
      assert row.temp_bytes >= 0
      assert isinstance(row.in_place, bool)
      if row.optimizer == row.baseline:
        assert row.extra_temp == 0
        baselines[row.kind, row.model, row.optimizer] = row
      else:  # the extra scratch memory is relative to this group's bare
        bare = baselines[row.kind, row.model, row.baseline]
        param_bytes = 4 * row.num_params
        assert row.extra_temp == pytest.approx(
          (row.temp_bytes - bare.temp_bytes) / param_bytes
        )
    tr_lion = [
      row for row in measured.rows if row.optimizer == run.TR_LION.name
    ]
    assert [row.baseline for row in tr_lion] == [run.LION.name]

    report = _report.render(measured, "", period=run.PERIOD)
    memory = report.split("## Memory")[1]
    assert "| extra temp / params | in place |" in memory
    for row in measured.rows:
      assert f"| {row.optimizer} |" in memory


class _Sleeping:
  """A stand-in for a DonatedLoop: one step per call, counted."""

  steps = 1

  def __init__(self):
    self.calls = 0

  def __call__(self) -> None:
    self.calls += 1
    time.sleep(1e-4)


@pytest.mark.parametrize(
  ("repeats", "budget", "rounds"),
  [
    (5, None, 5),  # no budget: every round
    (5, 1e9, 5),  # a budget that fits more rounds than asked for
    (5, 0.0, _timing.MIN_ROUNDS),  # a spent budget: the fewest rounds
    (2, 0.0, 2),  # fewer asked for than the fewest
  ],
)
def test_compare_runs_the_rounds_that_fit_in_the_budget(
  repeats, budget, rounds
):
  loops = {"bare": _Sleeping(), "ours": _Sleeping()}
  timings = _timing.compare(loops, lambda key: "bare", repeats, budget)
  assert [loop.calls for loop in loops.values()] == [rounds, rounds]
  assert timings["bare"].ratio.median == 1.0


def test_paired_ratio_divides_within_rounds():
  # A load spike in round 2 hits both candidates and cancels.
  ratio = _timing.paired_ratio([2.0, 20.0, 2.0], [1.0, 10.0, 1.0])
  assert (ratio.low, ratio.median, ratio.high) == (2.0, 2.0, 2.0)
  ratio = _timing.paired_ratio([1.0, 2.0, 3.0, 4.0, 5.0], [1.0] * 5)
  assert (ratio.low, ratio.median, ratio.high) == (2.0, 3.0, 4.0)
  assert str(ratio) == "3.00x (2.00-4.00)"


def test_the_default_file_holds_only_its_own_backends_section():
  with pytest.raises(SystemExit) as raised:
    run.main(["--section", "accelerator"])  # a full GPU run, on a CPU
  assert raised.value.code == 2


def _param_count(module: nnx.Module) -> int:
  return sum(p.size for p in jax.tree.leaves(nnx.state(module, nnx.Param)))


def _output_shape(module: nnx.Module, inputs: jax.Array) -> tuple[int, ...]:
  graphdef, state = nnx.split(module)
  call = lambda state, x: nnx.merge(graphdef, state)(x)
  with jax.numpy_rank_promotion("allow"):  # the examples' conv bias
    return jax.eval_shape(call, state, inputs).shape


def test_models_have_the_published_sizes_and_output_shapes():
  # The CIFAR ResNet-18 of the paper's experiments: 11,173,962 params.
  resnet = nnx.eval_shape(lambda: example_models.ResNet18(10, nnx.Rngs(0)))
  assert _param_count(resnet) == 11_173_962
  assert len(jax.tree.leaves(nnx.state(resnet, nnx.Param))) == 62
  # The digits CNN: 3x3 convolutions to 8 and 16 channels, each halving
  # 14 x 14 (to 4 x 4), and a read-out of 4 * 4 * 16 features.
  cnn = nnx.eval_shape(lambda: example_models.Cnn2d(nnx.Rngs(0)))
  convs = (9 * 1 + 1) * 8 + (9 * 8 + 1) * 16
  assert _param_count(cnn) == convs + (4 * 4 * 16 + 1) * 10 == 3818
  # Per block 12 d^2 weights and 9 d biases and norm params; the token and
  # position embeddings; the final norm. The read-out is the embedding.
  vocab, length, d, depth = 11, 7, 8, 3
  sizes = dict(vocab=vocab, length=length, width=d, depth=depth, heads=2)
  lm = nnx.eval_shape(lambda: models.Transformer(nnx.Rngs(0), **sizes))
  blocks = depth * (12 * d**2 + 9 * d)
  assert _param_count(lm) == blocks + (vocab + length) * d + 2 * d

  for module, inputs, shape in (
    (resnet, jnp.zeros((2, 32, 32, 3)), (2, 10)),
    (cnn, jnp.zeros((2, 14, 14)), (2, 10)),
    (lm, jnp.zeros((2, 5), jnp.int32), (2, 5, vocab)),
  ):
    assert _output_shape(module, inputs) == shape


def test_machine_names_the_devices_and_versions():
  described = dict(machine.describe())
  assert f"{jax.device_count()} x " in described["JAX devices"]
  versions = described["python / jax / optax / flax / optax_prox"]
  assert jax.__version__ in versions.split(" / ")


def test_imports_go_from_the_benchmark_to_the_examples_never_back():
  root = pathlib.Path(__file__).resolve().parent.parent
  assert "examples" in helpers.imported_packages(root / "benchmarks" / "run.py")
  back = [
    path.relative_to(root)
    for path in (root / "examples").rglob("*.py")
    if "benchmarks" in helpers.imported_packages(path)
  ]
  assert not back, f"examples that import the benchmark: {back}"
