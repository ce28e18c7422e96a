"""The soak: the whole suite run again and again until flakiness shows (``make soak``).

Each run's JUnit XML (:mod:`bench.soak.junit`) becomes per-test outcomes, and
:mod:`bench.soak.summary` counts the failures per test into one JSON document.
"""
