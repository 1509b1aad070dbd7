r"""`make bench`: optax_prox's update and training step against bare optax.

``python -m benchmarks.run`` runs the section of JAX's default backend. On a
CPU it writes ``benchmarks/results.md``. On an accelerator it runs the
accelerator section (larger models, each step one call dispatched without
blocking) and writes ``benchmarks/results-gpu.md`` (``-tpu`` on a TPU).
``--quick`` runs the section at tiny sizes and writes no file (a smoke
test); with it, ``--section accelerator`` runs the accelerator section's
code on a CPU. Each of ours runs interleaved with its bare optax baseline,
same hyper-parameters, in this one process; each timed call covers whole
periods, so the anchor refreshes count.
"""

import argparse
from collections.abc import Callable, Sequence
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
from benchmarks import models
from examples import machine
from examples import models as example_models
import optax_prox

RESULTS = pathlib.Path(__file__).parent / "results.md"
PERIOD = 10
LR = 1e-3
WEIGHT_DECAY = 5e-4
MAX_ROUNDS = 50  # where a time budget sets the rounds


class Candidate(NamedTuple):
  """An optimizer, and the param-sized buffers its ideal update streams.

  A perfectly fused bare SGD step reads params, gradients and momentum and
  writes params and momentum: 5. Ours read the anchor too, and write it once
  per period inside a ``lax.cond`` (the ``streams`` are averaged over a
  period). ``target``: the ceiling on the update step's ratio to the bare
  optimizer.
  """

  name: str
  make: Callable[[], optax.GradientTransformation]
  streams: float
  target: float | None = None


def sgd() -> optax.GradientTransformation:
  """The bare counterpart of trsgd: L2 weight decay, SGD with momentum."""
  decay = optax.add_decayed_weights(WEIGHT_DECAY)
  return optax.chain(decay, optax.sgd(LR, momentum=0.9))


def trsgd() -> optax.GradientTransformation:
  return optax_prox.trsgd(LR, period=PERIOD, weight_decay=WEIGHT_DECAY)


def tradam() -> optax.GradientTransformation:
  return optax_prox.tradam(LR, period=PERIOD)


def tr_lion() -> optax.GradientTransformation:
  return optax_prox.trajectory_regularized(optax.lion, LR / 10, period=PERIOD)


SGD = Candidate("optax.sgd + L2", sgd, 5)
TRSGD = Candidate("optax_prox.trsgd", trsgd, 6 + 1 / PERIOD, 1.25)
ADAM = Candidate("optax.adam", lambda: optax.adam(LR), 7)
TRADAM = Candidate("optax_prox.tradam", tradam, 8 + 1 / PERIOD, 1.18)
LION = Candidate("optax.lion", lambda: optax.lion(LR / 10), 5)
TR_LION = Candidate("TR around lion", tr_lion, 6 + 1 / PERIOD)
# Each group runs interleaved; its first member is the baseline.
GROUPS = ((SGD, TRSGD), (ADAM, TRADAM))
LION_GROUP = (LION, TR_LION)
ALL_GROUPS = (*GROUPS, LION_GROUP)


Batch = Callable[[], tuple[jax.Array, jax.Array]]  # inputs, integer labels


class Model(NamedTuple):
  """A model, and a fixed batch of 8 for it."""

  name: str
  make: Callable[[], nnx.Module]
  batch: Batch


def classified(shape: Sequence[int]) -> Batch:
  """A batch of 8 random inputs of ``shape``, labelled with 10 classes."""
  return lambda: (
    jax.random.normal(jax.random.key(0), (8, *shape)),
    jnp.arange(8) % 10,
  )


def resnet18(width: int) -> Model:
  """The CIFAR ResNet-18 (11.2M params at width 64; ``~2735 width**2``)."""
  make = lambda: example_models.ResNet18(10, nnx.Rngs(0), width=width)
  return Model("ResNet-18", make, classified((32, 32, 3)))


def cnn2d() -> Model:
  """The demo's and the study's 3.8k-param CNN for 14 x 14 digits."""
  make = lambda: example_models.Cnn2d(nnx.Rngs(0))
  return Model("Cnn2d (digits)", make, classified((14, 14)))


def linear() -> Model:
  """One dense 4 -> 10 layer, for the smoke test."""
  make = lambda: nnx.Linear(4, 10, rngs=nnx.Rngs(0))
  return Model("Linear", make, classified([4]))


def transformer(vocab: int, length: int, **sizes: int) -> Model:
  """A causal language model on random tokens; sizes: width, depth, heads."""

  def batch() -> tuple[jax.Array, jax.Array]:
    tokens = jax.random.randint(jax.random.key(0), (8, length + 1), 0, vocab)
    return tokens[:, :-1], tokens[:, 1:]  # each token's label: the next one

  make = lambda: models.Transformer(
    nnx.Rngs(0), vocab=vocab, length=length, **sizes
  )
  name = f"Transformer, depth {sizes['depth']}, width {sizes['width']}"
  return Model(name, make, batch)


# A step, its carry (params first, optimizer state last) and its constants.
Built = tuple[Callable[..., Any], tuple[Any, ...], tuple[Any, ...]]
Build = Callable[[optax.GradientTransformation], Built]


def update_step(model: Model) -> Build:
  """The update alone, on constant params and gradients of a model's shapes."""

  def build(tx: optax.GradientTransformation) -> Built:
    abstract = nnx.state(nnx.eval_shape(model.make), nnx.Param)
    shapes = [leaf.shape for leaf in jax.tree.leaves(abstract)]
    params = [jnp.full(shape, 0.05) for shape in shapes]
    grads = [jnp.full(shape, 1e-3) for shape in shapes]  # fast to fill

    def step(params, state, grads):
      updates, state = tx.update(grads, state, params)
      return optax.apply_updates(params, updates), state

    return step, (params, tx.init(params)), (grads,)

  return build


def training_step(model: Model) -> Build:
  """Forward, backward and update on the model's fixed batch."""

  def build(tx: optax.GradientTransformation) -> Built:
    graphdef, params, rest = nnx.split(  # rest: the batch-norm statistics
      model.make(), nnx.Param, nnx.Not(nnx.Param)
    )

    def step(params, rest, opt_state, inputs, labels):
      def loss(params):
        module = nnx.merge(graphdef, params, rest, copy=True)
        logits = module(inputs)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        return losses.mean(), nnx.state(module, nnx.Not(nnx.Param))

      grads, rest = jax.grad(loss, has_aux=True)(params)
      updates, opt_state = tx.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), rest, opt_state

    return step, (params, rest, tx.init(params)), model.batch()

  return build


class Workload(NamedTuple):
  """A step, timed with each group of candidates in rounds of calls.

  Each timed call runs ``steps`` steps. ``repeats``: the rounds, or where
  there is a ``budget`` (seconds of rounds per group) the most rounds.
  ``scanned``: also time the steps inside one ``lax.scan``.
  """

  kind: str  # "update" or "training"
  model: str
  build: Build
  groups: Sequence[Sequence[Candidate]]
  repeats: int = MAX_ROUNDS
  steps: int = PERIOD  # whole periods
  scanned: bool = True
  budget: float | None = None


Groups = Sequence[Sequence[Candidate]]


def update(model: Model, groups: Groups, **kwargs: Any) -> Workload:
  return Workload("update", model.name, update_step(model), groups, **kwargs)


def training(model: Model, groups: Groups, **kwargs: Any) -> Workload:
  return Workload(
    "training", model.name, training_step(model), groups, **kwargs
  )


class Section(NamedTuple):
  """The workloads for one kind of machine, and how its report reads."""

  workloads: tuple[Workload, ...]
  copy_floats: int  # the size of the copy-bandwidth probe
  notes: str  # how the steps are timed


def cpu_section(quick: bool = False) -> Section:
  """ResNet-18's update at 1.0M, 11.2M and 49.7M params; two training steps.

  Each step one call each and scanned, in fixed rounds. ``quick``: a
  dense layer's update and training step, a smoke test.
  """
  notes = (
    "Each step is timed one jitted call per step (*1 call each*, as in a"
    " Python training loop, blocking at the end of each timed call) and,"
    " where XLA:CPU allows, with the steps inside one `lax.scan`"
    " (*scanned*: the device work alone). XLA:CPU runs ResNet-18's"
    " convolutions about 10x slower inside a scan, so its training step"
    " runs one call per step only."
  )
  if quick:
    workloads = (
      update(linear(), ALL_GROUPS, repeats=2),
      training(linear(), GROUPS[:1], repeats=2),
    )
    return Section(workloads, 10**6, notes)
  workloads = (
    update(resnet18(19), ALL_GROUPS, repeats=12),
    update(resnet18(64), ALL_GROUPS, repeats=6),
    update(resnet18(135), GROUPS, repeats=4),  # lion: +1.5 min
    training(cnn2d(), GROUPS, repeats=15, steps=2 * PERIOD),
    training(resnet18(64), GROUPS, repeats=4, scanned=False),
  )
  return Section(workloads, 50_000_000, notes)


def accelerator_section(quick: bool = False) -> Section:
  """ResNet-18's update at 11.2M, 49.7M and 200M params; two training steps.

  ResNet-18 at batch 8 and a 319M-param transformer (6 blocks of width
  2048, 8 x 128 tokens). Each step is one call, dispatched without
  blocking, and each group times as many rounds as fit in its budget:
  about 83 s of rounds and 32 programs to compile, planned to take under
  5 minutes on one GPU. ``quick``: the same code on a dense layer's update
  and a tiny transformer with SGD, to run on a CPU in the tests.
  """
  if quick:
    updated = [linear()]
    trained = [transformer(vocab=16, length=8, width=8, depth=1, heads=2)]
    groups, copy_floats = GROUPS[:1], 10**6
    per_update = per_training = dict(steps=PERIOD, budget=0.1)
  else:
    updated = [resnet18(width) for width in (64, 135, 271)]
    trained = [
      resnet18(64),
      transformer(vocab=8192, length=128, width=2048, depth=6, heads=16),
    ]
    groups, copy_floats = GROUPS, 250_000_000
    per_update = dict(steps=10 * PERIOD, budget=5.0)
    per_training = dict(steps=5 * PERIOD, budget=12.0)  # slower steps
  updates = [  # Lion at the first size only
    update(
      model,
      (*groups, LION_GROUP) if model is updated[0] else groups,
      scanned=False,
      **per_update,
    )
    for model in updated
  ]
  trainings = [
    training(model, groups, scanned=False, **per_training) for model in trained
  ]
  notes = (
    "Each step is one jitted call, dispatched without blocking: the host"
    " waits only at the end of each timed call (of"
    f" {per_update['steps']} update steps or {per_training['steps']}"
    " training steps), so it can queue steps ahead of the device, as a"
    " training loop does, and a step that makes the host wait for the"
    " device pays for it here: XLA:GPU copies a `lax.cond`'s predicate to"
    " the host and blocks until the device gets there. Each group runs one"
    " round, then as many as fit in its budget"
    f" ({per_update['budget']:g} s for an update step,"
    f" {per_training['budget']:g} s for a training step; at least"
    f" {_timing.MIN_ROUNDS} rounds)."
  )
  return Section((*updates, *trainings), copy_floats, notes)


SECTIONS = {"cpu": cpu_section, "accelerator": accelerator_section}


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
  timings = _timing.compare(
    loops, baseline_of, workload.repeats, workload.budget
  )
  bare = loops[group[0], False]
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
        target=candidate.target,
        per_call=timings[candidate, False],
        scanned=timings.get((candidate, True)),
        ideal_ratio=candidate.streams / group[0].streams,
        ideal_bytes=candidate.streams * param_bytes,
        xla_streams=loop.bytes_accessed() / param_bytes,
        arrays=loop.arrays,
        state_bytes=_timing.tree_bytes(loop.carry[-1]),
        temp_bytes=loop.temp_bytes(),
        extra_temp=(loop.temp_bytes() - bare.temp_bytes()) / param_bytes,
        in_place=loop.alias_bytes() == _timing.tree_bytes(loop.carry),
      )
    )
  return rows


def copy_bandwidth(num_floats: int) -> float:
  """Bytes per second of a jitted, donated ``x + 1``: the cheapest update."""
  x = jnp.zeros([num_floats])
  loop = _timing.DonatedLoop(lambda x: (x + 1,), (x,), (), 10, False)
  seconds = _timing.compare({0: loop}, lambda key: key, 5)[0].seconds
  return 2 * x.nbytes / seconds


def plan(section: Section) -> str:
  """The groups, the programs to compile and the seconds of timed rounds."""
  groups = [(w, g) for w in section.workloads for g in w.groups]
  programs = sum(len(g) * (1 + w.scanned) for w, g in groups)
  text = f"{len(groups)} groups, {programs} programs to compile"
  budget = sum(w.budget for w, _ in groups if w.budget is not None)
  return text + (f", about {budget:.1f} s of timed rounds" if budget else "")


def measure(section: Section) -> _report.Measurements:
  """Runs every workload with every group, one group's buffers at a time."""
  start, load = time.perf_counter(), _report.load_average()
  print(f"[bench] {plan(section)}", file=sys.stderr)
  bandwidth = copy_bandwidth(section.copy_floats)
  rows = []
  for workload in section.workloads:
    for group in workload.groups:
      seconds = time.perf_counter() - start
      label = f"{workload.kind} step, {workload.model}, {group[0].name}"
      print(f"[bench] {seconds:3.0f} s: {label}", file=sys.stderr)
      rows += measure_group(workload, group)
  described = machine.describe()
  load = f"{load} before; {_report.load_average()} after"
  described.append(("load average (1, 5, 15 min)", load))
  megabytes = 4 * section.copy_floats / 1e6
  copy = f"{bandwidth / 1e9:.1f} GB/s (x + 1 on {megabytes:.0f} MB)"
  described.append(("copy bandwidth", copy))
  described.append(("wall time", f"{time.perf_counter() - start:.0f} s"))
  return _report.Measurements(described, bandwidth, rows)


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="a smoke test")
  parser.add_argument(
    "--section",
    choices=sorted(SECTIONS),
    help="run this section instead of the backend's (--quick or --output)",
  )
  parser.add_argument("--output", type=pathlib.Path, help="the report file")
  args = parser.parse_args(argv)
  backend = jax.default_backend()
  own = "cpu" if backend == "cpu" else "accelerator"
  if args.section not in (None, own) and not (args.quick or args.output):
    parser.error(
      f"--section {args.section} on a {backend} needs --quick or --output:"
      f" the default file holds the {own} section."
    )
  section = SECTIONS[args.section or own](args.quick)
  report = _report.render(measure(section), section.notes, period=PERIOD)
  print(report)
  default = (
    RESULTS if backend == "cpu" else RESULTS.with_name(f"results-{backend}.md")
  )
  output = args.output or (None if args.quick else default)
  if output is not None:
    output.write_text(report, encoding="utf-8")


if __name__ == "__main__":
  main()
