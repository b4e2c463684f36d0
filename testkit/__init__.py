"""Test support for the test suite, ``bench/`` and the scripts (never shipped in the image).

* :mod:`testkit.registry` - a real CNCF distribution registry on loopback;
  :mod:`testkit.tokenserver` its token service; :mod:`testkit.seed` seeds it independently
  of promote's client; :mod:`testkit.fixtures` - the pytest fixtures (``tests/conftest.py``).
* :mod:`testkit.engine` - the one in-process runner (``engine``) and the one
  ``python entrypoint.py`` subprocess runner (``entrypoint``).
* :mod:`testkit.proxy` - the one forwarding proxy: fault schedule and hooks for the tests,
  streamed and counted for the benchmarks (``counting_proxy``).
* :mod:`testkit.github_server` (+ :mod:`testkit.github_records`) - GitHub's REST API, local.
* :mod:`testkit.docker` - Docker engine, local base image, act; :mod:`testkit.gitops` -
  the example GitOps tree aimed at a local registry; :mod:`testkit.expressions` - the
  workflow expressions; :mod:`testkit.figures` - figures the suites measure and print.
"""
