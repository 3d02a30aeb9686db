"""Benchmarks of ``agents_core.db`` against raw PyMongo: commands, client CPU and growth.

Run ``python -m benchmarks`` (``--quick`` for a smoke run, ``--json PATH`` for the records);
see ``benchmarks/README.md`` for what is measured and the latest figures.
"""
