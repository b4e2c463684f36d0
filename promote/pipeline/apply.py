"""Apply (I/O: writes): the planned tags, in order, with the checks promote and rollback share.

The immutable tag is written first, then the floating tag; around the floating tag's write
one :class:`_Guard` proves the immutable tag is still ours and Flux's choice (the race and
clobber checks after the writes). A failure part-way names what was and was not written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from promote import naming
from promote.errors import PartialPromotionError, PromoteError, RaceError

if TYPE_CHECKING:
    from promote.pipeline.model import Plan, Selector
    from promote.registry import Manifest, RegistryClient

#: Retryable statuses that say the request was not processed: a PUT ending in one of these
#: did not store the tag. Any other retryable failure (connection reset, 500, 502, 504...)
#: may have been stored before the answer was lost.
NOT_PROCESSED_STATUSES = frozenset({408, 429, 503})


def apply(
    the_plan: Plan,
    client: RegistryClient,
    manifest: Manifest,
    *,
    known_tags: Sequence[str],
    policy: Selector | None = None,
    log: Callable[[str], None] = lambda _m: None,
    warn: Callable[[str], None] = lambda _m: None,
) -> list[str]:
    """Write the planned tags in order (immutable first), verifying each; return them.

    The guarantees promote and rollback share, in one place:

    * before the floating tag moves, the tags are listed again and the immutable tag is
      re-read: it must still name this digest, no other immutable tag may share its
      version and timestamp, and the Flux model must select it, unambiguously;
    * after the last write the immutable tag is read once more (the floating tag's own PUT
      answer says what it names);
    * a run that finds a conflict leaves the floating tag on the digest the Flux model
      selects and raises :class:`RaceError` (exit 4) naming the state and the one command
      that resolves it;
    * a failure after a write, or a write whose outcome is unknown, raises
      :class:`PartialPromotionError` (exit 5) naming what is and is not written.
    """
    selector = policy if policy is not None else _default_policy(the_plan.env)
    guard = _Guard(the_plan, client, manifest, policy=selector, known_tags=known_tags, log=log)
    written: list[str] = []
    for step in the_plan.steps:
        if step.action != "put":
            continue
        try:
            _put_verified(client, step.tag, manifest, warn)
        except PromoteError as exc:
            if not written and not _unsure(exc):
                raise
            raise _partial(the_plan, written, exc, attempted=step.tag) from exc
        written.append(step.tag)
        log(f"wrote {the_plan.image}:{step.tag} -> {the_plan.digest}")
        try:
            if step.tag == the_plan.tag:
                guard.before_floating(warn)
            elif step.tag == the_plan.floating and the_plan.tag in written:
                guard.after_last_write()
        except RaceError:
            raise
        except PromoteError as exc:
            raise _partial(the_plan, written, exc) from exc
    return written


def _default_policy(env: str) -> Selector:
    from promote.flux import ImagePolicy

    return ImagePolicy.from_spec(naming.flux_policy_spec(env), name=env)


def _unsure(exc: Exception) -> bool:
    """Whether a failed PUT may still have stored its tag."""
    from promote.errors import DigestMismatchError, TransientError

    if isinstance(exc, DigestMismatchError):
        return exc.method == "PUT"
    return isinstance(exc, TransientError) and exc.status not in NOT_PROCESSED_STATUSES


def _put_verified(
    client: RegistryClient, tag: str, manifest: Manifest, warn: Callable[[str], None]
) -> None:
    """PUT ``tag``; a wrong digest in the answer is settled by re-reading the tag."""
    from promote.errors import DigestMismatchError

    try:
        client.put_manifest(tag, manifest)
    except DigestMismatchError as exc:
        if exc.method != "PUT":
            raise
        desc = client.head_manifest(tag)
        if desc is not None and desc.digest == manifest.digest:
            warn(
                f"the registry's Docker-Content-Digest answer to PUT {tag} was wrong ({exc}); "
                f"a re-read shows {tag} names {manifest.digest}, as written: going on"
            )
            return
        found = desc.digest if desc else "nothing"
        raise DigestMismatchError(
            f"{exc}; a re-read shows {tag} names {found}",
            method="PUT",
            url=exc.url,
        ) from exc


class _Guard:
    """The checks around the floating tag's write (see :func:`apply`)."""

    def __init__(
        self,
        the_plan: Plan,
        client: RegistryClient,
        manifest: Manifest,
        *,
        policy: Selector,
        known_tags: Sequence[str],
        log: Callable[[str], None],
    ) -> None:
        self.plan = the_plan
        self.client = client
        self.manifest = manifest
        self.policy = policy
        self.known = set(known_tags)
        self.log = log
        self.env = the_plan.env
        self.tags: list[str] = [*known_tags, the_plan.tag]
        self.floating_moved = False

    def _names(self, tag: str) -> str | None:
        desc = self.client.head_manifest(tag)
        return desc.digest if desc else None

    def before_floating(self, warn: Callable[[str], None]) -> None:
        """List again, re-read the immutable tag: prove it is ours and Flux's choice."""
        from promote.flux import filter_out_tags

        listed = self.client.list_tags()
        self.tags = [*listed, *([self.plan.tag] if self.plan.tag not in listed else [])]
        names = self._names(self.plan.tag)
        ours = naming.parse_immutable_tag(self.env, self.plan.tag)
        assert ours is not None
        history = naming.immutable_tags(self.env, self.tags)
        fresh = [h for h in history if h.tag not in self.known and h.tag != self.plan.tag]
        twins = [h.tag for h in history if h.tag != ours.tag and h.timestamp == ours.timestamp]
        outcome = self.policy.evaluate(filter_out_tags(self.tags))
        if names != self.plan.digest:
            self.conflict(f"{self.plan.tag} was overwritten right after this run wrote it", names)
        if twins or outcome.ambiguous or outcome.tag != self.plan.tag:
            what = (
                f"{', '.join(twins)} share{'s' if len(twins) == 1 else ''} the timestamp of "
                f"{self.plan.tag} (a tie Flux breaks arbitrarily)"
                if twins or outcome.ambiguous
                else f"another promotion wrote {', '.join(f.tag for f in fresh) or outcome.tag} "
                f"while this one wrote {self.plan.tag}"
            )
            self.conflict(what, names)
        same = [f.tag for f in fresh if f.version == ours.version]
        if same:
            warn(
                f"a concurrent promotion also wrote version {ours.version} ({', '.join(same)}); "
                f"this run's {self.plan.tag} is newer and is the one Flux selects"
            )

    def after_last_write(self) -> None:
        """The floating tag moved: the immutable tag must still name this digest."""
        self.floating_moved = True
        names = self._names(self.plan.tag)
        if names != self.plan.digest:
            self.conflict(
                f"{self.plan.tag} was overwritten while this run moved {self.plan.floating}",
                names,
            )

    def conflict(self, what: str, names: str | None) -> None:
        """Leave the floating tag on Flux's choice, then raise :class:`RaceError`."""
        from promote.flux import filter_out_tags

        plan = self.plan
        outcome = self.policy.evaluate(filter_out_tags(self.tags))
        winner = outcome.tag
        winner_digest = names if winner == plan.tag else (self._names(winner) if winner else None)
        if outcome.ambiguous:
            choice = (
                f"Flux's choice between {', '.join(outcome.candidates)} is a tie; the "
                f"project's Flux model picks {winner} ({winner_digest})"
            )
        else:
            choice = f"Flux selects {winner or 'nothing'} ({winner_digest or 'no digest'})"
        floating = ""
        if plan.floating:
            floating = self._settle_floating(winner_digest)
        ours = f"{plan.tag} names {names or 'nothing'}"
        if names != plan.digest:
            ours += (
                f", not this run's {plan.digest} (another run wrote it; its promotion "
                f"record, once written, names that run: command: trace with ref: {names})"
                if names
                else f", not this run's {plan.digest} (another run deleted it)"
            )
        if names == plan.digest:
            fix = (
                f"only if {plan.digest} should be deployed instead, run command: rollback "
                f"with rollback-to: {plan.digest} (it writes a newer timestamp)"
            )
        else:
            fix = (
                f"only if {plan.digest} should be deployed instead, re-run this promotion "
                "(it writes a new tag with a newer timestamp)"
            )
        raise RaceError(
            f"concurrent promotion: {what}. Registry state: {ours}; {choice}{floating}. "
            f"To resolve: {fix}. Serialize promotions with the workflow's concurrency group."
        )

    def _settle_floating(self, digest: str | None) -> str:
        """Point the floating tag at ``digest`` (Flux's choice) and say where it is."""
        floating = self.plan.floating
        try:
            now = self._names(floating)
            if digest is None or now == digest:
                moved = "moved by this run, " if self.floating_moved else ""
                return f"; {floating} names {now or 'nothing'} ({moved}left there)"
            source = (
                self.manifest
                if digest == self.manifest.digest
                else self.client.get_manifest(digest)
            )
            self.client.put_manifest(floating, source)
        except PromoteError as exc:
            return f"; {floating} could not be set to Flux's choice ({exc})"
        self.log(f"moved {floating} -> {digest} (Flux's choice)")
        return f"; {floating} now names {digest} (Flux's choice; set by this run)"


def _partial(
    the_plan: Plan, written: list[str], exc: Exception, *, attempted: str | None = None
) -> PartialPromotionError:
    """Name the registry state after a failure that followed (or was) a write.

    A write that failed at the connection level (reset, timeout: no status), with a
    gateway/server error (500, 502, 504...), or whose answer named the wrong digest may
    still have been applied by the registry, so that tag is reported as unconfirmed, not
    as unwritten. Only statuses that say the request was not processed (408, 429, 503)
    make it "NOT written".
    """
    from promote.errors import DigestMismatchError, TransientError

    missing = [t for t in the_plan.writes if t not in written]
    unsure = attempted if attempted in missing and _unsure(exc) else None
    not_written = [t for t in missing if t != unsure]
    before = the_plan.previous_digest or "what it named before"
    state = f"written: {', '.join(written) or 'nothing'}"
    if written:
        state += f" -> {the_plan.digest}"
    if not_written:
        state += f"; NOT written: {', '.join(not_written)}"
        if the_plan.floating in not_written:
            state += f" ({the_plan.floating} still names {before})"
    if unsure:
        if isinstance(exc, DigestMismatchError):
            why = "the registry's answer named another digest and a re-read did not confirm it"
            state += f"; UNCONFIRMED: {unsure} ({why})"
        else:
            status = exc.status if isinstance(exc, TransientError) else None
            why = (
                "the registry stopped answering during its write"
                if status is None
                else f"its write ended in HTTP {status}, which does not tell whether it was stored"
            )
            state += (
                f"; UNCONFIRMED: {unsure} ({why}: it "
                f"names {the_plan.digest} if the last attempt landed, else still {before})"
            )
    return PartialPromotionError(
        f"promotion stopped half-way: {str(exc).rstrip('. ')}. Registry state: {state}. "
        "Re-run the same promotion to complete it (it is idempotent).",
        written=list(written),
        missing=missing,
    )
