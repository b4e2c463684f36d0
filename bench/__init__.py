"""Benchmarks of promote against skopeo and docker (``make bench``; see BENCHMARKS.md).

Scripts, not timed tests: :mod:`bench.run` measures everything in one run on a real
loopback registry and writes ``bench/results/results.json``, the plot and
``BENCHMARKS.md`` (:mod:`bench.report`). The request-count scenario is also used by
``tests/test_bench_smoke.py``.
"""
