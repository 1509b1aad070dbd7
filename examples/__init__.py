"""The examples, a package run from the repository root.

Each story runs as a module (``python -m examples.small_batch``,
``python -m examples.cifar10_resnet18``, ``python -m
examples.sharded_training``, ``python -m examples.study``) and the tests
import it as ``from examples import small_batch``. What the stories share
lives beside them: ``models`` (the networks), ``schedules`` (the paper's
step schedule) and ``batching`` (epoch batches and padded evaluation).
"""
