"""The machinery of the two anchor examples, one concept per module.

``examples/finetune_l2sp.py`` (a fixed anchor: L2-SP and EWC) and
``examples/federated_fedprox.py`` (an anchor the server sets each round:
FedProx) are stories; what they share lives here: held-out evaluation
(``evaluation``). Each story's own design, tables and figures are in
``l2sp`` and ``fedprox`` (with ``synthetic``, FedProx's synthetic data);
their verdicts and pages come from ``examples/evidence.py``.
"""
