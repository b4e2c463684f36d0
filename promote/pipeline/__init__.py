"""The release pipeline: promote and rollback are one ``observe -> plan -> apply``.

A release request is a :class:`~promote.pipeline.model.Rule`: the promotion's
(:class:`promote.pipeline.promotion.Request`) reads a staging source and bumps the version;
the rollback's (:class:`promote.pipeline.rollback.RollbackRequest`) picks an earlier
release and reuses its version. Everything else is shared, once:

* :mod:`promote.pipeline.model` — the data: ``Listing``, ``Source``, ``Observed``, ``Plan``;
* :mod:`promote.pipeline.observe` — the reads (tags once, the current digest, the floating tag);
* :mod:`promote.pipeline.plan` — the pure plan: versions, timestamps, clobber and Flux checks;
* :mod:`promote.pipeline.apply` — the writes, the race check (``_Guard``), partial failures;
* :mod:`promote.pipeline.record_step` — the promotion record after the tags;
* :mod:`promote.pipeline.release` — the sequence itself and the one outputs writer.

Nothing here reads the environment or imports :mod:`promote.frontdoor`: the front door
parses the inputs and passes plain values down.

The public surface (``__all__``) is the modules the front door uses: the data, the two rules,
the record step's settings and the sequence; ``observe``/``plan``/``apply`` are the
sequence's own steps. This file imports nothing, so importing one module (``from
promote.pipeline import release`` imports the submodule) does not load the others.
"""

from __future__ import annotations

__all__ = ["model", "promotion", "record_step", "release", "rollback"]
