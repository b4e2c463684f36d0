"""verify-flux logic: marker contents, polling real git repositories, prediction."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from promote.errors import GitOpsError
from promote.flux.gitops import exclusions_for, scan
from promote.flux.source import GitHubSource, LocalSource, load_policy, load_tree
from promote.flux.verify import poll, predict, verify_tree
from testkit.github_server import GitHubServer, commit_all, git, init_repo

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gitops"
POLICY = "flux-system:backend-production"
DEPLOY = "flux/apps/backend/production/deployment.yaml"
OLD = "production-v1.4.2-3f9c2ab-1764100000"
NEW = "production-v1.5.0-9d8e7f6-1764200000"
FLUX_BOT = ("fluxcdbot", "fluxcdbot@users.noreply.github.com")
TOKEN = "ghs_verifytoken0123456789"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "gitops"
    shutil.copytree(EXAMPLE, root)
    init_repo(root)
    return root


def automation_commit(root: Path, old: str = OLD, new: str = NEW, rel: str = DEPLOY) -> str:
    """What image-automation-controller does: rewrite the marked scalar and commit."""
    path = root / rel
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    return commit_all(root, "Update from image update automation", author=FLUX_BOT)


def later(delay: float, fn: object, *args: object) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(delay), fn(*args)))  # type: ignore[operator]
    thread.start()
    return thread


# -- marker contents ---------------------------------------------------------------------------


def test_example_markers_carry_their_current_tag() -> None:
    tree = load_tree(LocalSource(EXAMPLE))
    result = verify_tree(tree, POLICY, OLD)
    assert result.synced
    assert result.files == [DEPLOY]
    assert [s.tag for s in result.markers] == [OLD]
    staging = verify_tree(tree, "flux-system:frontend-staging", "staging-3f9c2ab-1764093600")
    assert staging.synced and staging.files == [
        "flux/apps/frontend/overlays/staging/kustomization.yaml"
    ]


def test_stale_marker_is_not_synced() -> None:
    result = verify_tree(load_tree(LocalSource(EXAMPLE)), POLICY, NEW)
    assert not result.synced
    assert [(s.marker.file, s.marker.line, s.tag) for s in result.stale] == [(DEPLOY, 20, OLD)]


def test_marker_forms() -> None:
    files = {
        "a.yaml": (
            f'image: ghcr.io/acme/app:{NEW}@sha256:{"b" * 64} # {{"$imagepolicy": "ns:p"}}\n'
            f'tag: {NEW} # {{"$imagepolicy": "ns:p:tag"}}\n'
            'name: ghcr.io/acme/app # {"$imagepolicy": "ns:p:name"}\n'
            f'digest: sha256:{"b" * 64} # {{"$imagepolicy": "ns:p:digest"}}\n'
            'other: ghcr.io/acme/app:old # {"$imagepolicy": "ns:q"}\n'
        )
    }
    result = verify_tree(scan(files), "ns:p", NEW)
    assert result.synced
    assert [s.carries for s in result.markers] == [True, True, None, None]
    only_digest = verify_tree(
        scan({"b.yaml": 'd: sha256:00 # {"$imagepolicy": "ns:p:digest"}\n'}), "ns:p", NEW
    )
    assert not only_digest.synced and "none holds a tag" in only_digest.problems[0]
    nothing = verify_tree(scan(files), "ns:absent", NEW)
    assert not nothing.synced and "no setter marker" in nothing.problems[0]


def test_one_stale_marker_of_several_is_not_synced(repo: Path) -> None:
    second = repo / "flux/apps/backend/production/cronjob.yaml"
    second.write_text(
        "apiVersion: batch/v1\nkind: CronJob\nspec:\n  jobTemplate:\n    spec:\n      template:\n"
        "        spec:\n          containers:\n"
        f'            - image: ghcr.io/acme/backend:{OLD} # {{"$imagepolicy": "{POLICY}"}}\n'
    )
    automation_commit(repo)
    result = verify_tree(load_tree(LocalSource(repo)), POLICY, NEW)
    assert not result.synced
    assert [s.marker.file for s in result.stale] == ["flux/apps/backend/production/cronjob.yaml"]


# -- polling -----------------------------------------------------------------------------------


def test_poll_sees_the_automation_commit_arrive(repo: Path) -> None:
    source = LocalSource(repo)
    started = time.monotonic()
    thread = later(0.4, automation_commit, repo)
    result = poll(source, POLICY, NEW, timeout=8, first_delay=0.1)
    thread.join()
    elapsed = time.monotonic() - started
    assert result.synced
    assert result.reads >= 2
    assert elapsed < 4
    head = git(repo, "rev-parse", "HEAD").strip()
    assert result.revision == head
    assert source.commit_for(NEW, result.files, result.revision) == head


def test_poll_gives_up_at_the_timeout(repo: Path) -> None:
    """Real clock, real git reads: polls with backoff until the timeout, not before, and
    stops after one last read. 2 s, not 0.6 s: a third read needs two reads (git
    subprocesses) and a 0.1 s wait inside the timeout, which a loaded machine missed."""
    timeout = 2.0
    started = time.monotonic()
    result = poll(LocalSource(repo), POLICY, NEW, timeout=timeout, first_delay=0.1)
    elapsed = time.monotonic() - started
    assert not result.synced and result.reads >= 3
    assert timeout - 0.05 <= elapsed < timeout + 1.4


def test_timeout_zero_reads_once(repo: Path) -> None:
    result = poll(LocalSource(repo), POLICY, NEW, timeout=0)
    assert not result.synced and result.reads == 1


def test_backoff_sequence_is_bounded_by_the_timeout() -> None:
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    class Stale:
        label = "stale"

        def read(self) -> object:
            from promote.flux.source import Snapshot

            return Snapshot({"a.yaml": f'i: x:{OLD} # {{"$imagepolicy": "{POLICY}"}}\n'})

        def commit_for(self, needle: str, files: list[str], revision: str | None) -> None:
            return None

    result = poll(Stale(), POLICY, NEW, timeout=100, clock=lambda: now[0], sleep=sleep)  # type: ignore[arg-type]
    assert not result.synced
    assert waits[:5] == pytest.approx([1.0, 1.5, 2.25, 3.375, 5.0625])
    assert max(waits) <= 30
    assert sum(waits) == pytest.approx(100)
    assert result.reads == len(waits) + 1


def test_no_marker_stops_polling_at_once(repo: Path) -> None:
    started = time.monotonic()
    result = poll(LocalSource(repo), "flux-system:nothing", NEW, timeout=30)
    assert time.monotonic() - started < 1
    assert result.reads == 1 and result.problems


# -- sources -----------------------------------------------------------------------------------


def test_local_revision_of_a_remote_tracking_ref_is_fetched(tmp_path: Path, repo: Path) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(remote))
    checkout = tmp_path / "checkout"
    git(tmp_path, "clone", "-q", str(remote), str(checkout))
    source = LocalSource(checkout, ref="origin/main")
    assert verify_tree(load_tree(source), POLICY, OLD).synced
    # the automation pushes from elsewhere; the checkout's work tree never changes
    git(repo, "remote", "add", "origin", str(remote))
    sha = automation_commit(repo)
    git(repo, "push", "-q", "origin", "main")
    tree = load_tree(source)
    assert tree.revision == sha
    assert verify_tree(tree, POLICY, NEW).synced
    assert OLD in (checkout / DEPLOY).read_text()
    assert source.commit_for(NEW, [DEPLOY], tree.revision) == sha


def test_worktree_symlinks_out_of_the_tree_are_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text('image: x:secret # {"$imagepolicy": "ns:p"}\n')
    root = tmp_path / "tree"
    root.mkdir()
    (root / "inside.yaml").write_text('image: x:ok # {"$imagepolicy": "ns:p"}\n')
    (root / "link.yaml").symlink_to(outside)
    (root / "alias.yaml").symlink_to(root / "inside.yaml")
    tree = load_tree(LocalSource(root))
    assert sorted(tree.files) == ["alias.yaml", "inside.yaml"]
    assert {m.value for m in tree.markers} == {"x:ok"}


def test_local_ref_reads_a_revision_not_the_work_tree(repo: Path) -> None:
    first = git(repo, "rev-parse", "HEAD").strip()
    automation_commit(repo)
    tree = load_tree(LocalSource(repo, ref=first))
    assert tree.revision == first
    assert verify_tree(tree, POLICY, OLD).synced
    with pytest.raises(GitOpsError, match="rev-parse"):
        load_tree(LocalSource(repo, ref="no-such-branch"))


def test_commit_for_finds_the_writer_not_the_latest_commit(repo: Path) -> None:
    writer = automation_commit(repo)
    (repo / "README.md").write_text("later change\n")
    (repo / DEPLOY).write_text((repo / DEPLOY).read_text() + "# trailing edit\n")
    later_sha = commit_all(repo, "unrelated edit")
    source = LocalSource(repo)
    assert source.commit_for(NEW, [DEPLOY], later_sha) == writer
    assert source.commit_for("production-v9.9.9-0000000-1", [DEPLOY], later_sha) is None


@pytest.fixture
def github(repo: Path) -> Iterator[GitHubServer]:
    with GitHubServer(token=TOKEN) as server:
        server.add_repo("acme/gitops", repo)
        yield server


def test_github_source_polls_with_conditional_requests(repo: Path, github: GitHubServer) -> None:
    source = GitHubSource("acme/gitops", token=TOKEN, base_url=github.url)
    first = load_tree(source)
    assert first.revision == git(repo, "rev-parse", "HEAD").strip()
    assert len(first.files) == 22 and len(first.markers) == 6
    blobs_first = github.count("GET")
    used = github.rate_used
    for _ in range(3):
        again = load_tree(source)
        assert again.revision == first.revision
    ref_path = "/repos/acme/gitops/git/refs/heads/main"
    assert github.count("GET", ref_path, status=304) == 3
    assert github.rate_used == used  # 304s spend no rate limit
    assert source.not_modified == 3
    sha = automation_commit(repo)
    tree = load_tree(source)
    assert tree.revision == sha
    assert verify_tree(tree, POLICY, NEW).synced
    # only the one changed blob was fetched again (plus the ref and the tree)
    new_requests = github.requests[blobs_first + 3 :]
    assert [r.path.split("/")[5] for r in new_requests] == ["refs", "trees", "blobs"]
    assert source.commit_for(NEW, [DEPLOY], sha) == sha
    first_sha = git(repo, "rev-parse", "HEAD~1").strip()
    assert (
        load_tree(
            GitHubSource("acme/gitops", ref=first_sha, token=TOKEN, base_url=github.url)
        ).revision
        == first_sha
    )


def test_github_source_reads_branches_and_tags(repo: Path, github: GitHubServer) -> None:
    first = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "tag", "-a", "v1", "-m", "release v1")
    git(repo, "branch", "release")
    automation_commit(repo)
    for ref in ("v1", "release"):
        tree = load_tree(GitHubSource("acme/gitops", ref=ref, token=TOKEN, base_url=github.url))
        assert tree.revision == first, ref
    with pytest.raises(GitOpsError, match="404"):
        load_tree(GitHubSource("acme/gitops", ref="nope", token=TOKEN, base_url=github.url))


@pytest.mark.parametrize(("token", "status"), [(None, "401"), ("wrong-token-value", "401")])
def test_github_source_auth_errors_are_clean(
    github: GitHubServer, token: str | None, status: str
) -> None:
    with pytest.raises(GitOpsError, match=f"{status}.*github-token") as info:
        load_tree(GitHubSource("acme/gitops", token=token, base_url=github.url))
    assert "wrong-token-value" not in str(info.value)


def test_github_source_unreachable() -> None:
    with GitHubServer() as server:
        url = server.url
    with pytest.raises(GitOpsError, match=r"unreachable|cannot"):
        load_tree(GitHubSource("acme/gitops", token=TOKEN, base_url=url))


def test_load_policy_from_path_and_api(repo: Path, github: GitHubServer) -> None:
    local = load_policy(repo, POLICY)
    remote = load_policy(GitHubSource("acme/gitops", token=TOKEN, base_url=github.url), POLICY)
    tags = [OLD, NEW, "production", "staging-3f9c2ab-1764300000"]
    assert local.select(tags) == remote.select(tags) == NEW
    with pytest.raises(GitOpsError, match=r"not found.*backend-develop"):
        load_policy(repo, "flux-system:backend-qa")


# -- prediction --------------------------------------------------------------------------------


def test_predict_against_the_example_policy() -> None:
    tree = load_tree(LocalSource(EXAMPLE))
    policy = load_policy(EXAMPLE, POLICY)
    obj = tree.find("ImagePolicy", POLICY)
    assert obj is not None
    exclusions = exclusions_for(tree, obj)
    assert exclusions == []
    tags = [
        OLD,
        NEW,
        "production",
        "latest",
        "staging-9d8e7f6-1764190000",
        f"sha256-{'c' * 64}.sig",
    ]
    ok = predict(policy, tags, NEW, exclusions)
    assert ok.ok and ok.tag == NEW and ok.considered == 5
    newer = "production-v1.4.3-1111111-1764300000"
    stale = predict(policy, [*tags, newer], NEW, exclusions)
    assert not stale.ok and stale.tag == newer
    assert "1764300000" in stale.reason and "1764200000" in stale.reason
    absent = predict(policy, [OLD], NEW)
    assert not absent.ok and "not in the registry" in absent.reason and absent.tag == OLD
    refused = predict(
        policy,
        [OLD, "production-v1.5.0-9D8E7F6-1764200000"],
        "production-v1.5.0-9D8E7F6-1764200000",
    )
    assert not refused.ok and "does not match" in refused.reason
    excluded = predict(policy, [OLD, NEW], NEW, ["^production-v1\\.5"])
    assert not excluded.ok and "exclusionList" in excluded.reason
