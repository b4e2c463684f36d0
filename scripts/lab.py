#!/usr/bin/env python3
"""`make lab`: the whole chapter on one machine — build, promote, verify, roll back.

Everything is real and local: a CNCF distribution registry on 127.0.0.1 (it stays up until
`make lab-stop`), a bare GitOps repository made from examples/gitops aimed at it, images
pushed through the Distribution API (no Docker), and `promote` playing Flux's
ImageUpdateAutomation (`promote automate`). Every step prints the commands it runs, their
log and outputs, and what the step shows. `LAB_STEP=1` pauses after each step.

    scripts/lab.py          run the lab (state in $LAB_DIR, default .lab/)
    scripts/lab.py stop     stop the lab's registry and delete $LAB_DIR

docs/lab.md is the guide: the checklist, the expected output of each step, the diagrams.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from testkit.github_server import git  # noqa: E402
from testkit.gitops import make_gitops_repo  # noqa: E402
from testkit.registry import RegistryServer  # noqa: E402
from testkit.seed import Seeder  # noqa: E402

LAB_DIR = Path(os.environ.get("LAB_DIR") or ROOT / ".lab").resolve()
APPS = ("backend", "frontend")
ENVS = ("develop", "staging", "production")
#: The releases examples/gitops already names: the registry gets them first, so Git and the
#: registry start from the same history (production v1.4.2; the next promotion is v1.4.3).
HISTORY = {
    "develop": "develop-3f9c2ab-1764090000",
    "staging": "staging-3f9c2ab-1764093600",
    "production": "production-v1.4.2-3f9c2ab-1764100000",
}
AUTOMATION = "flux/bootstrap/infrastructure/image-automation/image-update-automation.yaml"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class LabError(RuntimeError):
    pass


class Lab:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.step_no = 0
        self.pause = os.environ.get("LAB_STEP") == "1"
        self.registry: RegistryServer | None = None
        self.host = ""
        self.clone = root / "gitops"
        self.bare = root / "gitops.git"
        self.service = root / "service"
        self.clock = int(time.time())
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("INPUT_", "GITHUB_", "RUNNER_", "PROMOTE_"))
        }
        self.env["NO_PROXY"] = self.env["no_proxy"] = "127.0.0.1,localhost"

    # -- printing ---------------------------------------------------------------------------
    def step(self, title: str, shows: str) -> None:
        if self.step_no and self.pause:
            try:
                input("\n[LAB_STEP=1] press Enter for the next step ")
            except EOFError:  # no terminal (stdin closed): carry on without pausing
                self.pause = False
        self.step_no += 1
        print(f"\n\033[1m== Step {self.step_no}: {title}\033[0m", flush=True)
        print(f"   shows: {shows}", flush=True)

    def say(self, text: str) -> None:
        print(f"   {text}", flush=True)

    # -- promote, as a learner runs it -------------------------------------------------------
    def promote(
        self, command: str, *args: str, expect: int = 0, cwd: Path | None = None, show: str = ""
    ) -> dict[str, str]:
        shown = " ".join(["promote", command, *args]).replace(str(self.root) + "/", "")
        print(f"$ {shown}", flush=True)
        proc = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "promote"), command, *args, "--json"],
            env=self.env,
            cwd=cwd or self.root,
            capture_output=True,
            text=True,
            check=False,
        )
        for line in proc.stderr.splitlines():
            print(f"  | {line}", flush=True)
        outputs: dict[str, str] = json.loads(proc.stdout or "{}")
        for key in show.split():
            if key in outputs:
                value = outputs[key]
                print(f"  > {key}={value}" if "\n" not in value else f"  > {key}:\n{value}")
        if proc.returncode != expect:
            raise LabError(f"promote {command} exited {proc.returncode}, expected {expect}")
        return outputs

    def verify(self, app: str, env: str, expected: str | None = None) -> str:
        args = [
            "--gitops-path",
            str(self.clone),
            "--gitops-ref",
            "origin/main",
            "--policy",
            f"flux-system:{app}-{env}",
        ]
        if expected:
            args += ["--expected-tag", expected]
        out = self.promote(
            "verify-flux", *args, show="synced" if expected else "synced predicted-tag"
        )
        if out.get("synced") != "true":
            raise LabError(f"verify-flux {app}-{env}: not synced")
        return out["predicted-tag"] or (expected or "")

    def automate(self) -> dict[str, str]:
        out = self.promote("automate", "--gitops-path", str(self.clone), show="commit")
        git(self.clone, "pull", "-q", "--ff-only")
        for change in json.loads(out["changed"]):
            self.say(f"{change['file']}: {change['old']} -> {change['new']}")
        return out

    # -- images, through the Distribution API -------------------------------------------------
    def build(self, app: str, branch: str) -> str:
        """A build of the service repo's ``branch`` for ``app``: tags from ``build-tags``
        (read off the local checkout), an OCI image labelled with its labels, pushed."""
        git(self.service, "checkout", "-q", branch)
        self.clock += 1
        out = self.promote(
            "build-tags",
            "--image",
            f"{self.host}/acme/{app}",
            "--timestamp",
            str(self.clock),
            cwd=self.service,
            show="tag",
        )
        labels = dict(line.split("=", 1) for line in out["labels"].splitlines())
        self.push_image(app, out["tag"], labels, f"{app} {out['short-sha']}")
        return out["tag"]

    def push_image(self, app: str, tag: str, labels: dict[str, str], content: str) -> str:
        assert self.registry is not None
        seeder: Seeder = self.registry.seeder()
        repo = f"acme/{app}"
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            data = (content + "\n").encode()
            info = tarfile.TarInfo("app/VERSION")
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
        layer = gzip.compress(raw.getvalue(), mtime=0)
        diff_id = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Labels": labels},
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            },
            sort_keys=True,
        ).encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": seeder.push_blob(repo, config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": seeder.push_blob(repo, layer),
                    "size": len(layer),
                }
            ],
            "annotations": labels,
        }
        data = json.dumps(manifest, sort_keys=True).encode()
        digest = seeder.push_manifest(repo, tag, data, OCI_MANIFEST)
        self.say(f"pushed {self.host}/{repo}:{tag} -> {digest}")
        return digest

    def commit_service(self, branch: str, message: str) -> str:
        if git(self.service, "symbolic-ref", "--short", "HEAD").strip() != branch:
            git(self.service, "checkout", "-q", branch)
        path = self.service / "CHANGES"
        path.write_text(path.read_text() + message + "\n" if path.exists() else message + "\n")
        git(self.service, "add", "-A")
        git(self.service, "commit", "-q", "-m", message)
        return git(self.service, "rev-parse", "HEAD").strip()

    def release(self, message: str) -> str:
        """A commit on the service's main, its staging build, promoted to production."""
        self.commit_service("main", message)
        staging = self.build("backend", "main")
        image = f"{self.host}/acme/backend"
        out = self.promote("promote", "--image", image, "--source-tag", staging, show="tag digest")
        return out["tag"]

    def edit_gitops(self, old: str, new: str, message: str) -> str:
        path = self.clone / AUTOMATION
        text = path.read_text()
        if old not in text:
            raise LabError(f"{AUTOMATION} has no {old!r}")
        path.write_text(text.replace(old, new, 1))
        git(self.clone, "commit", "-q", "-am", message)
        git(self.clone, "push", "-q", "origin", "main")
        sha = git(self.clone, "rev-parse", "HEAD").strip()
        print(f"$ git -C gitops commit -am {message!r} && git -C gitops push   # {sha[:12]}")
        return sha

    # -- the chapter -------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        stop(quiet=True)
        self.root.mkdir(parents=True, exist_ok=True)

        self.step(
            "a throwaway registry",
            "a real OCI registry (CNCF distribution) on loopback; it stays up until "
            "`make lab-stop`",
        )
        self.registry = RegistryServer("none", keep_in=self.root / "registry").start()
        assert self.registry.process is not None
        (self.root / "registry.pid").write_text(str(self.registry.process.pid))
        self.host = self.registry.host
        (self.root / "lab.json").write_text(json.dumps({"registry": self.host}))
        self.say(f"registry {self.registry.url} (pid {self.registry.process.pid})")

        self.step(
            "a GitOps repository from examples/gitops",
            "the example tree aimed at the lab: images under "
            f"{self.host}/acme/, the GitRepository url file://…/gitops.git (no secretRef)",
        )
        make_gitops_repo(self.root, self.host)
        self.say(f"bare repository {self.bare} (branch main), working clone {self.clone}")
        self.promote("check", "--gitops-path", str(self.clone), show="errors warnings")

        self.step(
            "the history Git already names",
            "the registry gets the releases the example tree carries (production v1.4.2), "
            "so `predict` finds Git and the registry in step — except backend production, "
            "whose policy reflects the digest (IfNotPresent): Flux would add @sha256:…",
        )
        for app in APPS:
            for tag in HISTORY.values():
                self.push_image(
                    app,
                    tag,
                    {"org.opencontainers.image.revision": "3f9c2ab" + "0" * 33},
                    f"{app} 3f9c2ab",
                )
        out = self.promote("predict", "--gitops-path", str(self.clone))
        for p in json.loads(out["predictions"]):
            self.say(f"{p['policy']}: changes={p['changes']}")

        self.step(
            "develop and main builds of backend and frontend",
            "`build-tags` reads HEAD and the branch of the service checkout: develop -> "
            "develop-<sha7>-<ts>, main -> staging-<sha7>-<ts>; images pushed with its labels",
        )
        self.service.mkdir()
        git(self.service, "init", "-q", "-b", "main")
        self.commit_service("main", "service: first commit")
        git(self.service, "checkout", "-q", "-b", "develop")
        self.commit_service("develop", "feature: a good change")
        builds: dict[str, dict[str, str]] = {app: {} for app in APPS}
        for app in APPS:
            builds[app]["develop"] = self.build(app, "develop")
        git(self.service, "checkout", "-q", "main")
        git(self.service, "merge", "-q", "--ff-only", "develop")
        for app in APPS:
            builds[app]["staging"] = self.build(app, "main")

        self.step(
            "automate, then verify-flux for develop and staging",
            "`promote automate` plays Flux's ImageUpdateAutomation: it selects each policy's "
            "tag from the registry, rewrites only the marked fields, commits with the "
            "template's message and pushes; `verify-flux` proves Git carries what Flux selects",
        )
        self.automate()
        for app in APPS:
            for env in ("develop", "staging"):
                self.verify(app, env, builds[app][env])

        self.step(
            "a promotion: staging -> production, no rebuild",
            "`promote` re-tags the staging digest as production-v1.4.3-<sha7>-<ts> (the next "
            "version after Git's v1.4.2) and moves `production`",
        )
        good: dict[str, str] = {}
        for app in APPS:
            out = self.promote(
                "promote",
                "--image",
                f"{self.host}/acme/{app}",
                "--source-tag",
                builds[app]["staging"],
                show="tag digest",
            )
            good[app] = out["tag"]

        self.step(
            "automate, then verify-flux for production",
            "the production policies select the new tags; the automation commits them",
        )
        self.automate()
        for app in APPS:
            self.verify(app, "production", good[app])
        self.verify_all()

        self.step(
            "a bad release",
            "a bad change built on main, promoted to production v1.4.4 and deployed by the "
            "automation",
        )
        bad = self.release("fix: a bad change")
        self.automate()
        self.verify("backend", "production", bad)

        self.step(
            "way back 1: re-promote the earlier digest",
            "`promote rollback` writes production-v1.4.3-<sha7>-<new ts> on the good digest; "
            "the newest timestamp wins, the automation commits it, verify-flux proves it",
        )
        rollback1 = self.promote(
            "rollback", "--image", f"{self.host}/acme/backend", show="tag digest previous-tag"
        )["tag"]
        self.automate()
        self.verify("backend", "production", rollback1)
        self.verify_all()

        self.step(
            "another bad release",
            "the same bad change again as v1.4.5 (a new build), deployed",
        )
        bad2 = self.release("fix: the bad change, again")
        automation_commit = self.automate()["commit"]
        self.verify("backend", "production", bad2)

        self.step(
            "way back 2: revert with the automation suspended",
            "suspend the automation in Git, revert its commit; `automate` honours suspend "
            "(no commit), so Git keeps the revert; verify-flux proves the rollback tag is back",
        )
        self.edit_gitops(
            "spec:\n  interval: 5m\n",
            "spec:\n  suspend: true\n  interval: 5m\n",
            "Suspend the image automation (incident)",
        )
        found = git(self.clone, "log", "-1", "--format=%H", f"-S{bad2}", "main").strip()
        if found != automation_commit:
            raise LabError(f"git log -S{bad2} found {found}, not {automation_commit}")
        print(f"$ git -C gitops revert --no-edit {found[:12]} && git -C gitops push")
        git(self.clone, "revert", "--no-edit", found)
        git(self.clone, "push", "-q", "origin", "main")
        out = self.automate()
        if out["commit"]:
            raise LabError("a suspended automation committed")
        self.verify("backend", "production", rollback1)
        self.say("the registry still selects the bad tag; only the suspension keeps Git back:")
        out = self.promote(
            "predict",
            "--gitops-path",
            str(self.clone),
            "--policy",
            "flux-system:backend-production",
        )
        self.say(f"predictions={out['predictions']}")

        self.step(
            "resume once the registry agrees",
            "re-promote the good digest (way 1), resume the automation; Git moves to the new "
            "rollback tag (same digest); every environment verified",
        )
        rollback2 = self.promote(
            "rollback",
            "--image",
            f"{self.host}/acme/backend",
            "--rollback-to",
            rollback1,
            show="tag digest",
        )["tag"]
        self.edit_gitops(
            "spec:\n  suspend: true\n  interval: 5m\n",
            "spec:\n  interval: 5m\n",
            "Resume the image automation",
        )
        self.automate()
        self.verify("backend", "production", rollback2)
        final = self.verify_all()

        state = {
            "registry": self.host,
            "bare": str(self.bare),
            "clone": str(self.clone),
            "builds": builds,
            "good": good,
            "bad": [bad, bad2],
            "rollbacks": [rollback1, rollback2],
            "final": final,
        }
        (self.root / "lab.json").write_text(json.dumps(state, indent=2))
        print("\n\033[1m== Done\033[0m")
        self.say(f"the registry stays up at {self.registry.url}; the GitOps clone is {self.clone}")
        self.say("try: .venv/bin/promote predict --gitops-path " + str(self.clone))
        self.say("stop it with: make lab-stop")
        return state

    def verify_all(self) -> dict[str, str]:
        """verify-flux (without expected-tag) for all six policies: Git carries what Flux
        would select now, in every environment."""
        print("   -- every environment:")
        return {f"{app}-{env}": self.verify(app, env) for app in APPS for env in ENVS}


def stop(*, quiet: bool = False) -> int:
    """Stop the lab registry (by its recorded pid) and delete the lab folder."""
    import shutil

    pid_file = LAB_DIR / "registry.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text().strip() or 0)
        try:
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                os.kill(pid, 0)
                time.sleep(0.1)
        except ProcessLookupError:
            pass
        if not quiet:
            print(f"lab registry (pid {pid}) stopped")
    if LAB_DIR.exists():
        shutil.rmtree(LAB_DIR, ignore_errors=True)
        if not quiet:
            print(f"{LAB_DIR} deleted")
    elif not quiet:
        print("no lab is running")
    return 0


def main(argv: list[str]) -> int:
    if argv[1:] == ["stop"]:
        return stop()
    try:
        Lab(LAB_DIR).run()
    except (LabError, RuntimeError) as exc:
        print(f"\nlab failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
