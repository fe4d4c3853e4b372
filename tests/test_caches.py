"""CircleCI caches on the make, shell and GitLab targets, run end to end (semantics §3.5–3.6).

Expectations are written by hand from the semantics: `save_cache` never replaces an existing
key; `restore_cache` tries its keys in order and, for the first that any saved key starts
with, restores the most recently saved of those (even when one matches exactly); no match is
a notice, and the job goes on. Runs are repeated in one project, so the cache store outlives
the run directory as it must.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cicompile import compile_config

from tests.gitlab_helpers import make_repo, run_pipeline
from tests.local_helpers import (
    failed_exit,
    project,
    run,
)
from tests.tools import require_tool

e2e = pytest.mark.e2e

CACHES = """
version: 2.1
jobs:
  save:
    docker: [{image: cimg/base:stable}]
    steps:
      - checkout
      - run: |
          mkdir -p @HOME@.deps vendor
          echo "home $RUN_TAG" > @HOME@.deps/a
          echo "vendor $RUN_TAG" > vendor/b
      - save_cache:
          key: 'v1-deps-{{ .Branch }}-{{ checksum "lock" }}'
          paths: [@HOME@.deps, vendor]
  restore:
    docker: [{image: cimg/base:stable}]
    steps:
      - checkout
      - restore_cache:
          keys: ['v1-deps-{{ .Branch }}-{{ checksum "lock" }}', 'v1-deps-{{ .Branch }}-']
      - run: cat @HOME@.deps/a vendor/b
  miss:
    docker: [{image: cimg/base:stable}]
    steps:
      - restore_cache: {keys: [v0-nothing-, v0-]}
      - run: echo still running
  newest:
    docker: [{image: cimg/base:stable}]
    steps:
      - run: echo exact > f
      - save_cache: {key: v2-x, paths: [f]}
      - run: echo longer > f
      - save_cache: {key: v2-x-longer, paths: [f]}
      - run: rm f
      - restore_cache: {key: v2-x}
      - run: echo "got $(cat f)"
  when:
    docker: [{image: cimg/base:stable}]
    steps:
      - run: echo data > f
      - run: exit 3
      - save_cache: {key: v3-on-fail, paths: [f], when: on_fail}
      - save_cache: {key: v3-on-success, paths: [f]}
workflows:
  wf:
    jobs: [save, {restore: {requires: [save]}}, miss, newest]
  fallback:
    jobs: [{restore: {name: fallback-restore}}]
  whenwf:
    jobs: [when]
"""

LOCAL = CACHES.replace("@HOME@", "~/")




def _workflow_args(target: str, name: str) -> tuple[str, ...]:
    return (f"workflow.{name}",) if target == "make" else (name,)


def _keys(store: Path) -> set[str]:
    return {f.read_text().splitlines()[1] for f in store.glob("*.key")}


@e2e
def test_cache_rules_across_runs(target: str, tmp_path: Path) -> None:
    src = project(tmp_path, LOCAL, target)
    store = src / ".cicompile-cache"
    (src / "lock").write_text("lock 1\n")

    # 1. One job saves, the job that requires it restores; a miss is a notice only.
    r = run(target, src, {"RUN_TAG": "first"}, args=_workflow_args(target, "wf"))
    assert r.returncode == 0, r.output
    assert r.statuses() == {n: "success" for n in ("save", "restore", "miss", "newest")}
    assert "[restore] home first\n[restore] vendor first\n" in r.stdout
    assert "[miss] no cache found for key(s): v0-nothing- v0-; continuing" in r.stdout
    assert "[miss] still running" in r.stdout
    # newest wins among the prefix matches, although `v2-x` itself was saved too
    assert "[newest] got longer" in r.stdout
    assert len(_keys(store)) == 3 and {"v2-x", "v2-x-longer"} <= _keys(store)
    # the store is no source: checkout does not copy it into jobs
    assert not (r.run_dir / "jobs/wf/save/home/project/.cicompile-cache").exists()

    # 2. Immutable: the same key is not saved again; the first content stays.
    r = run(target, src, {"RUN_TAG": "second"}, args=_workflow_args(target, "wf"))
    assert r.returncode == 0, r.output
    assert "already exists; not saved again" in r.stdout
    assert "[restore] home first\n[restore] vendor first\n" in r.stdout

    # 3. A changed checksum file falls back to the `v1-deps-{{ .Branch }}-` prefix.
    (src / "lock").write_text("lock 3\n")
    r = run(target, src, args=_workflow_args(target, "fallback"))
    assert r.returncode == 0, r.output
    assert "(for key v1-deps-main-)" in r.stdout
    assert "[fallback-restore] home first\n" in r.stdout

    # 4. Save under the new checksum; then with yet another one the prefix finds two
    #    caches, and the newer one wins.
    r = run(target, src, {"RUN_TAG": "third"}, args=_workflow_args(target, "wf"))
    assert r.returncode == 0 and "[restore] home third\n" in r.stdout, r.output
    (src / "lock").write_text("lock 4\n")
    r = run(target, src, args=_workflow_args(target, "fallback"))
    assert "[fallback-restore] home third\n[fallback-restore] vendor third\n" in r.stdout, r.output
    assert len([k for k in _keys(store) if k.startswith("v1-deps-main-")]) == 2


@e2e
def test_save_cache_when(target: str, tmp_path: Path) -> None:
    store = tmp_path / "elsewhere"
    src = project(tmp_path, LOCAL, target)
    r = run(target, src, {"CICOMPILE_CACHE_DIR": str(store)},
            args=_workflow_args(target, "whenwf"))
    assert r.returncode == failed_exit(target), r.output
    assert _keys(store) == {"v3-on-fail"}
    assert not (src / ".cicompile-cache").exists()


# ---- GitLab (gitlab-ci-local): the store travels in one GitLab cache --------------------------

GITLAB = CACHES.replace("@HOME@", "")  # `~` is the real HOME under gitlab-ci-local


def _gitlab_repo(tmp_path: Path) -> Path:
    result = compile_config(GITLAB, "gitlab", path="config.yml")
    assert result.ok, [d.render() for d in result.diagnostics]
    assert any(d.code == "approximated-cache" for d in result.diagnostics)
    return make_repo(tmp_path / "repo", result.files[".gitlab-ci.yml"], {"lock": "lock 1\n"})


def _commit_lock(repo: Path, text: str) -> None:
    (repo / "lock").write_text(text)
    subprocess.run(["git", "commit", "-qam", "lock"], cwd=repo, check=True, capture_output=True)


@e2e
def test_gitlab_cache_rules_across_pipelines(tmp_path: Path) -> None:
    repo = _gitlab_repo(tmp_path)
    r = run_pipeline(repo, "--variable", "RUN_TAG=first")
    assert {"save", "restore", "miss", "newest"} <= r.passed, r.output
    assert "home first\nvendor first\n" in r.log("restore")
    assert "no cache found for key(s): v0-nothing- v0-; continuing" in r.log("miss")
    assert "still running" in r.log("miss")
    assert "got longer" in r.log("newest")

    r = run_pipeline(repo, "--variable", "RUN_TAG=second", "save", "restore")
    assert "already exists; not saved again" in r.log("save"), r.output
    assert "home first\nvendor first\n" in r.log("restore")

    _commit_lock(repo, "lock 3\n")
    r = run_pipeline(repo, "fallback-restore")
    log = r.log("fallback-restore")
    assert "(for key v1-deps-main-)" in log and "home first\n" in log, r.output

    r = run_pipeline(repo, "--variable", "RUN_TAG=third", "save")
    assert "stored cache" in r.log("save"), r.output
    _commit_lock(repo, "lock 4\n")
    r = run_pipeline(repo, "fallback-restore")
    log = r.log("fallback-restore")
    assert "home third\nvendor third\n" in log, r.output


# ---- the store itself: POSIX sh, safe under concurrent saves -----------------------------------

CONCURRENT = r"""
. "$1"
store=$2 work=$3
for i in 1 2 3 4 5 6 7 8; do
  (
    mkdir -p "$work/w$i/d"
    for n in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
      echo "$i" > "$work/w$i/d/f$n"
    done
    cc_cache_save "$store" same-key "w=$work/w$i" -- "$work/w$i/d" >/dev/null
  ) &
done
wait
ls "$store" | grep -c '\.key$'
ls -a "$store" | grep -c '^\.tmp' || true
cc_cache_restore "$store" "w=$work/r" -- same- >/dev/null
cat "$work"/r/d/f* | sort -u | wc -l
"""


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_concurrent_saves_keep_one_complete_entry(shell: str, tmp_path: Path) -> None:
    from cicompile.targets.cachekey import cache_store_functions

    lib = tmp_path / "lib.sh"
    lib.write_text(cache_store_functions() + "\n")
    r = subprocess.run([require_tool(shell), "-c", CONCURRENT, "test", str(lib),
                        str(tmp_path / "store"), str(tmp_path / "work")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    # one entry, no temporary files left, and every restored file from the same writer
    assert r.stdout.split() == ["1", "0", "1"], r.stdout + r.stderr
