"""Benchmarks: ``python -m tests.benchmarks`` runs every ``bench_*`` module and prints results."""
