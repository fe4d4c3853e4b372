"""The scheduler of ci.sh (runtime.sh.j2 `cc_schedule`) against the interleavings that made a
job look status-less: about one run in 300 under load reported "the job ended without a
status" for a job that had written one, and recorded it as failed.

The scheduler starts nodes in the background and, after each `wait -n`, tells a finished node
from a running one by its status file and `kill -0`. bash reaps children whenever SIGCHLD
arrives, so a node may write its status and be reaped between the two tests: a status test
made only before `kill -0` reports it failed. The deterministic test forces that interleaving
with a `kill` function that lets the node finish just before answering; the stress test (with
--long-fuzz) runs a wide graph many times under CPU load.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.local_helpers import compile_text
from tests.tools import require_tool

# `slow` cannot finish before the scheduler asks whether it is alive: it waits for the marker
# the `kill` stub below creates.
CONFIG = """
version: 2.1
jobs:
  fast:
    docker: [{image: cimg/base:stable}]
    steps:
      - run: "true"
  slow:
    docker: [{image: cimg/base:stable}]
    steps:
      - run: until [ -e "$CICOMPILE_TEST_GO" ]; do sleep 0.05; done
  last:
    docker: [{image: cimg/base:stable}]
    steps:
      - run: "true"
workflows:
  wf:
    jobs:
      - fast
      - slow
      - last: {requires: [fast, slow]}
"""

# ci.sh without its last line (`cc_shell_main "$@"`), then a `kill` that, asked by the
# scheduler whether a node is alive, releases the node, waits until it has exited (after
# writing its status) and answers "dead": the status appears between the scheduler's tests.
DRIVER = r"""
source <(sed '$d' ci.sh)
kill() {
  if [[ $1 == -0 && ${FUNCNAME[1]} == cc_schedule ]]; then
    : >"$CICOMPILE_TEST_GO"
    wait "$2" 2>/dev/null
    return 1
  fi
  builtin kill "$@"
}
cc_shell_main
"""


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIRCLE", "CICOMPILE"))}
    env.update(CI="true", CIRCLE_BRANCH="main", CICOMPILE_TEST_GO=str(tmp_path / "go"),
               CICOMPILE_RUN_DIR=str(tmp_path / "run"),
               CICOMPILE_CACHE_DIR=str(tmp_path / "cache"))
    return env


def test_a_status_written_just_before_the_liveness_test_is_kept(tmp_path: Path) -> None:
    bash = require_tool("bash")
    (tmp_path / "ci.sh").write_text(compile_text(CONFIG, "shell"))
    (tmp_path / "driver.sh").write_text(DRIVER)
    r = subprocess.run([bash, "driver.sh"], cwd=tmp_path, env=_env(tmp_path),
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    out = r.stdout + r.stderr
    assert (tmp_path / "go").exists(), out  # the interleaving did happen
    assert "ended without a status" not in out
    assert r.returncode == 0, out
    status = tmp_path / "run" / "status" / "wf"
    assert {n: (status / n).read_text() for n in ("fast", "slow", "last")} == {
        "fast": "success\n", "slow": "success\n", "last": "success\n"}


_A = [f"a{i}" for i in range(24)]
_B = [f"b{i}" for i in range(24)]
WIDE = (
    "version: 2.1\njobs:\n  quick:\n    docker: [{image: cimg/base:stable}]\n"
    "    steps:\n      - run: \"true\"\nworkflows:\n  wf:\n    jobs:\n"
    + "".join(f"      - quick: {{name: {a}}}\n" for a in _A)
    + "".join(f"      - quick: {{name: {b}, requires: [{_A[i]}, {_A[(i + 1) % 24]}]}}\n"
              for i, b in enumerate(_B))
    + f"      - quick: {{name: z, requires: [{', '.join(_B)}]}}\n"
)


def test_wide_graph_under_load_never_loses_a_status(tmp_path: Path,
                                                     pytestconfig: pytest.Config) -> None:
    """49 quick nodes, 300 dry runs while two busy loops load the CPU (before the fix: one
    status-less job in 300 such runs, docs/targets.md)."""
    if not pytestconfig.getoption("--long-fuzz"):
        pytest.skip("a stress test (minutes): run with --long-fuzz")
    bash = require_tool("bash")
    (tmp_path / "ci.sh").write_text(compile_text(WIDE, "shell"))
    env = {**_env(tmp_path), "CICOMPILE_DRY_RUN": "1"}
    hogs = [subprocess.Popen([bash, "-c", "while :; do :; done"]) for _ in range(2)]
    try:
        for i in range(300):
            r = subprocess.run([bash, "ci.sh"], cwd=tmp_path, env=env, capture_output=True,
                               text=True, timeout=120, stdin=subprocess.DEVNULL)
            assert r.returncode == 0 and "ended without a status" not in r.stdout, (i, r.stdout)
    finally:
        for p in hogs:
            p.kill()
            p.wait()
