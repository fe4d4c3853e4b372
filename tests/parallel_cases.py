"""The `parallelism` scenario every target runs end to end (semantics §8, §9).

A 3-node job splits seven test files with `circleci tests glob | circleci tests split`; each
node checks its CIRCLE_NODE_* variables from inside, runs its share, prints it and persists it
to the workspace; a descendant checks (in bash, inside the job) that it sees every node's
share and that the shares are disjoint and cover every file, then halts with
`circleci-agent step halt` before a step that would fail. The Python side re-checks the
shares from the logs, so a bug in the job's own check cannot hide a wrong split.
"""

from __future__ import annotations

import re

TEST_FILES = (
    "tests/a_test.sh", "tests/b_test.sh", "tests/unit/c_test.sh", "tests/unit/d_test.sh",
    "tests/unit/deep/e_test.sh", "tests/z/f_test.sh", "tests/z/g_test.sh",
)
NODES = 3

PARALLEL = """
version: 2.1
jobs:
  test:
    parallelism: 3
    docker: [{image: cimg/base:stable}]
    steps:
      - run:
          name: make the test files
          command: |
            mkdir -p tests/unit/deep tests/z
            for f in %(files)s; do
              printf 'echo "executed %s on node $CIRCLE_NODE_INDEX"\\n' "$f" > "$f"
            done
      - run:
          name: node variables
          command: |
            echo "node variables $CIRCLE_NODE_INDEX/$CIRCLE_NODE_TOTAL"
            test "$CIRCLE_NODE_TOTAL" = 3
            case $CIRCLE_NODE_INDEX in 0 | 1 | 2) ;; *) exit 1 ;; esac
      - run:
          name: split
          command: |
            mkdir -p shards
            share=shards/node-$CIRCLE_NODE_INDEX.txt
            circleci tests glob 'tests/**/*_test.sh' | circleci tests split > "$share"
            echo "node $CIRCLE_NODE_INDEX ran: $(tr '\\n' ' ' < "$share")"
      - run:
          name: tests run
          command: >-
            circleci tests glob 'tests/**/*_test.sh' |
            circleci tests run --command 'xargs -n 1 bash'
      - store_artifacts: {path: shards}
      - persist_to_workspace: {root: ., paths: [shards]}
  check:
    docker: [{image: cimg/base:stable}]
    steps:
      - attach_workspace: {at: ws}
      - run:
          name: every file exactly once
          command: |
            test "$CIRCLE_NODE_INDEX/$CIRCLE_NODE_TOTAL" = 0/1
            test "$(ls ws/shards | tr '\\n' ' ')" = 'node-0.txt node-1.txt node-2.txt '
            cat ws/shards/node-*.txt | sort > all.txt
            sort -u all.txt | cmp - all.txt
            test "$(wc -l < all.txt)" = 7
            echo "union checked: $(wc -l < all.txt) files"
      - run: circleci-agent step halt
      - run:
          name: after the halt
          command: exit 1
workflows:
  wf:
    jobs:
      - test
      - check: {requires: [test]}
""".replace("%(files)s", " ".join(TEST_FILES))

# A parallel job with one failing node: the job fails, its dependents do not run.
ONE_NODE_FAILS = """
version: 2.1
jobs:
  flaky:
    parallelism: 2
    docker: [{image: cimg/base:stable}]
    steps:
      - run: echo "node $CIRCLE_NODE_INDEX" && test "$CIRCLE_NODE_INDEX" = 0
  after:
    docker: [{image: cimg/base:stable}]
    steps:
      - run: echo should not run
workflows:
  wf:
    jobs:
      - flaky
      - after: {requires: [flaky]}
"""

_SHARE = re.compile(r"node (\d) ran: (.*)$", re.M)
_EXECUTED = re.compile(r"executed (\S+) on node (\d)")


def shares(log: str) -> dict[int, list[str]]:
    """Each node's share, from the `node I ran: ...` lines of the job's log(s)."""
    return {int(i): files.split() for i, files in _SHARE.findall(log)}


def check_shares(log: str) -> None:
    """Every node reported, the shares are disjoint, together they are every file, and
    `circleci tests run` executed each file exactly once, on the node the split chose."""
    got = shares(log)
    assert sorted(got) == list(range(NODES)), log
    union = [f for files in got.values() for f in files]
    assert sorted(union) == sorted(TEST_FILES), got
    assert len(set(union)) == len(union), got
    executed = _EXECUTED.findall(log)
    assert sorted(f for f, _ in executed) == sorted(TEST_FILES), executed
    assert all(f in got[int(i)] for f, i in executed), (executed, got)
