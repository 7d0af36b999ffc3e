"""Benchmarks against real services; each prints its figures next to a baseline from the same run.

``python -m bench.api``, ``python -m bench.delivery``, ``python -m bench.campaign`` and
``python -m bench.unsubscribe`` from the repository root; see ``bench/README.md``. They print
figures and never assert on timings.
"""
