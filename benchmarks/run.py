r"""`make bench`: optax_prox's update and training step against bare optax.

``python -m benchmarks.run`` writes ``benchmarks/results.md`` (``--quick``:
a smoke test that writes no file). Each of ours runs interleaved with its
bare optax baseline, same hyper-parameters, in this one process; each timed
call covers whole periods, so the anchor refreshes count. Steps are timed
one jitted call per step (a Python training loop) and, where XLA:CPU
allows, all inside one ``lax.scan`` (the device work alone).
"""

import argparse
from collections.abc import Callable, Sequence
import functools
import pathlib
import sys
import time
from typing import Any, NamedTuple

from flax import nnx
import jax
import jax.numpy as jnp
import optax

from benchmarks import _report
from benchmarks import _timing
from examples import models
import optax_prox

RESULTS = pathlib.Path(__file__).parent / "results.md"
PERIOD = 10
LR = 1e-3
WEIGHT_DECAY = 5e-4
STRENGTH = 0.2  # 2 * lambda_w / eta with lambda_w = 0.1 eta, as in trsgd


class Candidate(NamedTuple):
  """An optimizer, and the param-sized buffers its ideal update streams.

  A perfectly fused bare SGD step reads params, gradients and momentum and
  writes params and momentum: 5. Ours read the anchor too, and write it once
  per period (the ``streams`` are averaged over a period).
  """

  name: str
  make: Callable[[], optax.GradientTransformation]
  streams: float


def sgd() -> optax.GradientTransformation:
  """The bare counterpart of trsgd: L2 weight decay, SGD with momentum."""
  decay = optax.add_decayed_weights(WEIGHT_DECAY)
  return optax.chain(decay, optax.sgd(LR, momentum=0.9))


def trsgd() -> optax.GradientTransformation:
  return optax_prox.trsgd(LR, period=PERIOD, weight_decay=WEIGHT_DECAY)


def tradam() -> optax.GradientTransformation:
  return optax_prox.tradam(LR, period=PERIOD)


def prox_lion() -> optax.GradientTransformation:
  prox = optax_prox.proximal_regularize(STRENGTH, PERIOD)
  return optax.chain(prox, optax.lion(LR / 10))


SGD = Candidate("optax.sgd(momentum) + L2", sgd, 5)
TRSGD = Candidate("optax_prox.trsgd", trsgd, 6 + 1 / PERIOD)
ADAM = Candidate("optax.adam", lambda: optax.adam(LR), 7)
TRADAM = Candidate("optax_prox.tradam", tradam, 8 + 1 / PERIOD)
LION = Candidate("optax.lion", lambda: optax.lion(LR / 10), 5)
PROX_LION = Candidate("proximal_regularize + lion", prox_lion, 6 + 1 / PERIOD)
# Each group runs interleaved; its first member is the baseline.
UPDATE_GROUPS = ((SGD, TRSGD), (ADAM, TRADAM), (LION, PROX_LION))
TRAINING_GROUPS = UPDATE_GROUPS[:2]
# A step, its carry (params first, optimizer state last) and its constants.
Built = tuple[Callable[..., Any], tuple[Any, ...], tuple[Any, ...]]
Build = Callable[[optax.GradientTransformation], Built]


def resnet18(width: int = 64) -> nnx.Module:
  """The examples' CIFAR ResNet-18: 62 param leaves, ``~width**2`` params."""
  return models.ResNet18(10, nnx.Rngs(0), width=width)


def cnn1d() -> nnx.Module:
  """The demo's 8k-param 1-D CNN for MNIST-1D (signals of length 40)."""
  return models.Cnn1d(nnx.Rngs(0))


def linear() -> nnx.Module:
  """One dense 4 -> 10 layer, for the smoke test."""
  return nnx.Linear(4, 10, rngs=nnx.Rngs(0))


def update_step(make_model: Callable[[], nnx.Module]) -> Build:
  """The update alone, on constant params and gradients of a model's shapes."""

  def build(tx: optax.GradientTransformation) -> Built:
    abstract = nnx.state(nnx.eval_shape(make_model), nnx.Param)
    shapes = [leaf.shape for leaf in jax.tree.leaves(abstract)]
    params = [jnp.full(shape, 0.05) for shape in shapes]
    grads = [jnp.full(shape, 1e-3) for shape in shapes]  # fast to fill

    def step(params, state, grads):
      updates, state = tx.update(grads, state, params)
      return optax.apply_updates(params, updates), state

    return step, (params, tx.init(params)), (grads,)

  return build


def training_step(
  make_model: Callable[[], nnx.Module], shape: Sequence[int]
) -> Build:
  """Forward, backward and update on a fixed batch of 8 of a given shape."""

  def build(tx: optax.GradientTransformation) -> Built:
    graphdef, params, rest = nnx.split(  # rest: the batch-norm statistics
      make_model(), nnx.Param, nnx.Not(nnx.Param)
    )

    def step(params, rest, opt_state, inputs, labels):
      def loss(params):
        model = nnx.merge(graphdef, params, rest, copy=True)
        logits = model(inputs)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        return losses.mean(), nnx.state(model, nnx.Not(nnx.Param))

      grads, rest = jax.grad(loss, has_aux=True)(params)
      updates, opt_state = tx.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), rest, opt_state

    inputs = jax.random.normal(jax.random.key(0), (8, *shape))
    batch = (inputs, jnp.arange(8) % 10)
    return step, (params, rest, tx.init(params)), batch

  return build


class Workload(NamedTuple):
  """A step timed in ``repeats`` rounds of calls of ``steps`` steps each.

  ``scanned``: also time the steps inside one ``lax.scan``. XLA:CPU runs
  ResNet-18's convolutions about 10x slower there, so not its training step.
  """

  kind: str  # "update" or "training"
  model: str
  build: Build
  repeats: int
  steps: int = PERIOD  # whole periods
  scanned: bool = True
  groups: Sequence[Sequence[Candidate]] = UPDATE_GROUPS


def update(width: int, **kwargs: Any) -> Workload:
  build = update_step(functools.partial(resnet18, width))
  return Workload("update", "ResNet-18", build, **kwargs)


def training(
  name: str,
  make_model: Callable[[], nnx.Module],
  shape: Sequence[int],
  **kwargs: Any,
) -> Workload:
  kwargs = {"groups": TRAINING_GROUPS, **kwargs}
  return Workload("training", name, training_step(make_model, shape), **kwargs)


FULL = (  # ResNet-18 shapes at 1.0M, 11.2M (the real network) and 49.7M
  update(19, repeats=12),
  update(64, repeats=6),
  update(135, repeats=4, groups=UPDATE_GROUPS[:2]),  # lion: +1.5 min
  training("Cnn1d (demo)", cnn1d, (40,), repeats=15, steps=2 * PERIOD),
  training("ResNet-18", resnet18, (32, 32, 3), repeats=4, scanned=False),
)
QUICK = (  # a smoke test
  Workload("update", "Linear", update_step(linear), repeats=2),
  training("Linear", linear, (4,), repeats=2, groups=TRAINING_GROUPS[:1]),
)


def measure_group(
  workload: Workload, group: Sequence[Candidate]
) -> list[_report.Row]:
  """Times a group interleaved; ratios to its first member, round by round."""
  loops = {}
  for candidate in group:
    for scanned in (False, True) if workload.scanned else (False,):
      built = workload.build(candidate.make())
      loops[candidate, scanned] = _timing.DonatedLoop(
        *built, workload.steps, scanned
      )
  baseline_of = lambda key: (group[0], key[1])
  timings = _timing.compare(loops, baseline_of, workload.repeats)
  rows = []
  for candidate in group:
    loop = loops[candidate, False]
    param_bytes = _timing.tree_bytes(loop.carry[0])
    rows.append(
      _report.Row(
        kind=workload.kind,
        model=workload.model,
        num_params=sum(p.size for p in jax.tree.leaves(loop.carry[0])),
        optimizer=candidate.name,
        baseline=group[0].name,
        per_call=timings[candidate, False],
        scanned=timings.get((candidate, True)),
        ideal_ratio=candidate.streams / group[0].streams,
        ideal_bytes=candidate.streams * param_bytes,
        xla_streams=loop.bytes_accessed() / param_bytes,
        state_bytes=_timing.tree_bytes(loop.carry[-1]),
        temp_bytes=loop.temp_bytes(),
      )
    )
  return rows


def copy_bandwidth(num_floats: int) -> float:
  """Bytes per second of a jitted, donated ``x + 1``: the cheapest update."""
  x = jnp.zeros([num_floats])
  loop = _timing.DonatedLoop(lambda x: (x + 1,), (x,), (), 10, False)
  seconds = _timing.compare({0: loop}, lambda key: key, 5)[0].seconds
  return 2 * x.nbytes / seconds


def measure(
  workloads: Sequence[Workload], copy_floats: int = 50_000_000
) -> _report.Measurements:
  """Runs every workload with every group, one group's buffers at a time."""
  start, load = time.perf_counter(), _report.load_average()
  bandwidth = copy_bandwidth(copy_floats)
  rows = []
  for workload in workloads:
    for group in workload.groups:
      seconds = time.perf_counter() - start
      label = f"{workload.kind} step, {workload.model}, {group[1].name}"
      print(f"[bench] {seconds:3.0f} s: {label}", file=sys.stderr)
      rows += measure_group(workload, group)
  machine = _report.machine()
  load = f"{load} before; {_report.load_average()} after"
  machine.append(("load average (1, 5, 15 min)", load))
  copy = f"{bandwidth / 1e9:.1f} GB/s (x + 1 on {4 * copy_floats / 1e6:.0f} MB)"
  machine.append(("copy bandwidth", copy))
  machine.append(("wall time", f"{time.perf_counter() - start:.0f} s"))
  return _report.Measurements(machine, bandwidth, rows)


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="a smoke test")
  parser.add_argument("--output", type=pathlib.Path, help="the report file")
  args = parser.parse_args(argv)
  measured = measure(QUICK, 10**6) if args.quick else measure(FULL)
  report = _report.render(measured, period=PERIOD)
  print(report)
  output = args.output or (None if args.quick else RESULTS)
  if output is not None:
    output.write_text(report, encoding="utf-8")


if __name__ == "__main__":
  main()
