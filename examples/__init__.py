"""The examples, a package run from the repository root.

Each story runs as a module (``python -m examples.small_batch``,
``python -m examples.cifar10_resnet18``, ``python -m
examples.sharded_training``, ``python -m examples.study``, ``python -m
examples.finetune_l2sp``, ``python -m examples.federated_fedprox``) and the
tests import it as ``from examples import small_batch``. What the stories
share lives beside them: ``models`` (the networks), ``schedules`` (the
paper's step schedule), ``batching`` (epoch batches and padded evaluation),
``machine`` (the machine a result was measured on), ``evidence`` (the
comparisons, verdicts, power and pages of the study and both anchor
stories), and the packages ``study_lib`` and ``anchors_lib`` (the study's
and the two anchor stories' machinery).
"""
