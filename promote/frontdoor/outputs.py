"""Every output of the action, declared once (``action.yml`` is generated from this table).

Names are a contract: workflows read them as ``steps.<id>.outputs.<name>``; never rename.
"""

from __future__ import annotations

OUTPUTS: tuple[tuple[str, str], ...] = (
    # promote / rollback
    ("digest", "Promoted (or restored) manifest or index digest, verified equal to the source."),
    ("version", "Version `X.Y.Z` of the immutable tag."),
    (
        "tag",
        "The immutable tag, e.g. `production-v1.4.3-abc1234-1767225600` "
        "(`build-tags`: the build tag).",
    ),
    (
        "tags",
        "Newline list of the full references written (empty when nothing changed; "
        "`build-tags`: to push).",
    ),
    ("image", "`<image>@<digest>`."),
    ("short-sha", "Seven-character commit sha in the tag (also `build-tags`)."),
    ("timestamp", "Unix seconds in the tag (also `build-tags`)."),
    ("source-tag", "The source tag that was resolved."),
    (
        "previous-tag",
        "Immutable tag that was current before this run (equal to `tag` when nothing changed).",
    ),
    (
        "previous-digest",
        "Digest that was current before this run (for rollback and release notes).",
    ),
    (
        "changed",
        "`true` when tags were (or, in a dry run, would be) written (`automate`: JSON list of "
        "`{automation, file, old, new, setter}`).",
    ),
    (
        "flux-tag-pattern",
        "The `filterTags.pattern` for the environment's ImagePolicy (also `build-tags`).",
    ),
    ("platforms", "Comma list of the platforms of an index (empty for a single image)."),
    ("metadata", "JSON object of the outputs above."),
    # rollback
    ("reverted-commit", "`rollback`: the GitOps automation commit reverted (`revert-commit`)."),
    # check
    ("errors", "`check`: number of errors found."),
    ("warnings", "`check`: number of warnings found."),
    # verify-flux
    ("synced", "`verify-flux`: `true` when every marker carries the expected tag."),
    ("predicted-tag", "`verify-flux`: tag Flux would select from the registry's tags."),
    ("files", "`verify-flux`: newline list of marker files for the policy."),
    (
        "commit",
        "`verify-flux`: commit that wrote the tag, when known (`automate`: the commit pushed).",
    ),
    # GitHub records
    ("deployment-id", "Id of the GitHub Deployment created (`create-deployment`)."),
    ("release-url", "URL of the GitHub Release created (`release`)."),
    # build-tags
    ("env", "`build-tags`: the environment of the build."),
    ("labels", "`build-tags`: newline `key=value` OCI labels."),
    ("annotations", "`build-tags`: newline `key=value` OCI annotations."),
    ("json", "`build-tags`: JSON of the build-tags outputs."),
    # predict (and verify-flux without expected-tag)
    (
        "predictions",
        "`predict`: JSON list of `{policy, selected, git, changes}`: the tag each ImagePolicy "
        "would select now, the tag Git carries, whether an automation run would change it.",
    ),
    # promotion record and trace (issue 16)
    (
        "record-digest",
        "Digest of the promotion record attached to the promoted digest (empty: none written).",
    ),
    ("predicate-type", "The promotion record's predicate type (for `actions/attest`)."),
    (
        "predicate-path",
        "File under `RUNNER_TEMP` holding the predicate JSON (for `actions/attest`).",
    ),
    ("lineage", "`trace`: JSON lineage of the traced digest (see docs/rollback.md)."),
    # across repositories and registries
    ("source-image", "The repository the source was read from (`image` unless `source-image`)."),
    (
        "copy",
        "JSON `{blobs-mounted, blobs-copied, blobs-skipped, bytes-copied, manifests-copied, "
        "signatures-copied}` of the copy into `image` (all 0 within one repository).",
    ),
)

OUTPUT_NAMES = frozenset(name for name, _ in OUTPUTS)
