"""Benchmarks against real services; each prints its figures next to a baseline from the same run.

``python -m bench.api`` and ``python -m bench.delivery`` from the repository root; see
``bench/README.md``. They print figures and never assert on timings.
"""
