"""The CIFAR example: its binary loader, augmentation and two epochs.

The data set is a tiny one the test writes in exactly the CIFAR binary
format, so nothing is downloaded.
"""

import os

import chex
from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from examples import batching
from examples import cifar10_resnet18 as cifar
from examples import models
import optax_prox


def write_binary(path, images_hwc, *label_columns):
  """Writes records of label byte(s) then the CHW pixels, like CIFAR does."""
  pixels = images_hwc.transpose(0, 3, 1, 2).reshape(len(images_hwc), -1)
  labels = np.stack(label_columns, axis=1)
  np.concatenate([labels, pixels], axis=1).astype(np.uint8).tofile(path)


def write_tiny_cifar10(data_dir, per_file=2, seed=0):
  """Five train files and a test file of ``per_file`` random records each."""
  rng = np.random.default_rng(seed)
  folder = os.path.join(data_dir, "cifar-10-batches-bin")
  os.makedirs(folder)
  written = {}
  for name in cifar.LAYOUTS["cifar10"].train_files + ("test_batch.bin",):
    images = rng.integers(0, 256, (per_file, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, per_file, dtype=np.uint8)
    write_binary(os.path.join(folder, name), images, labels)
    written[name] = (images, labels)
  return written


def test_loader_reads_images_in_hwc_and_labels(tmp_path):
  written = write_tiny_cifar10(tmp_path)
  data = cifar.load_cifar(str(tmp_path), "cifar10")
  train_names = cifar.LAYOUTS["cifar10"].train_files
  chex.assert_trees_all_equal(
    (data.train_images, data.train_labels, data.test_images),
    (
      np.concatenate([written[n][0] for n in train_names]),
      np.concatenate([written[n][1] for n in train_names]),
      written["test_batch.bin"][0],
    ),
  )
  assert data.train_images.shape == (10, 32, 32, 3)
  assert data.train_labels.dtype == np.int32 and data.num_classes == 10


def test_cifar100_loader_uses_the_fine_label(tmp_path):
  folder = tmp_path / "cifar-100-binary"
  folder.mkdir()
  images = np.zeros((3, 32, 32, 3), np.uint8)
  images[:, 0, 1, 2] = [7, 8, 9]  # blue channel of the pixel at row 0, col 1
  coarse, fine = np.array([1, 2, 3]), np.array([97, 98, 99])
  for name in ("train.bin", "test.bin"):
    write_binary(folder / name, images, coarse, fine)
  data = cifar.load_cifar(str(tmp_path), "cifar100")
  chex.assert_trees_all_equal(
    (data.train_labels, data.test_images[:, 0, 1, 2]),
    (fine, np.array([7, 8, 9])),
  )
  assert data.num_classes == 100


def test_missing_data_names_the_expected_files(tmp_path):
  with pytest.raises(FileNotFoundError, match="cifar-10-batches-bin") as error:
    cifar.load_cifar(str(tmp_path), "cifar10")
  for name in ("data_batch_1.bin", "data_batch_5.bin", "test_batch.bin"):
    assert name in str(error.value)
  (tmp_path / "cifar-100-binary").mkdir()
  (tmp_path / "cifar-100-binary" / "train.bin").write_bytes(b"")
  with pytest.raises(FileNotFoundError, match="missing test.bin"):
    cifar.load_cifar(str(tmp_path), "cifar100")


def test_a_truncated_file_is_reported(tmp_path):
  folder = tmp_path / "cifar-100-binary"
  folder.mkdir()
  for name in ("train.bin", "test.bin"):
    (folder / name).write_bytes(bytes(100))
  with pytest.raises(ValueError, match="not a multiple"):
    cifar.load_cifar(str(tmp_path), "cifar100")


def test_crops_come_from_the_padded_image_and_flip_whole_rows():
  images = jnp.arange(2 * 32 * 32 * 3).reshape(2, 32, 32, 3) % 251
  images = images.astype(jnp.uint8) + 1  # no zero pixels but the padding
  crop_and_flip = jax.jit(cifar.random_crop_and_flip)  # one compilation
  out = np.asarray(crop_and_flip(jax.random.PRNGKey(3), images))
  padded = np.pad(np.asarray(images), ((0, 0), (4, 4), (4, 4), (0, 0)))
  for image, crop in zip(padded, out):
    candidates = [
      image[r : r + 32, c : c + 32][:, ::flip]
      for r in range(9)
      for c in range(9)
      for flip in (1, -1)
    ]
    assert any(np.array_equal(crop, c) for c in candidates)


def test_padded_evaluation_weighs_each_example_once():
  logits = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
  labels = np.array([0, 2, 1, 1, 0], np.int32)
  chunks = batching.padded_chunks(logits, labels, 2)
  assert [a.shape for a in chunks] == [(3, 2, 3), (3, 2), (3, 2)]
  chex.assert_trees_all_equal(chunks[2].ravel(), np.array([1, 1, 1, 1, 1, 0]))
  losses, correct = batching.summed_loss_and_correct(lambda x: x, chunks)
  assert losses.shape == correct.shape == (3,)
  shifted = logits - logits.max(axis=1, keepdims=True)
  log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
  expected_loss = -log_softmax[np.arange(5), labels].sum()
  chex.assert_trees_all_close(float(losses.sum()), expected_loss, rtol=1e-6)
  assert float(correct.sum()) == np.sum(logits.argmax(axis=1) == labels)


def small_random_resnet(num_classes):
  """A narrow ResNet-18 with random params drawn by numpy.

  Building it eagerly compiles a truncated-normal initializer per layer
  shape, which takes about a minute on a small CPU; the test only needs
  some random params.
  """
  abstract = nnx.eval_shape(
    lambda: models.ResNet18(num_classes, nnx.Rngs(0), width=4)
  )
  rng = np.random.default_rng(0)

  def fill(path, leaf):
    name = jax.tree_util.keystr(path)
    if "mean" in name or "bias" in name:
      return jnp.zeros(leaf.shape, leaf.dtype)
    if "var" in name or "scale" in name:
      return jnp.ones(leaf.shape, leaf.dtype)
    fan_in = np.prod(leaf.shape[:-1])
    return jnp.asarray(
      rng.normal(size=leaf.shape) / np.sqrt(fan_in), leaf.dtype
    )

  graphdef, state = nnx.split(abstract)
  return nnx.merge(graphdef, jax.tree_util.tree_map_with_path(fill, state))


def as_arrays(tree):
  """Plain numpy arrays from a tree that may hold ``nnx.Variable`` leaves."""
  is_variable = lambda x: isinstance(x, nnx.Variable)
  return jax.tree.map(
    lambda x: np.array(x[...] if is_variable(x) else x),
    tree,
    is_leaf=is_variable,
  )


def proximal_states(tree):
  is_prox = lambda x: isinstance(x, optax_prox.ProximalRegularizeState)
  return [x for x in jax.tree.leaves(tree, is_leaf=is_prox) if is_prox(x)]


def params_of(graphdef, state):
  """The model's params in ``state``, copied to numpy."""
  model, _ = nnx.merge(graphdef, state)
  return as_arrays(nnx.to_pure_dict(nnx.state(model, nnx.Param)))


def test_each_trsgd_epoch_restarts_the_inner_loop(tmp_path):
  write_tiny_cifar10(tmp_path, per_file=2)
  data = cifar.load_cifar(str(tmp_path), "cifar10")
  args = cifar.parse_args(["--optimizer", "trsgd", "--batch-size", "5"])
  assert (args.learning_rate, args.weight_decay, args.period) == (0.1, 1e-4, 10)
  model = small_random_resnet(data.num_classes)
  optimizer = nnx.Optimizer(
    model, cifar.make_optimizer(args, total_steps=4), wrt=nnx.Param
  )
  graphdef, state = nnx.split((model, optimizer))
  train_epoch = cifar.make_epoch(graphdef, cifar.OPTIMIZERS["trsgd"].restarts)
  images, labels = (
    jnp.asarray(data.train_images),
    jnp.asarray(data.train_labels),
  )
  # Two steps an epoch: an epoch ends at position 2 of a period of 10.
  batches = batching.epoch_batches(jax.random.PRNGKey(0), 10, 5)
  assert batches.shape == (2, 5)
  assert sorted(np.asarray(batches).ravel()) == list(range(10))

  params = [params_of(graphdef, state)]  # at the start of each epoch
  for epoch in range(2):
    state, loss, accuracy = train_epoch(
      state, images, labels, batches, jax.random.PRNGKey(epoch)
    )
    assert np.isfinite(loss) and 0 <= accuracy <= 1
    params.append(params_of(graphdef, state))
    model, optimizer = nnx.merge(graphdef, state)
    assert int(optimizer.step[...]) == 2 * (epoch + 1)
    (prox,) = proximal_states(optimizer.opt_state)
    # The epoch's first step took the params it started from as the anchor;
    # without the restart the second epoch would keep the first's anchor.
    chex.assert_trees_all_equal(
      as_arrays(nnx.to_pure_dict(prox.anchor)), params[epoch]
    )
  changed = jax.tree.map(
    lambda a, b: not np.array_equal(a, b), params[1], params[0]
  )
  assert all(jax.tree.leaves(changed))
  batch_stats = as_arrays(nnx.to_pure_dict(nnx.state(model, nnx.BatchStat)))
  chex.assert_tree_all_finite(batch_stats)


def test_exactly_the_tr_optimizers_restart_an_inner_loop():
  args = cifar.parse_args([])
  params = {"w": jnp.zeros(3)}
  for name, optimizer in cifar.OPTIMIZERS.items():
    state = optimizer.make(0.1, args).init(params)
    assert bool(proximal_states(state)) == optimizer.restarts, name
