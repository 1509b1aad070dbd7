"""The machinery of ``examples/study.py``, one concept per module.

Data, methods, sweeps, the design, the protocol and the report; the
statistics and the page rendering are ``examples/evidence.py``'s.
"""
