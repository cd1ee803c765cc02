"""Benchmarks of the book's performance targets (attack throughput, training epochs, the book's wall time); see
README.md.

Run them from the repository root as modules, e.g. ``python -m benchmarks.attack_throughput``, or all with
``make bench``.
"""
