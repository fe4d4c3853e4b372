"""GitHub output, run end to end by tests/gha_runner.py (GitHub's own expression engine)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cicompile import compile_config

from tests.gha_runner import WorkflowRunner
from tests.golden_cases import GOLDEN
from tests.parallel_cases import ONE_NODE_FAILS, PARALLEL, check_shares
from tests.reference import existing_jobs

pytestmark = pytest.mark.e2e


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[WorkflowRunner]:
    src = tmp_path / "src"
    src.mkdir()
    (src / "README").write_text("source file\n")
    r = WorkflowRunner(tmp_path / "run", src)
    yield r
    r.close()


def _compile(text: str, tmp: Path) -> dict[str, Path]:
    result = compile_config(text, "github")
    assert result.ok, result.diagnostics
    out = {}
    for rel, content in result.files.items():
        p = tmp / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
        out[Path(rel).stem] = p
    return out


def test_seed_workspace_keeps_content_and_mode(runner: WorkflowRunner, tmp_path: Path) -> None:
    files = _compile((GOLDEN / "seed-workspace" / "input.yml").read_text(), tmp_path)
    res = runner.run(files["btd"], "branch", "main")
    assert res["flow"].result == "success", res["flow"].log
    assert res["downstream"].result == "success", res["downstream"].log
    assert "It worked!" in res["downstream"].log
    assert "executable kept" in res["downstream"].log


LAYERED = """
version: 2
jobs:
  a:
    steps:
      - run: mkdir -p ws && echo A > ws/a.txt && echo private > not-persisted.txt
      - persist_to_workspace: {root: ws, paths: [a.txt]}
  b:
    steps:
      - run: mkdir -p ws && echo B > ws/b.txt && touch ws/.hidden
      - persist_to_workspace: {root: ws, paths: [b.txt, .hidden]}
  c:
    steps:
      - attach_workspace: {at: got}
      - run: test -f got/a.txt && test ! -e got/b.txt && test ! -e not-persisted.txt
  d:
    steps:
      - attach_workspace: {at: got}
      - run: test "$(cat got/a.txt got/b.txt)" = "$(printf 'A\\nB')" && test -f got/.hidden
      - run: echo D > got/d.txt
      - persist_to_workspace: {root: got, paths: [d.txt]}
  e:
    steps:
      - attach_workspace: {at: /tmp/cicompile-gh-e2e-layers}
      - run: cd /tmp/cicompile-gh-e2e-layers && test -f a.txt && test -f b.txt && test -f d.txt
workflows:
  version: 2
  layers:
    jobs:
      - a
      - b
      - c: {requires: [a]}
      - d: {requires: [a, b]}
      - e: {requires: [d]}
"""


def test_layered_workspaces(runner: WorkflowRunner, tmp_path: Path) -> None:
    files = _compile(LAYERED, tmp_path)
    res = runner.run(files["layers"], "branch", "main")
    for job in "abcde":
        assert res[job].result == "success", (job, res[job].log)


def test_approval_blocks_until_granted(runner: WorkflowRunner, tmp_path: Path) -> None:
    files = _compile((GOLDEN / "seed-approval" / "input.yml").read_text(), tmp_path)
    wf = files["build-test-and-approval-deploy"]
    res = runner.run(wf, "branch", "main")
    assert res["test2"].result == "success"
    assert res["hold"].result == "waiting" and res["deploy"].result == "waiting"
    res = runner.run(wf, "branch", "main", approve=frozenset({"hold"}))
    assert res["hold"].result == "success" and res["deploy"].result == "success"


REFS = [("branch", "main"), ("branch", "feature/x"), ("branch", "wip/y"), ("branch", "scratch"),
        ("branch", "release/1.2"), ("tag", "v1.2.3"), ("tag", "nightly"), ("tag", "v1.2")]


@pytest.mark.parametrize(("kind", "name"), REFS)
def test_filters_select_the_right_jobs(runner: WorkflowRunner, tmp_path: Path, kind: str,
                                       name: str) -> None:
    text = (GOLDEN / "release-pipeline" / "input.yml").read_text()
    config = yaml.safe_load(text)
    want = existing_jobs(config, name if kind == "branch" else "", name if kind == "tag" else "")
    files = _compile(text, tmp_path)
    for wf_name, path in files.items():
        doc = yaml.safe_load(path.read_text())
        push = (doc.get("on") or doc[True])["push"]  # YAML 1.1 reads bare `on` as True
        triggered = ("branches" in push) if kind == "branch" else ("tags" in push)
        res = runner.run(path, kind, name, approve=frozenset({"approve-release"}))
        ran = {j for j, r in res.items() if r.result == "success" and j != "circleci-gate"}
        if not triggered:
            ran = set()
        assert ran == want[wf_name], (wf_name, {j: (r.result, r.log) for j, r in res.items()})


FAILING = """
version: 2
jobs:
  ok:
    steps: [{run: echo fine}]
  broken:
    steps:
      - run: echo 'export FROM_BASH_ENV=1' >> "$BASH_ENV"; exit 3
      - run:
          name: on failure
          command: echo "cleanup after failure"
          when: on_fail
      - run:
          name: always
          command: echo "always runs"
          when: always
      - run: echo "never printed"
  after:
    steps: [{run: echo after}]
workflows:
  version: 2
  w:
    jobs: [ok, broken, {after: {requires: [broken]}}]
"""


def test_failure_stops_dependents_only(runner: WorkflowRunner, tmp_path: Path) -> None:
    files = _compile(FAILING, tmp_path)
    res = runner.run(files["w"], "branch", "main")
    assert res["ok"].result == "success"
    assert res["broken"].result == "failure"
    assert "cleanup after failure" in res["broken"].log and "always runs" in res["broken"].log
    assert "never printed" not in res["broken"].log
    assert res["after"].result == "skipped"


CACHES = """
version: 2
jobs:
  seed:
    steps:
      - checkout
      - run: mkdir -p deps && echo from-seed > deps/marker
      - save_cache:
          key: v1-deps-{{ .Branch }}-{{ checksum "README" }}
          paths: [deps]
  exact:
    steps:
      - checkout
      - restore_cache:
          keys: ['v1-deps-{{ .Branch }}-{{ checksum "README" }}', v1-deps-]
      - run: test "$(cat deps/marker)" = from-seed
  fallback:
    steps:
      - checkout
      - run: echo changed > README
      - restore_cache:
          keys: ['v1-deps-{{ .Branch }}-{{ checksum "README" }}', 'v1-deps-{{ .Branch }}-']
      - run: test "$(cat deps/marker)" = from-seed
  miss:
    steps:
      - restore_cache:
          key: v2-other-
      - run: test ! -e deps
workflows:
  version: 2
  caches:
    jobs:
      - seed
      - exact: {requires: [seed]}
      - fallback: {requires: [seed]}
      - miss: {requires: [seed]}
"""


def test_cache_saved_then_restored_with_prefix_fallback(runner: WorkflowRunner,
                                                         tmp_path: Path) -> None:
    result = compile_config(CACHES, "github")
    assert any(d.code == "cache-paths-unknown" for d in result.diagnostics)
    files = _compile(CACHES, tmp_path)
    res = runner.run(files["caches"], "branch", "main")
    for job in ("seed", "exact", "fallback", "miss"):
        assert res[job].result == "success", (job, res[job].log)
    assert "restored cache v1-deps-main-" in res["fallback"].log


CONTEXT = """
version: 2
jobs:
  deploy:
    steps:
      - run: test "$BUCKET" = from-secret && test "$REGION" = eu && echo "home $HOME"
    environment: {REGION: eu}
workflows:
  version: 2
  w:
    jobs:
      - deploy: {context: [aws-prod]}
"""


def test_context_variables_come_from_secrets(runner: WorkflowRunner, tmp_path: Path) -> None:
    files = _compile(CONTEXT, tmp_path)
    text = files["w"].read_text()
    assert "BUCKET: ${{ secrets.BUCKET }}" in text and "secrets.HOME" not in text
    runner.secrets = {"BUCKET": "from-secret"}
    res = runner.run(files["w"], "branch", "main")
    assert res["deploy"].result == "success", res["deploy"].log


def test_parallel_matrix_legs_split_tests_and_fill_the_workspace(
    runner: WorkflowRunner, tmp_path: Path
) -> None:
    files = _compile(PARALLEL, tmp_path)
    res = runner.run(files["wf"], "branch", "main")
    assert res["test"].result == "success", res["test"].log
    check_shares(res["test"].log)
    assert "node variables 2/3" in res["test"].log
    assert res["check"].result == "success", res["check"].log
    assert "union checked: 7 files" in res["check"].log
    assert "--- after the halt" not in res["check"].log  # skipped after the halt


def test_parallel_job_fails_when_one_leg_fails(runner: WorkflowRunner, tmp_path: Path) -> None:
    files = _compile(ONE_NODE_FAILS, tmp_path)
    res = runner.run(files["wf"], "branch", "main")
    assert res["flaky"].result == "failure", res["flaky"].log
    assert "node 0" in res["flaky"].log and "node 1" in res["flaky"].log
    assert res["after"].result == "skipped"
