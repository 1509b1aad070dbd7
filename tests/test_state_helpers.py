"""The state helpers: restart_inner_loop, set_anchor, anchor_distance.

Their generic use over the table of optimizers is in ``test_common.py``; this
file checks what each one means: the recipes they serve (per-epoch restarts,
L2-SP, FedProx) against NumPy, the drift they measure, donation, stacks of
client states under ``jax.vmap``, and their errors.
"""

import chex
from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optax_prox
from tests import helpers
from tests.helpers import raises_naming

PARAMS = {"w": jnp.asarray([[1.0, -2.0], [0.5, 3.0]]), "b": jnp.asarray([0.25])}
GRADS = jax.tree.map(lambda p: 0.1 * jnp.ones_like(p), PARAMS)


def containers(inner):
  """Optimizer states that hold ``inner``'s state somewhere inside."""
  return {
    "bare": inner,
    "chain": optax.chain(optax.clip_by_global_norm(1.0), inner),
    "masked": optax.masked(inner, {"w": True, "b": False}),
    "multi_steps": optax.MultiSteps(inner, every_k_schedule=1),
  }


STATES = {
  **{
    f"trsgd-{name}": tx
    for name, tx in containers(optax_prox.trsgd(0.1, period=3)).items()
  },
  "tradam": optax_prox.tradam(0.01, period=3),
  "lion": optax_prox.trajectory_regularized(optax.lion, 1e-3, period=3),
  "inject_hyperparams": optax.inject_hyperparams(
    optax_prox.trsgd, static_args=("period",)
  )(learning_rate=0.1, period=3),
}


def anchored(state):
  """The anchor's leaves by name, none where ``optax.masked`` masks out.

  ``optax.masked`` keeps a ``MaskedNode`` there, which has no leaf.
  """
  anchor = optax.tree.get(state, "anchor")
  return {
    name: leaf
    for name, leaf in anchor.items()
    if not isinstance(leaf, optax.MaskedNode)
  }


def assert_anchored_at(state, tree):
  """The state's anchored leaves are ``tree``'s, cast to the anchor dtype."""
  anchor = anchored(state)
  chex.assert_trees_all_equal(
    anchor, {name: tree[name].astype(a.dtype) for name, a in anchor.items()}
  )


@pytest.mark.optax_not_strict  # optax's lion, clipping and MultiSteps
@pytest.mark.parametrize("tx", STATES.values(), ids=STATES)
def test_restart_takes_the_next_params_as_anchor_jitted(tx):
  update = jax.jit(tx.update)
  restart = jax.jit(optax_prox.restart_inner_loop)
  params, state = PARAMS, tx.init(PARAMS)
  for _ in range(2):  # mid inner loop
    updates, state = update(GRADS, state, params)
    params = optax.apply_updates(params, updates)
  before = anchored(state)
  _, state = update(GRADS, restart(state), params)
  assert_anchored_at(state, params)
  for path, leaf in anchored(state).items():  # really a new anchor
    assert not np.array_equal(leaf, before[path])


@pytest.mark.optax_not_strict  # optax's lion, clipping and MultiSteps
@pytest.mark.parametrize("tx", STATES.values(), ids=STATES)
def test_set_anchor_and_anchor_distance_jitted(tx):
  state = tx.init(PARAMS)
  target = jax.tree.map(lambda p: p + 2.0, PARAMS)
  state = jax.jit(optax_prox.set_anchor)(state, target)
  assert_anchored_at(state, target)
  # Every anchored leaf is 2 away in each entry.
  expected = 2.0 * np.sqrt(sum(leaf.size for leaf in anchored(state).values()))
  distance = jax.jit(optax_prox.anchor_distance)(state, PARAMS)
  assert distance.dtype == jnp.float32 and distance.shape == ()
  np.testing.assert_allclose(distance, expected, rtol=1e-6)
  # The next update pulls toward the new anchor instead of replacing it.
  _, state = tx.update(GRADS, state, PARAMS)
  assert_anchored_at(state, target)


def test_restart_gives_the_full_step_and_keeps_the_outer_step():
  lr = helpers.Piecewise([0.1, 0.01], [3])
  tx = optax_prox.trsgd(lr, period=5, lambda_w=0.0, momentum=None)
  w, state = jnp.zeros(1), tx.init(jnp.zeros(1))
  steps = []
  for k in range(4):
    if k == 2:
      state = optax_prox.restart_inner_loop(state)
    updates, state = tx.update(jnp.ones(1), state, w)
    steps.append(float(-updates[0]))
    w = optax.apply_updates(w, updates)
  # k=0, 1: positions 0, 1 at eta 0.1; restart at k=2: position 0 again,
  # eta still 0.1 (k=2 < 3); k=3: position 1 at the decayed eta 0.01.
  np.testing.assert_allclose(steps, [0.1, 0.05, 0.1, 0.005], rtol=1e-6)


def test_nnx_optimizer_state_can_be_restarted_and_measured_inside_nnx_jit():

  class Model(nnx.Module):
    def __init__(self, rngs):
      self.linear = nnx.Linear(2, 3, rngs=rngs)

    def __call__(self, x):
      return self.linear(x)

  model = Model(nnx.Rngs(0))
  optimizer = nnx.Optimizer(
    model, optax_prox.trsgd(0.1, period=4), wrt=nnx.Param
  )

  @nnx.jit(static_argnames="restart")
  def train_step(model, optimizer, x, restart):
    if restart:
      optimizer.opt_state = optax_prox.restart_inner_loop(optimizer.opt_state)
    grads = nnx.grad(lambda m: jnp.sum(m(x) ** 2))(model)
    optimizer.update(model, grads)
    return optax_prox.anchor_distance(
      optimizer.opt_state, nnx.state(model, nnx.Param)
    )

  x = jnp.ones((1, 2))
  distances = [
    float(train_step(model, optimizer, x, restart=False)) for _ in range(3)
  ]
  before = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  after_restart = float(train_step(model, optimizer, x, restart=True))
  after = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  # After a restart the anchor is the params before the update, so the
  # distance is the length of that one update.
  step_length = float(optax.tree.norm(optax.tree.sub(after, before)))
  np.testing.assert_allclose(after_restart, step_length, rtol=1e-5)
  assert distances[0] > 0 and distances[2] > distances[1] > after_restart


# Each state helper with the arguments it takes after the optimizer state.
EVERY_HELPER = pytest.mark.parametrize(
  "helper, args",
  [
    (optax_prox.restart_inner_loop, ()),
    (optax_prox.set_anchor, (PARAMS,)),
    (optax_prox.anchor_distance, (PARAMS,)),
  ],
)


@EVERY_HELPER
def test_a_state_without_ours_is_refused(helper, args):
  with raises_naming(ValueError, "opt_state"):
    helper(optax.sgd(0.1).init(PARAMS), *args)


@pytest.mark.parametrize(
  "anchor, path",
  [
    ({"w": PARAMS["w"]}, "['b']"),
    ({**PARAMS, "c": jnp.ones(1)}, "['c']"),
    ({"w": jnp.ones((2, 3)), "b": PARAMS["b"]}, "['w']"),
  ],
  ids=["missing", "extra", "shape"],
)
@pytest.mark.parametrize(
  "helper, name",
  [(optax_prox.set_anchor, "anchor"), (optax_prox.anchor_distance, "params")],
)
def test_a_tree_unlike_the_params_is_refused_naming_the_path(
  helper, name, anchor, path
):
  state = optax_prox.trsgd(0.1).init(PARAMS)
  with raises_naming(ValueError, name, path):
    helper(state, anchor)


def test_set_anchor_casts_to_the_stored_dtype():
  tx = optax_prox.trsgd(0.1, anchor_dtype=jnp.bfloat16)
  state = optax_prox.set_anchor(tx.init(PARAMS), PARAMS)
  for leaf in jax.tree.leaves(optax.tree.get(state, "anchor")):
    assert leaf.dtype == jnp.bfloat16


class ConvNet(nnx.Module):
  """A layer with parameters and one with batch statistics."""

  def __init__(self, rngs):
    self.linear = nnx.Linear(2, 3, rngs=rngs)
    self.norm = nnx.BatchNorm(3, rngs=rngs)

  def __call__(self, x):
    return self.norm(self.linear(x))


@pytest.mark.parametrize(
  "helper", [optax_prox.set_anchor, optax_prox.anchor_distance]
)
@pytest.mark.parametrize(
  "mistake", [lambda model: model, nnx.state], ids=["model", "whole-state"]
)
def test_helpers_given_batch_statistics_name_them(helper, mistake):
  # The anchor holds the params alone (BatchNorm's scale and bias among
  # them), never the running statistics.
  model = ConvNet(nnx.Rngs(0))
  state = nnx.Optimizer(model, optax_prox.trsgd(0.1), wrt=nnx.Param).opt_state
  with raises_naming(ValueError, "['norm']['mean']", "nnx.Param"):
    helper(state, mistake(model))
  helper(state, nnx.state(model, nnx.Param))  # what the message asks for


@EVERY_HELPER
def test_helpers_given_an_nnx_optimizer_ask_for_its_opt_state(helper, args):
  model = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, optax_prox.trsgd(0.1), wrt=nnx.Param)
  with raises_naming(TypeError, "opt_state", "optimizer.opt_state"):
    helper(optimizer, *args)


# ------------------------------------------------------------ the drift ----


def test_anchor_distance_is_the_drift_of_the_last_updates_inner_loop():
  tx = optax_prox.trsgd(0.1, period=2)
  update = jax.jit(tx.update)
  params, state = PARAMS, tx.init(PARAMS)
  distances = [optax_prox.anchor_distance(state, params)]  # no update yet
  expected = [0.0]
  for _ in range(4):
    updates, state = update(GRADS, state, params)
    params = optax.apply_updates(params, updates)
    distances.append(optax_prox.anchor_distance(state, params))
    anchor = optax.tree.get(state, "anchor")
    expected.append(optax.tree.norm(optax.tree.sub(params, anchor)))
  np.testing.assert_allclose(distances, expected, rtol=1e-6)
  # Largest at each inner loop's end (after updates 2 and 4), not 0 there.
  assert 0 < distances[1] < distances[2] and 0 < distances[3] < distances[4]
  # A restart keeps the last loop's anchor until the next update.
  restarted = optax_prox.restart_inner_loop(state)
  np.testing.assert_array_equal(
    optax_prox.anchor_distance(restarted, params), distances[-1]
  )


def test_anchor_distance_counts_complex_params_by_modulus():
  tx = optax.chain(
    optax_prox.proximal_regularize(0.1, period=None), optax.sgd(0.1)
  )
  params = {"z": jnp.full(3, 1 + 1j, jnp.complex64)}
  state = optax_prox.set_anchor(tx.init(params), {"z": jnp.zeros(3)})
  np.testing.assert_allclose(
    optax_prox.anchor_distance(state, params), np.sqrt(6.0), rtol=1e-6
  )


def proximal_states(state):
  """The proximal states in ``state``, in order."""
  is_proximal = lambda node: isinstance(
    node, optax_prox.ProximalRegularizeState
  )
  return [
    n for n in jax.tree.leaves(state, is_leaf=is_proximal) if is_proximal(n)
  ]


def test_helpers_act_on_every_proximal_state_of_a_multi_transform():
  # Two groups, each its own TRSGD: the helpers treat both alike.
  tx = optax.multi_transform(
    {
      "body": optax_prox.trsgd(0.1, period=3),
      "head": optax_prox.trsgd(0.01, period=5),
    },
    {"w": "body", "b": "head"},
  )
  state = tx.init(PARAMS)
  target = jax.tree.map(lambda p: p + 1.0, PARAMS)
  state = optax_prox.set_anchor(state, target)
  body, head = proximal_states(state)
  np.testing.assert_array_equal(body.anchor["w"], target["w"])
  np.testing.assert_array_equal(head.anchor["b"], target["b"])
  # Every anchored leaf, of either group, is 1 away in each entry.
  size = sum(p.size for p in jax.tree.leaves(PARAMS))
  np.testing.assert_allclose(
    optax_prox.anchor_distance(state, PARAMS), np.sqrt(size), rtol=1e-6
  )
  restarted = optax_prox.restart_inner_loop(state)
  assert [int(s.position) for s in proximal_states(restarted)] == [-1, -1]


# ------------------------------------------------------------- donation ----


@pytest.mark.parametrize(
  "tx",
  [
    optax.chain(
      optax_prox.proximal_regularize(0.5, period=None), optax.sgd(0.1)
    ),
    optax_prox.tradam(0.01, period=3),
  ],
  ids=["l2-sp", "tradam"],
)
def test_nnx_jit_donates_a_model_and_its_optimizer_anchored_at_it(tx):
  model = ConvNet(nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
  optimizer.opt_state = optax_prox.set_anchor(
    optimizer.opt_state, nnx.state(model, nnx.Param)
  )
  x = jax.random.normal(jax.random.key(0), (4, 2))

  @nnx.jit(donate_argnums=(0, 1))
  def train_step(model, optimizer):
    grads = nnx.grad(lambda m: jnp.mean(m(x) ** 2))(model)
    optimizer.update(model, grads)

  before = jax.tree.map(jnp.copy, nnx.to_pure_dict(nnx.state(model, nnx.Param)))
  for _ in range(3):
    train_step(model, optimizer)
  after = nnx.state(model, nnx.Param)
  distance = optax_prox.anchor_distance(optimizer.opt_state, after)
  moved = optax.tree.norm(optax.tree.sub(nnx.to_pure_dict(after), before))
  assert float(distance) > 0 and float(moved) > 0


def test_helpers_return_a_new_state_and_leave_theirs_alone():
  tx = optax_prox.trsgd(0.1, period=4)
  state = tx.init(PARAMS)
  _, state = tx.update(GRADS, state, PARAMS)
  position = int(optax.tree.get(state, "position"))
  restarted = optax_prox.restart_inner_loop(state)
  moved = optax_prox.set_anchor(state, jax.tree.map(jnp.zeros_like, PARAMS))
  assert int(optax.tree.get(state, "position")) == position == 1
  assert int(optax.tree.get(restarted, "position")) == -1
  assert int(optax.tree.get(moved, "position")) == 1
  chex.assert_trees_all_equal(
    optax.tree.get(state, "anchor"), PARAMS
  )  # the update's anchor, untouched by set_anchor's copy
  chex.assert_trees_all_equal(
    optax.tree.get(moved, "anchor"), jax.tree.map(jnp.zeros_like, PARAMS)
  )


def test_named_counters_survive_jit_orbax_and_optax_tree_get(tmp_path):
  tx = optax_prox.tradam(1e-3, period=3)
  state = tx.init(PARAMS)
  update = jax.jit(tx.update)
  params = PARAMS
  for _ in range(4):
    updates, state = update(GRADS, state, params)
    params = optax.apply_updates(params, updates)
  proximal = state.proximal
  assert isinstance(proximal, optax_prox.ProximalRegularizeState)
  assert proximal._fields == ("anchor", "step", "position", "importance")
  assert proximal.importance is None  # unweighted: no leaves, no cost
  for name, value in [("step", 4), ("position", 1)]:
    counter = optax.tree.get(state, name)
    assert counter.shape == () and counter.dtype == jnp.int32, counter
    assert int(counter) == value
  restored = helpers.save_and_restore(tmp_path / "ckpt", state)
  chex.assert_trees_all_equal(restored, state)
  chex.assert_trees_all_equal_shapes_and_dtypes(restored, state)
  assert isinstance(restored.proximal, optax_prox.ProximalRegularizeState)
  # The restored state goes on exactly as the one that was saved.
  chex.assert_trees_all_equal(
    update(GRADS, restored, params), update(GRADS, state, params)
  )


# --------------------------------------------------------- the recipes ----


def test_l2_sp_matches_numpy_and_never_moves_the_anchor():
  mu, lr, steps = 0.3, 0.1, 100
  w0 = np.asarray(helpers.W0, np.float32)
  tx = optax.chain(
    optax_prox.proximal_regularize(mu, period=None), optax.sgd(lr)
  )
  trajectory, state = helpers.run(
    tx,
    lambda w, k: (
      jnp.asarray(helpers.A, w.dtype) @ w - jnp.asarray(helpers.B, w.dtype)
    ),
    jnp.asarray(w0),
    steps,
  )
  w = w0.astype(np.float64)
  for _ in range(steps):  # SGD on f + mu/2 ||w - w0||^2
    w = w - lr * (helpers.A @ w - helpers.B + mu * (w - w0))
  np.testing.assert_allclose(trajectory[-1], w, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(optax.tree.get(state, "anchor"), w0)


def test_fedprox_clients_and_server_match_numpy():
  # Two clients with their own quadratics, 5 rounds of 6 local SGD steps
  # pulled toward the global model, which the server then averages.
  mu, lr, rounds, local_steps = 0.5, 0.1, 5, 6
  centers = [np.asarray([1.0, -1.0]), np.asarray([3.0, 2.0])]
  tx = optax.chain(
    optax_prox.proximal_regularize(mu, period=None), optax.sgd(lr)
  )
  update = jax.jit(tx.update)
  global_w = jnp.zeros(2)
  states = [tx.init(global_w) for _ in centers]
  for _ in range(rounds):
    finals = []
    for client, center in enumerate(centers):
      state = optax_prox.set_anchor(states[client], global_w)
      w = global_w
      for _ in range(local_steps):
        updates, state = update(w - jnp.asarray(center, w.dtype), state, w)
        w = optax.apply_updates(w, updates)
      states[client] = state
      finals.append(w)
    global_w = (finals[0] + finals[1]) / 2

  expected = np.zeros(2)
  for _ in range(rounds):
    finals = []
    for center in centers:
      w = expected.copy()
      for _ in range(local_steps):
        w = w - lr * ((w - center) + mu * (w - expected))
      finals.append(w)
    expected = (finals[0] + finals[1]) / 2
  np.testing.assert_allclose(global_w, expected, rtol=1e-5)


# ----------------------------------------------- a stack of client states ----

TX = optax.chain(
  optax_prox.proximal_regularize(0.5, period=None), optax.sgd(0.1)
)
# Four clients that moved 0, 1, 2 and 3 in each of the three entries of w
# away from a server model at 0: distances 0, sqrt(3), 2 sqrt(3), 3 sqrt(3).
CLIENTS = {"w": jnp.arange(4.0)[:, None] * jnp.ones((4, 3))}
SERVER = {"w": jnp.zeros(3)}


def stacked_states():
  """Four client states, one per row of CLIENTS, anchored at SERVER."""
  states = jax.vmap(TX.init)(CLIENTS)
  return jax.vmap(optax_prox.set_anchor, in_axes=(0, None))(states, SERVER)


@EVERY_HELPER
def test_a_stack_of_states_outside_vmap_shows_the_vmap_line(helper, args):
  # Stacked states beside unstacked params would broadcast silently.
  states = jax.vmap(TX.init)(CLIENTS)
  with raises_naming(
    ValueError, "opt_state", f"jax.vmap(optax_prox.{helper.__name__}"
  ):
    helper(states, *({"w": jnp.zeros(3)} for _ in args))


def test_anchor_distance_under_vmap_is_one_per_client():
  states = stacked_states()
  distances = jax.vmap(optax_prox.anchor_distance)(states, CLIENTS)
  np.testing.assert_allclose(distances, np.sqrt(3.0) * np.arange(4.0))
  # One params tree for every client: each client's anchor against it.
  to_server = jax.vmap(optax_prox.anchor_distance, in_axes=(0, None))(
    states, SERVER
  )
  np.testing.assert_array_equal(to_server, np.zeros(4))


def test_set_anchor_under_vmap_sets_one_for_all_or_one_each():
  states = jax.vmap(TX.init)(CLIENTS)
  for anchor, in_axes, expected in [
    (SERVER, (0, None), {"w": jnp.zeros((4, 3))}),
    (CLIENTS, (0, 0), CLIENTS),
  ]:
    new = jax.vmap(optax_prox.set_anchor, in_axes=in_axes)(states, anchor)
    chex.assert_trees_all_equal(optax.tree.get(new, "anchor"), expected)
    np.testing.assert_array_equal(
      optax.tree.get(new, "position"), np.zeros(4, np.int32)
    )


def test_restart_inner_loop_under_vmap_restarts_every_client():
  states = stacked_states()
  _, states = jax.vmap(TX.update)(CLIENTS, states, CLIENTS)
  restarted = jax.vmap(optax_prox.restart_inner_loop)(states)
  np.testing.assert_array_equal(
    optax.tree.get(restarted, "position"), np.full(4, -1, np.int32)
  )


def test_fedprox_clients_in_one_vmapped_round_match_one_by_one():
  # Each client takes 5 local steps from the server model toward its own
  # data (gradient w - target), pulled back by mu (w - server).
  targets = {"w": jnp.asarray([[1.0, 2.0, 3.0], [-1.0, 0.0, 1.0]])}
  server = {"w": jnp.asarray([0.5, 0.5, 0.5])}

  def local_training(state, target):
    state = optax_prox.set_anchor(state, server)
    w = server
    for _ in range(5):
      grads = jax.tree.map(jnp.subtract, w, target)
      updates, state = TX.update(grads, state, w)
      w = optax.apply_updates(w, updates)
    return w, optax_prox.anchor_distance(state, w)

  states = jax.vmap(TX.init)(targets)
  finals, distances = jax.jit(jax.vmap(local_training))(states, targets)
  for client in range(2):
    w, _ = local_training(TX.init(server), {"w": targets["w"][client]})
    chex.assert_trees_all_close(w, {"w": finals["w"][client]}, rtol=1e-6)
  # The per-client distances are those of the clients' own models.
  drift = jnp.linalg.norm(finals["w"] - server["w"][None], axis=1)
  np.testing.assert_allclose(distances, drift, rtol=1e-6)


WEIGHTED = optax.chain(
  optax_prox.proximal_regularize(1.0, None, weighted=True), optax.sgd(0.1)
)
TREE = {"w": jnp.ones(2), "b": jnp.ones(1)}


@pytest.mark.parametrize(
  ("importance", "names"),
  [
    ({"w": jnp.ones(2)}, ("importance", "['b']", "lacks")),
    ({"w": jnp.ones(3), "b": jnp.ones(1)}, ("importance", "['w']", "(3,)")),
    (
      {"w": jnp.array([1.0, -1.0]), "b": jnp.ones(1)},
      ("importance", "['w']", ">= 0"),
    ),
    (
      {"w": jnp.ones(2), "b": jnp.array([jnp.nan])},
      ("importance", "['b']", "finite"),
    ),
  ],
)
def test_a_bad_importance_is_refused_naming_it_and_the_path(importance, names):
  state = WEIGHTED.init(TREE)
  with raises_naming(ValueError, *names):
    optax_prox.set_anchor(state, TREE, importance=importance)


def test_importance_for_an_unweighted_pull_asks_for_weighted_true():
  tx = optax_prox.proximal_regularize(1.0, None)
  with raises_naming(ValueError, "importance", "weighted=True"):
    optax_prox.set_anchor(tx.init(TREE), TREE, importance=TREE)


def test_set_anchor_keeps_the_importance_unless_given_one():
  importance = {"w": jnp.array([0.0, 2.0]), "b": jnp.array([3.0])}
  state = optax_prox.set_anchor(WEIGHTED.init(TREE), TREE, importance)
  state = optax_prox.set_anchor(state, TREE)
  chex.assert_trees_all_equal(optax.tree.get(state, "importance"), importance)
