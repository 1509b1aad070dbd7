"""The machinery of the two anchor examples, one concept per module.

``examples/finetune_l2sp.py`` (a fixed anchor: L2-SP) and
``examples/federated_fedprox.py`` (an anchor the server sets each round:
FedProx) are stories; what they share lives here: held-out evaluation
(``evaluation``), replicated verdicts (``verdicts``) and writing results
(``output``). Each story's own tables and figure are in ``l2sp_report``
and ``fedprox_report``.
"""
