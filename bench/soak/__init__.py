"""The soak: the whole suite run again and again until flakiness shows (``make soak``).

``python -m bench.soak --runs N`` runs pytest N times, alternating the local and the docker backend
(the command lines of ``make test`` and ``make test-docker``, built by :mod:`bench.soak.plan`), each
run in a random order of its own (pytest-randomly's seed, recorded), with busy-loop processes
keeping the cores busy (:mod:`bench.soak.load`), under a deadline (:mod:`bench.soak.runner`).  Each
run's JUnit XML (:mod:`bench.soak.junit`) becomes per-test outcomes, and :mod:`bench.soak.summary`
counts the failures per test into one JSON document.  Never run by CI: it takes hours.
"""
