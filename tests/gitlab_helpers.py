"""Running generated `.gitlab-ci.yml` files with gitlab-ci-local (a port of gcl-run.sh).

Each run gets a throw-away git repository holding the config and the test's input files,
committed (with `--shell-isolation` gitlab-ci-local copies tracked files only). Jobs run on the
host with the shell executor.

Tag pipelines: gitlab-ci-local always derives CI_COMMIT_BRANCH from the checked-out branch and
never sets CI_COMMIT_TAG, and `--unset-variable` acts only after rules are evaluated. So a tag
pipeline is emulated with `--variable CI_COMMIT_BRANCH=` (empty, which rules treat as false,
as GitLab treats the unset variable) plus `--variable CI_COMMIT_TAG=<tag>`; the tests check
that this really selects the tag-only jobs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.tools import NODE_BIN, git_repo, run

GCL = NODE_BIN / "gitlab-ci-local"
GCL_FLAGS = ["--no-color", "--shell-isolation", "--no-artifacts-to-source",
             "--force-shell-executor"]
REMOTE = "https://gitlab.example.invalid/g/p.git"  # never contacted; silences remote warnings


def require_gcl() -> Path:
    if not GCL.exists():
        if os.environ.get("CI"):
            pytest.fail("gitlab-ci-local is not installed; run .ci/setup")
        pytest.skip("gitlab-ci-local is not installed; run .ci/setup")
    return GCL


def for_shell_executor(gitlab_yml: str) -> str:
    """The config without `image`/`services`, for running every job on this host.

    With `--force-shell-executor`, gitlab-ci-local still sets CI_PROJECT_DIR to the container
    path (`/builds/<group>/<project>`) for jobs that have an `image`, while running them on the
    host in `.gitlab-ci-local/builds/<job>`; artifacts written under $CI_PROJECT_DIR would then
    land outside the job and be lost. Dropping the images makes them plain shell jobs.
    """
    doc = yaml.safe_load(gitlab_yml)
    for value in doc.values():
        if isinstance(value, dict):
            value.pop("image", None)
            value.pop("services", None)
    return yaml.safe_dump(doc, sort_keys=False)


def make_repo(root: Path, gitlab_yml: str, files: dict[str, str] | None = None,
              branch: str = "main") -> Path:
    """A git repository at `root` with the config and `files` committed on `branch`."""
    root.mkdir(parents=True, exist_ok=True)
    (root / ".gitlab-ci.yml").write_text(for_shell_executor(gitlab_yml))
    (root / ".gitignore").write_text(".gitlab-ci-local/\n")
    for rel, text in (files or {}).items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    git_repo(root, branch, remote=REMOTE)
    # A remote-tracking default branch, so gitlab-ci-local need not ask the (absent) remote.
    for args in (["update-ref", "refs/remotes/origin/main", "HEAD"],
                 ["symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main"]):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)
    return root


def ref_args(tag: str | None) -> list[str]:
    if tag is None:
        return []
    return ["--variable", "CI_COMMIT_BRANCH=", "--variable", f"CI_COMMIT_TAG={tag}"]


def _gcl(repo: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["GCL_IGNORE_PREDEFINED_VARS"] = "CI_COMMIT_BRANCH,CI_COMMIT_TAG,CI_PIPELINE_SOURCE"
    return run([str(require_gcl()), *args], cwd=repo, env=env, timeout=120)


@dataclass
class GclRun:
    repo: Path
    returncode: int
    output: str
    passed: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)

    @property
    def ran(self) -> set[str]:
        return self.passed | self.failed

    def log(self, job: str) -> str:
        """The job's output (job names in these tests are plain words)."""
        assert re.fullmatch(r"[\w-]+", job), job
        path = self.repo / ".gitlab-ci-local" / "output" / f"{job}.log"
        return path.read_text() if path.exists() else ""


_SUMMARY = re.compile(r"^\s*(PASS|FAIL|WARN)\s+(\S.*?)\s*$", re.MULTILINE)


def run_pipeline(repo: Path, *extra: str, tag: str | None = None) -> GclRun:
    """Run the whole pipeline; `extra` may hold `--manual JOB` and the like."""
    r = _gcl(repo, [*GCL_FLAGS, *ref_args(tag), *extra])
    out = r.stdout + r.stderr
    result = GclRun(repo, r.returncode, out)
    for status, job in _SUMMARY.findall(out):
        (result.passed if status in ("PASS", "WARN") else result.failed).add(job)
    return result


def validate_needs(repo: Path, *extra: str, tag: str | None = None) -> str:
    """`--validate-dependency-chain`: '' when every non-optional need exists, else the error."""
    r = _gcl(repo, ["--validate-dependency-chain", "--no-json-schema-validation",
                    *ref_args(tag), *extra])
    return "" if r.returncode == 0 else r.stdout + r.stderr


def listed_jobs(repo: Path, tag: str | None = None,
                variables: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """The jobs the rules keep in this pipeline (`--list-json`, `when` other than never),
    for a push of `tag` (or the repository's branch) or these predefined variables."""
    args = [a for k, v in (variables or {}).items() for a in ("--variable", f"{k}={v}")]
    r = _gcl(repo, ["--list-json", "--no-json-schema-validation", *ref_args(tag), *args])
    assert r.returncode == 0, r.stdout + r.stderr
    start = r.stdout.index("[")
    jobs = json.loads(r.stdout[start:])
    return {j["name"]: j for j in jobs if j["when"] != "never"}


def gcl_list(repo: Path) -> list[dict[str, Any]]:
    """Every job of the pipeline as `--list-json` reports it (`when: never` included), with no
    predefined branch, tag or pipeline source: the config's variables decide them."""
    env = {**os.environ, "GCL_IGNORE_PREDEFINED_VARS": "CI_COMMIT_BRANCH,CI_COMMIT_TAG,"
                                                       "CI_PIPELINE_SOURCE"}
    # To a file: through a pipe, gitlab-ci-local's output stops at 128 KiB.
    with (repo.parent / f"{repo.name}.json").open("w+") as f:
        rc = subprocess.run([str(require_gcl()), "--list-json", "--no-json-schema-validation"],
                            cwd=repo, env=env, stdout=f, stderr=subprocess.DEVNULL,
                            timeout=300).returncode
        f.seek(0)
        listing = f.read()
    assert rc == 0, listing[-3000:]
    jobs: list[dict[str, Any]] = json.loads(listing[listing.index("["):])
    return jobs
