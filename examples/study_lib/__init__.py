"""The machinery of ``examples/study.py``, one concept per module.

Data, methods, sweeps, the protocol, statistics and the report.
"""
