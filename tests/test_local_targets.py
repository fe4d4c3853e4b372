"""The make and shell targets, run end to end on this host (semantics §9.3).

Every test runs for both targets: `make -j4` on the Makefile, `bash ci.sh` on the script.
Expected outcomes are written by hand from the semantics document, never computed with the
compiler's own condition code.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from tests.local_helpers import (
    compile_text,
    define_bodies,
    failed_exit,
    project,
    run,
)
from tests.parallel_cases import ONE_NODE_FAILS, PARALLEL, check_shares
from tests.tools import require_tool

TARGETS = ["make", "shell"]
e2e = pytest.mark.e2e




# ---- a. the workspace example ----------------------------------------------------------------

WORKSPACE = """
version: 2
jobs:
  flow:
    docker: [{image: cimg/base:stable}]
    steps:
      - run: mkdir -p workspace
      - run: echo "Hello, world!" > workspace/echo-output
      - run:
          name: an executable script
          command: |
            printf '#!/bin/sh\\necho the script ran\\n' > workspace/run.sh
            chmod 755 workspace/run.sh
      - persist_to_workspace:
          root: workspace
          paths: [echo-output, run.sh]
  downstream:
    docker: [{image: cimg/base:stable}]
    steps:
      - attach_workspace: {at: from-flow}
      - run: |
          if [ "$(cat from-flow/echo-output)" = "Hello, world!" ]; then
            echo content ok
          else
            exit 1
          fi
      - run: cd from-flow && test -x run.sh && ./run.sh
workflows:
  version: 2
  wf:
    jobs:
      - flow
      - downstream: {requires: [flow]}
"""


@e2e
def test_workspace_example(target: str, tmp_path: Path) -> None:
    src = project(tmp_path, WORKSPACE, target)
    r = run(target, src)
    assert r.returncode == 0, r.output
    assert r.statuses() == {"flow": "success", "downstream": "success"}
    assert "[downstream] content ok" in r.stdout
    assert "[downstream] the script ran" in r.stdout
    attached = r.run_dir / "jobs/wf/downstream/home/project/from-flow"
    assert (attached / "echo-output").read_text() == "Hello, world!\n"
    assert (attached / "run.sh").stat().st_mode & 0o777 == 0o755
    assert "cicompile: summary" in r.stdout and "no job failed" in r.stdout


# ---- b. workspace layers ---------------------------------------------------------------------

LAYERS = """
version: 2.1
jobs:
  a:
    docker: [{image: cimg/base:stable}]
    steps:
      - run: |
          mkdir -p out && echo from-a > out/a.txt
          echo mine > only-in-a.txt && touch ~/home-of-a
      - persist_to_workspace: {root: out, paths: [a.txt]}
  b:
    docker: [{image: cimg/base:stable}]
    steps:
      - run: mkdir -p out/sub && echo from-b > out/sub/b.txt && touch out/.hidden-b
      - persist_to_workspace: {root: out, paths: [sub, .hidden-*]}
  c:
    docker: [{image: cimg/base:stable}]
    steps:
      - attach_workspace: {at: ws}
      - run: test "$(cat ws/a.txt)" = from-a
      - run: test ! -e ws/sub && test ! -e ws/.hidden-b
      - run: test ! -e only-in-a.txt && test ! -e ~/home-of-a && test ! -e out
  d:
    docker: [{image: cimg/base:stable}]
    working_directory: ~/elsewhere
    steps:
      - attach_workspace: {at: ~/ws}
      - run: test "$(cat ~/ws/a.txt ~/ws/sub/b.txt)" = "$(printf 'from-a\\nfrom-b')"
      - run: test -e ~/ws/.hidden-b && test ! -e only-in-a.txt && test ! -e ~/home-of-a
  e:
    docker: [{image: cimg/base:stable}]
    steps:
      - attach_workspace: {at: .}
      - run: test -f a.txt && test -f sub/b.txt && test -f .hidden-b
workflows:
  wf:
    jobs:
      - a
      - b
      - c: {requires: [a]}
      - d: {requires: [a, b]}
      - e: {requires: [d]}
"""


@e2e
def test_workspace_layers_follow_ancestry(target: str, tmp_path: Path) -> None:
    src = project(tmp_path, LAYERS, target)
    r = run(target, src)
    assert r.returncode == 0, r.output
    assert r.statuses() == {n: "success" for n in "abcde"}
    layers = sorted(p.name for p in (r.run_dir / "workspace/wf").iterdir())
    assert layers == ["a-0.tar", "b-0.tar"]
    # each job had its own directory; the file `a` did not persist stayed in a's
    assert (r.run_dir / "jobs/wf/a/home/project/only-in-a.txt").exists()
    assert not (r.run_dir / "jobs/wf/c/home/project/only-in-a.txt").exists()
    assert not (src / "out").exists()  # nothing is written into the source


# ---- c. independent jobs run concurrently ----------------------------------------------------

RENDEZVOUS = """
version: 2.1
jobs:
  left: &meet
    docker: [{image: cimg/base:stable}]
    environment:
      MEET: '@MEET@'
    steps:
      - run: |
          touch "$MEET/$CIRCLE_JOB"
          for _ in $(seq @TRIES@); do
            if [ -e "$MEET/left" ] && [ -e "$MEET/right" ]; then exit 0; fi
            sleep 0.1
          done
          echo "the other job never arrived"; exit 1
  right: *meet
workflows:
  wf:
    jobs: [left, right]
"""


@e2e
def test_fan_out_jobs_overlap(target: str, tmp_path: Path) -> None:
    meet = tmp_path / "meet"
    meet.mkdir()
    config = RENDEZVOUS.replace("@MEET@", str(meet)).replace("@TRIES@", "100")  # 10 s
    src = project(tmp_path, config, target)
    r = run(target, src)
    assert r.returncode == 0, r.output
    assert r.statuses() == {"left": "success", "right": "success"}


@e2e
def test_rendezvous_fails_when_jobs_run_one_at_a_time(target: str, tmp_path: Path) -> None:
    """The control for the test above: `make` without -j, or CICOMPILE_JOBS=1."""
    meet = tmp_path / "meet"
    meet.mkdir()
    config = RENDEZVOUS.replace("@MEET@", str(meet)).replace("@TRIES@", "5")  # 0.5 s
    src = project(tmp_path, config, target)
    r = run(target, src, {"CICOMPILE_JOBS": "1"}, jobs=1)
    assert r.returncode == failed_exit(target), r.output
    assert sorted(r.statuses().values()) == ["failed", "success"]  # the second finds the first
    assert "the other job never arrived" in r.stdout


# ---- d. approvals ----------------------------------------------------------------------------

APPROVAL = """
version: 2.1
jobs:
  build:
    docker: [{image: cimg/base:stable}]
    steps:
      - run: echo built
  deploy:
    docker: [{image: cimg/base:stable}]
    steps:
      - run: echo deployed
workflows:
  wf:
    jobs:
      - build
      - hold: {type: approval, requires: [build]}
      - deploy: {requires: [hold]}
"""

ON_HOLD = (
    "on hold: hold is waiting for approval; run again with CICOMPILE_APPROVE=hold to continue"
)


@e2e
def test_approval_holds_without_consent(target: str, tmp_path: Path) -> None:
    src = project(tmp_path, APPROVAL, target)
    r = run(target, src)
    assert r.returncode == 0, r.output  # on hold is no failure
    assert r.statuses() == {"build": "success", "hold": "held", "deploy": "blocked"}
    assert ON_HOLD in r.stdout
    assert "[deploy] deployed" not in r.stdout


@e2e
@pytest.mark.parametrize("approve", ["hold", "other, hold", "all"])
def test_approval_granted(target: str, tmp_path: Path, approve: str) -> None:
    src = project(tmp_path, APPROVAL, target)
    r = run(target, src, {"CICOMPILE_APPROVE": approve})
    assert r.returncode == 0, r.output
    assert r.statuses() == {"build": "success", "hold": "success", "deploy": "success"}
    assert "[deploy] deployed" in r.stdout
    assert "on hold" not in r.stdout


# ---- e. filters ------------------------------------------------------------------------------

FILTERS = """
version: 2.1
jobs:
  ok:
    docker: [{image: cimg/base:stable}]
    steps: [{run: echo ran}]
workflows:
  wf:
    jobs:
      - ok: {name: plain}
      - ok: {name: main-only, filters: {branches: {only: main}}}
      - ok: {name: not-main, filters: {branches: {ignore: main}}}
      - ok: {name: release, filters: {branches: {only: /release\\/.*/}}}
      - ok: {name: v-major, filters: {tags: {only: /v\\d+/}}}
      - ok: {name: every-ref, filters: {tags: {only: /.*/}}}
      - ok:
          name: version-tag
          filters: {tags: {only: '/v\\d+(\\.\\d+)*/'}, branches: {ignore: /.*/}}
      - ok: {name: not-nightly, filters: {tags: {ignore: nightly}, branches: {only: [main]}}}
      - ok: {name: after-version-tag, requires: [version-tag], filters: {tags: {only: /.*/}}}
      - ok: {name: after-every-ref, requires: [every-ref]}
      - ok: {name: after-release, requires: [release]}
      - ok: {name: after-main-or-release, requires: [main-only, release]}
"""

# Hand-written from semantics §5.3-5.4: branches run unless filtered; tags only with a
# `tags` filter; a regex must match the whole name; requirements that are filtered out are
# dropped, but a job whose requirements are all filtered out does not run.
RAN_ON = {
    ("branch", "main"): {
        "plain", "main-only", "v-major", "every-ref", "not-nightly", "after-every-ref",
        "after-main-or-release",
    },
    ("branch", "feature/x"): {"plain", "not-main", "v-major", "every-ref", "after-every-ref"},
    ("branch", "release/1.2"): {
        "plain", "not-main", "release", "v-major", "every-ref", "after-every-ref",
        "after-release", "after-main-or-release",
    },
    ("tag", "v1.2.3"): {"every-ref", "version-tag", "not-nightly", "after-version-tag"},
    ("tag", "nightly"): {"every-ref"},
}
ALL_FILTER_NODES = {
    "plain", "main-only", "not-main", "release", "v-major", "every-ref", "version-tag",
    "not-nightly", "after-version-tag", "after-every-ref", "after-release",
    "after-main-or-release",
}


@e2e
@pytest.mark.parametrize("ref", list(RAN_ON), ids=[f"{k}-{n}" for k, n in RAN_ON])
def test_filters_select_jobs(target: str, tmp_path: Path, ref: tuple[str, str]) -> None:
    kind, name = ref
    src = project(tmp_path, FILTERS, target)
    var = {"CIRCLE_BRANCH" if kind == "branch" else "CIRCLE_TAG": name}
    if target == "make":
        r = run(target, src, make_vars=var)  # make's command-line variables
    else:
        r = run(target, src, var)
    assert r.returncode == 0, r.output
    expected = {n: "success" if n in RAN_ON[ref] else "skipped" for n in ALL_FILTER_NODES}
    assert r.statuses() == expected


@e2e
def test_ref_comes_from_git(target: str, tmp_path: Path) -> None:
    src = project(tmp_path, FILTERS, target, branch="release/1.2")
    r = run(target, src)
    assert r.returncode == 0, r.output
    assert {n for n, s in r.statuses().items() if s == "success"} == RAN_ON[
        ("branch", "release/1.2")
    ]
    subprocess.run(["git", "tag", "nightly"], cwd=src, check=True)
    subprocess.run(["git", "checkout", "-q", "--detach"], cwd=src, check=True)
    r = run(target, src)
    assert r.returncode == 0, r.output
    assert r.status("every-ref") == "success" and r.status("plain") == "skipped"
    # detached and untagged: no way to tell, so the run refuses with a clear message
    subprocess.run(["git", "tag", "-d", "nightly"], cwd=src, check=True, capture_output=True)
    r = run(target, src)
    assert r.returncode != 0
    assert "set CIRCLE_BRANCH or CIRCLE_TAG" in r.stderr


# ---- f. failures, `when`, BASH_ENV, built-in variables ---------------------------------------

FAILING = """
version: 2.1
jobs:
  broken:
    docker: [{image: cimg/base:stable}]
    environment:
      OUT: '@OUT@'
    steps:
      - run: echo 'export CARRIED="from bash env"' >> "$BASH_ENV"
      - run: echo "$CARRIED" > "$OUT/carried"
      - run: mkdir -p reports && echo '<testsuite/>' > reports/junit.xml
      - run: {name: the failing step, command: echo about to fail; exit 3}
      - run: touch "$OUT/after-failure"
      - run: {command: touch "$OUT/always", when: always}
      - run: {command: touch "$OUT/on-fail", when: on_fail}
      - store_test_results: {path: reports}
      - store_artifacts: {path: reports/junit.xml, destination: junit}
  fine:
    docker: [{image: cimg/base:stable}]
    environment:
      OUT: '@OUT@'
    steps:
      - run: {command: touch "$OUT/never-on-fail", when: on_fail}
      - run: echo fine
  after-broken:
    docker: [{image: cimg/base:stable}]
    steps: [{run: echo should not run}]
  after-blocked:
    docker: [{image: cimg/base:stable}]
    steps: [{run: echo should not run}]
workflows:
  wf:
    jobs:
      - broken
      - fine
      - after-broken: {requires: [broken]}
      - after-blocked: {requires: [after-broken, fine]}
"""


@e2e
def test_failing_step(target: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    src = project(tmp_path, FAILING.replace("@OUT@", str(out)), target)
    r = run(target, src)
    assert r.returncode == failed_exit(target), r.output
    assert r.statuses() == {
        "broken": "failed",
        "fine": "success",
        "after-broken": "blocked",
        "after-blocked": "blocked",
    }
    assert (out / "carried").read_text() == "from bash env\n"
    assert sorted(p.name for p in out.iterdir()) == ["always", "carried", "on-fail"]
    assert "step failed (exit status 3): the failing step" in r.stdout
    assert "should not run" not in r.stdout
    assert "failed or did not finish: broken" in r.stdout
    artifacts = r.run_dir / "artifacts/wf/broken"
    assert (artifacts / "junit").read_text() == "<testsuite/>\n"
    assert (artifacts / "test-results/reports/junit.xml").exists()


BUILTINS = """
version: 2.1
jobs:
  show:
    docker: [{image: cimg/base:stable}]
    environment:
      OUT: '@OUT@'
      LITERAL: $HOME-and-${OUT}
      OVERRIDDEN: job
    steps:
      - checkout
      - run:
          name: a background step, killed when the job ends
          background: true
          command: touch "$OUT/background-started"; sleep 60; touch "$OUT/background-finished"
      - run: for _ in $(seq 50); do [ -e "$OUT/background-started" ] && break; sleep 0.1; done
      - run:
          environment: {OVERRIDDEN: step}
          command: |
            {
              echo "pwd=$(pwd)"
              echo "home=$HOME"
              for v in CI CIRCLECI CIRCLE_BRANCH CIRCLE_JOB CIRCLE_SHA1 CIRCLE_WORKING_DIRECTORY \\
                       CIRCLE_NODE_INDEX CIRCLE_NODE_TOTAL LITERAL OVERRIDDEN; do
                echo "$v=${!v}"
              done
              echo "tag=${CIRCLE_TAG-unset}"
              echo "workflow-id=${#CIRCLE_WORKFLOW_ID}"
            } > "$OUT/env"
            cat lib/code.txt untracked.txt > "$OUT/checked-out"
            test ! -e ignored.txt && test ! -e deleted.txt && test ! -e .cicompile-run
      - run: |
          cat > "$OUT/heredoc" <<'CICOMPILE_EOF'
          inner $HOME
          CICOMPILE_EOF
      - run:
          working_directory: sub/dir
          shell: /bin/sh -e
          command: pwd > "$OUT/step-dir"
workflows:
  wf:
    jobs: [show]
"""


@e2e
def test_builtins_checkout_and_background(target: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    src = project(tmp_path, BUILTINS.replace("@OUT@", str(out)), target)
    (src / "lib/code.txt").write_text("modified, not committed\n")
    (src / "untracked.txt").write_text("untracked\n")
    (src / "ignored.txt").write_text("ignored\n")
    (src / "deleted.txt").write_text("x\n")
    subprocess.run(["git", "add", "deleted.txt"], cwd=src, check=True)
    subprocess.run(["git", "commit", "-qm", "x"], cwd=src, check=True)
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True, check=True
    ).stdout.strip()
    (src / "deleted.txt").unlink()
    started = time.monotonic()
    r = run(target, src, {"CIRCLE_BRANCH": "dev"})
    assert r.returncode == 0, r.output
    assert time.monotonic() - started < 30  # the background `sleep 60` was killed
    home = r.run_dir / "jobs/wf/show/home"
    env = dict(line.split("=", 1) for line in (out / "env").read_text().splitlines())
    assert env == {
        "pwd": str(home / "project"),
        "home": str(home),
        "CI": "true",
        "CIRCLECI": "true",
        "CIRCLE_BRANCH": "dev",
        "CIRCLE_JOB": "show",
        "CIRCLE_SHA1": sha,
        "CIRCLE_WORKING_DIRECTORY": "~/project",
        "CIRCLE_NODE_INDEX": "0",
        "CIRCLE_NODE_TOTAL": "1",
        "LITERAL": "$HOME-and-${OUT}",
        "OVERRIDDEN": "step",
        "tag": "unset",
        "workflow-id": "36",
    }
    assert (out / "checked-out").read_text() == "modified, not committed\nuntracked\n"
    assert (out / "heredoc").read_text() == "inner $HOME\n"
    assert (out / "step-dir").read_text() == f"{home}/project/sub/dir\n"
    assert (out / "background-started").exists()
    assert not (out / "background-finished").exists()


UNSUPPORTED = """
version: 2.1
orbs:
  node: circleci/node@5.2.0
jobs:
  remote:
    docker: [{image: cimg/base:stable}]
    steps:
      - run: echo still running
  orb:
    docker: [{image: cimg/base:stable}]
    steps:
      - node/install-packages
      - run: echo not reached
workflows:
  wf:
    jobs: [remote, orb]
"""


@e2e
def test_unsupported_steps(target: str, tmp_path: Path) -> None:
    src = project(tmp_path, UNSUPPORTED, target)
    r = run(target, src)
    assert r.returncode == failed_exit(target), r.output
    assert r.statuses() == {"remote": "success", "orb": "failed"}
    assert "[remote] still running" in r.stdout
    assert "[orb] cicompile: `node/install-packages` is a command of the orb" in r.stdout
    assert "[orb] not reached" not in r.stdout


@e2e
def test_run_dir_is_reset_but_foreign_dirs_are_kept(target: str, tmp_path: Path) -> None:
    src = project(tmp_path, APPROVAL, target)
    run_dir = tmp_path / "runs"
    r = run(target, src, {"CICOMPILE_RUN_DIR": str(run_dir)})
    assert r.returncode == 0 and r.status("build") == "success", r.output
    (run_dir / "jobs/stale").mkdir()
    r = run(target, src, {"CICOMPILE_RUN_DIR": str(run_dir), "CICOMPILE_APPROVE": "all"})
    assert r.returncode == 0 and r.status("deploy") == "success", r.output
    assert not (run_dir / "jobs/stale").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious").write_text("keep me\n")
    r = run(target, src, {"CICOMPILE_RUN_DIR": str(foreign)})
    assert r.returncode != 0
    assert "was not made by cicompile" in r.stderr
    assert (foreign / "precious").read_text() == "keep me\n"


# ---- g. static checks: shellcheck, make -n, determinism --------------------------------------

KITCHEN_SINK = """
version: 2.1
orbs:
  my-orb: example/my-orb@1.0.0
jobs:
  build:
    docker:
      - image: cimg/base:stable
        environment: {FROM_IMAGE: image}
    working_directory: @KITCHEN@
    shell: /bin/bash -eo pipefail
    environment:
      MULTI: "line one\\nendef\\nline three \\\\"
      DOLLARS: $$ $(not run) `nor this`
    steps:
      - checkout: {path: code}
      - run:
          name: "tricky: $HOME 'quotes' \\\\"
          command: |
            echo "dollar: $HOME" '$$' "${HOME}"
            cat <<'CICOMPILE_EOF'
            define x
            endef
            CICOMPILE_EOF
            echo trailing \\
              backslash
      - run: {command: echo on fail, when: on_fail}
      - persist_to_workspace: {root: ., paths: ["code/*.md", "code/it's here"]}
      - save_cache: {key: 'v1-{{ checksum "code/README.md" }}', paths: [x]}
      - restore_cache: {keys: [v1-]}
      - store_artifacts: {path: @KITCHEN@/code}
      - add_ssh_keys
  ship:
    docker: [{image: cimg/base:stable}]
    steps:
      - attach_workspace: {at: @KITCHEN@-ws}
      - my-orb/deploy
workflows:
  main flow:
    jobs:
      - build: {filters: {tags: {only: /v.*/}}}
      - approve it: {type: approval, requires: [build], filters: {tags: {only: /v.*/}}}
      - ship:
          requires: [approve it]
          filters: {branches: {ignore: /wip\\/.*/}, tags: {only: /v.*/}}
  other:
    jobs: [build]
"""


def kitchen_sink(where: str = "/tmp/cicompile-kitchen") -> str:
    return KITCHEN_SINK.replace("@KITCHEN@", where)


@pytest.mark.parametrize("target_name", TARGETS)
def test_output_is_deterministic(target_name: str) -> None:
    first = compile_text(kitchen_sink(), target_name)
    assert compile_text(kitchen_sink(), target_name) == first


def test_caches_are_translated() -> None:
    from cicompile import compile_config

    result = compile_config(kitchen_sink(), "shell")
    assert not [d for d in result.diagnostics if "cache" in d.message], result.diagnostics
    assert result.files["ci.sh"].count("cc_cache_env\n") == 4  # two steps, two workflows


@pytest.mark.parametrize(
    "config",
    [kitchen_sink(), WORKSPACE, FILTERS, FAILING, LAYERS, BUILTINS, APPROVAL, PARALLEL],
    ids=["kitchen-sink", "workspace", "filters", "failing", "layers", "builtins", "approval",
         "parallel"],
)
def test_shellcheck(config: str, tmp_path: Path) -> None:
    shellcheck = require_tool("shellcheck")
    script = tmp_path / "ci.sh"
    script.write_text(compile_text(config, "shell"))
    p = subprocess.run([shellcheck, "-f", "gcc", str(script)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    # The Makefile carries the same runtime and node scripts in define blocks.
    # Each block is checked on its own, and all of them together.
    bodies = define_bodies(compile_text(config, "make"))
    for name, body in [*bodies.items(), ("all", "\n".join(bodies.values()))]:
        p = subprocess.run([shellcheck, "-f", "gcc", "-"], input="#!/bin/bash\n" + body,
                           capture_output=True, text=True)
        assert p.returncode == 0, f"define {name}:\n{p.stdout}{p.stderr}"


def test_make_dry_run(tmp_path: Path) -> None:
    make = require_tool("make")
    (tmp_path / "Makefile").write_text(compile_text(kitchen_sink(), "make"))
    p = subprocess.run([make, "-n", "--warn-undefined-variables"], cwd=tmp_path,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "warning" not in p.stderr
    lines = p.stdout.splitlines()
    # The first make asks which nodes exist (writing nothing) and runs the second with that.
    assert lines[0].startswith('live=$(/bin/bash -c "$CICOMPILE_RUNTIME" cicompile live) && ')
    assert lines[0].endswith(' CICOMPILE_LIVE="$live" all')
    assert lines[1] == '/bin/bash -c "$CICOMPILE_RUNTIME" cicompile init'
    assert lines[-1] == '/bin/bash -c "$CICOMPILE_RUNTIME" cicompile summary main_flow other'
    assert not list(tmp_path.iterdir())[1:], "make -n must not write anything"
    p = subprocess.run([make, "-n", "workflow.other"], cwd=tmp_path, capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[2:] == [
        '/bin/bash -c "$CICOMPILE_RUNTIME" cicompile node other__build',
        '/bin/bash -c "$CICOMPILE_RUNTIME" cicompile summary other',
    ]


@e2e
def test_tricky_text_survives_both_targets(target: str, tmp_path: Path) -> None:
    """`endef`, trailing backslashes, `$` and quotes reach the job exactly; a second run
    refreshes the checkout an earlier run left at an absolute path."""
    where = tmp_path / "absolute"
    src = project(tmp_path, kitchen_sink(str(where)), target)
    (src / "it's here").write_text("quoted path\n")
    for attempt in range(2):
        r = run(target, src, {"CIRCLE_TAG": "v1", "CICOMPILE_APPROVE": "approve it"},
                args=("workflow.main_flow",) if target == "make" else ("main flow",))
        assert r.statuses("main_flow") == {"build": "success", "approve_it": "success",
                                           "ship": "failed"}, r.output
        out = r.stdout
        home = str(r.run_dir / "jobs/main_flow/build/home")
        assert f"[build] dollar: {home} $$ {home}" in out
        assert "[build] define x\n[build] endef\n" in out
        assert "[build] trailing backslash" in out
        assert "[ship] cicompile: `my-orb/deploy` is a command of the orb" in out
        assert "attached 1 workspace layer(s)" in out
        assert ("refreshing the checkout" in out) == (attempt == 1)
        assert r.status("build", "other") == ""
    with tarfile.open(r.run_dir / "workspace/main_flow/build-0.tar") as tar:
        assert sorted(tar.getnames()) == ["code/README.md", "code/it's here"]


@e2e
def test_selection_usage_and_clean(target: str, tmp_path: Path) -> None:
    two = APPROVAL + "  second:\n    jobs: [build]\n"
    src = project(tmp_path, two, target)
    r = run(target, src, args=("workflow.second",) if target == "make" else ("second",))
    assert r.returncode == 0, r.output
    assert r.statuses("second") == {"build": "success"}
    assert r.statuses("wf") == {}  # the other workflow did not run
    if target == "shell":
        r = run(target, src, args=("--help",))
        assert r.returncode == 0 and "Workflows: wf second" in r.stdout
        r = run(target, src, args=("nope",))
        assert r.returncode == 2 and "no workflow named nope" in r.stderr
        shutil.rmtree(r.run_dir)
    else:
        r = run(target, src, args=("clean",))
        assert r.returncode == 0 and "removed" in r.stdout, r.output
    assert not r.run_dir.exists()


# ---- parallelism and the circleci shim (semantics §8, §9.3) ---------------------------------


@e2e
def test_parallel_nodes_split_tests_and_fill_the_workspace(target: str, tmp_path: Path) -> None:
    src = project(tmp_path, PARALLEL, target)
    r = run(target, src)
    assert r.returncode == 0, r.output
    assert r.statuses() == {"test": "success", "check": "success"}
    check_shares(r.stdout)
    for i in range(3):
        # Each node is a fresh job of its own, with its own directory and artifacts.
        assert (r.run_dir / f"jobs/wf/test@{i}/home/project/shards/node-{i}.txt").is_file()
        stored = r.run_dir / f"artifacts/wf/test@{i}/shards"
        assert [p.name for p in stored.iterdir()] == [f"node-{i}.txt"]
    assert "[check] union checked: 7 files" in r.stdout
    assert "[check] skipped (the job halted): after the halt" in r.stdout


@e2e
def test_one_failing_node_fails_the_job(target: str, tmp_path: Path) -> None:
    r = run(target, project(tmp_path, ONE_NODE_FAILS, target))
    assert r.returncode == failed_exit(target), r.output
    assert r.statuses() == {"flaky": "failed", "after": "blocked"}
    assert "[flaky 0] node 0" in r.stdout and "[flaky 1] node 1" in r.stdout


def test_shim_only_where_needed() -> None:
    assert "cc_install_shim() {" not in compile_text(WORKSPACE, "shell")
    text = compile_text(PARALLEL, "shell")
    assert "cc_parallel wf__test 3" in text
    setups = [line for line in text.splitlines() if line.startswith("  cc_job_setup ")]
    # test (parallel) and check (calls circleci-agent)
    assert [" --shim" in line for line in setups] == [True, True]
