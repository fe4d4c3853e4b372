"""`cicompile graph`: the Mermaid parses with Mermaid's own parser and the dot with Graphviz, on
every golden and corpus config and on names that are markup or syntax in either language."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from cicompile import build_ir
from cicompile.diagnostics import ConfigError, Diagnostics
from cicompile.graph import to_dot, to_mermaid
from cicompile.ir import Pipeline

from tests.corpus_tools import corpus_files, golden_inputs
from tests.tools import ROOT, node_script, require_tool, run

CLI = [sys.executable, "-m", "cicompile"]

# Names with Mermaid's and dot's special characters: quotes, HTML, entity syntax, brackets,
# arrows, dots, slashes, spaces; a regex filter with backslashes.
ODD_NAMES = r"""version: 2.1
jobs:
  build:
    docker: [{image: cimg/base:stable}]
    steps: [checkout]
workflows:
  "release/v1.x & <nightly>":
    jobs:
      - build:
          name: 'lint/js.v2 "quoted" <b>x</b> & y'
          filters: {branches: {only: [/feature\/.*/, 'a"b']}}
      - hold: {type: approval, name: "ok? #quot; [x] {y}",
               requires: ['lint/js.v2 "quoted" <b>x</b> & y']}
      - build:
          name: "end; x -> y --> z"
          requires: ["ok? #quot; [x] {y}"]
          filters: {tags: {only: /v\d+\\n/}, branches: {ignore: /.*/}}
  second:
    jobs: [build]
"""

MATRIX_AND_APPROVALS = """version: 2.1
jobs:
  test:
    parameters: {python: {type: string}}
    docker: [{image: cimg/python:<< parameters.python >>}]
    steps: [checkout]
  deploy:
    docker: [{image: cimg/base:stable}]
    steps: [checkout]
workflows:
  ci:
    jobs:
      - test:
          matrix: {parameters: {python: ["3.11", "3.12"]}}
      - hold: {type: approval, requires: [test]}
      - deploy:
          requires: [hold]
          filters: {branches: {only: main}}
"""


def _pipeline(text: str, path: str = "config.yml") -> Pipeline | None:
    try:
        pipeline = build_ir(text, path, Diagnostics())
    except ConfigError:
        return None
    assert isinstance(pipeline, Pipeline)
    return pipeline


def _inputs() -> list[Path]:
    return golden_inputs() + corpus_files()


def test_mermaid_parses_with_mermaid(tmp_path: Path) -> None:
    """One file per config (a Mermaid block holds one diagram), all parsed by one node."""
    cmd = node_script("mermaid-parse.mjs")
    written = []
    texts = [(p.parent.name if p.name == "input.yml" else p.stem, p.read_text())
             for p in _inputs()]
    texts += [("odd-names", ODD_NAMES), ("matrix", MATRIX_AND_APPROVALS)]
    for name, text in texts:
        pipeline = _pipeline(text)
        if pipeline is None:
            continue
        out = tmp_path / f"{name}.mmd"
        out.write_text(to_mermaid(pipeline))
        written.append(str(out))
    assert len(written) > 60
    r = run([*cmd, *written])
    assert r.returncode == 0, r.stdout + r.stderr


def test_dot_is_accepted_by_graphviz(tmp_path: Path) -> None:
    dot = require_tool("dot")
    texts = [p.read_text() for p in _inputs()] + [ODD_NAMES, MATRIX_AND_APPROVALS]
    drawn = 0
    for text in texts:
        pipeline = _pipeline(text)
        if pipeline is None:
            continue
        r = run([dot, "-Tsvg"], input=to_dot(pipeline))
        assert r.returncode == 0 and "<svg" in r.stdout and not r.stderr, r.stderr
        drawn += 1
    assert drawn > 60


def test_several_workflows_are_one_flowchart() -> None:
    pipeline = _pipeline(ODD_NAMES)
    assert pipeline is not None
    text = to_mermaid(pipeline)
    assert text.count("flowchart LR") == 1
    assert 'subgraph w0["release/v1.x #amp; #lt;nightly#gt;"]' in text
    assert 'subgraph w1["second"]' in text
    ids = re.findall(r"^\s+(w\d+_n\d+)[\[{]", text, re.M)
    assert len(ids) == len(set(ids)) == 4  # node ids unique across workflows


def test_mermaid_shows_names_literally() -> None:
    pipeline = _pipeline(ODD_NAMES)
    assert pipeline is not None
    text = to_mermaid(pipeline)
    # Markup and entity syntax of the names are escaped, never interpreted.
    assert "lint/js.v2 #quot;quoted#quot; #lt;b#gt;x#lt;/b#gt; #amp; y" in text
    assert "ok? #35;quot; [x] {y}" in text
    assert "end; x -#gt; y --#gt; z" in text
    assert "<b>" not in text and "<i>" in text  # only cicompile's own markup


def test_dot_labels_escape_quotes_and_backslashes() -> None:
    pipeline = _pipeline(ODD_NAMES)
    assert pipeline is not None
    text = to_dot(pipeline)
    assert 'label="lint/js.v2 \\"quoted\\" <b>x</b> & y\\n(branches only /feature\\\\/.*/' \
        in text
    assert "tags only /v\\\\d+\\\\\\\\n/" in text


def test_matrix_jobs_and_approvals(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yml"
    cfg.write_text(MATRIX_AND_APPROVALS)
    r = subprocess.run([*CLI, "graph", str(cfg)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert '["test-3.11"]' in r.stdout and '["test-3.12"]' in r.stdout
    assert '{{"⏸ hold"}}' in r.stdout  # approvals: a hexagon
    assert "deploy<br/><i>branches only main</i>" in r.stdout
    r = subprocess.run([*CLI, "graph", "--format", "dot", str(cfg)], capture_output=True,
                       text=True, cwd=ROOT)
    assert r.returncode == 0 and 'label="hold", shape=octagon' in r.stdout


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
def test_no_workflow_left_is_a_valid_empty_graph_and_says_why(tmp_path: Path,
                                                               fmt: str) -> None:
    cfg = tmp_path / "config.yml"
    cfg.write_text("version: 2.1\njobs:\n  build:\n    docker: [{image: x}]\n"
                   "    steps: [checkout]\nworkflows:\n  main:\n    when: false\n"
                   "    jobs: [build]\n")
    r = subprocess.run([*CLI, "graph", "--format", fmt, str(cfg)], capture_output=True,
                       text=True, cwd=ROOT)
    assert r.returncode == 0
    assert r.stdout.startswith("flowchart LR" if fmt == "mermaid" else "digraph circleci {")
    assert "[workflow-skipped]" in r.stderr
    r = subprocess.run([*CLI, "graph", "-q", "--format", fmt, str(cfg)], capture_output=True,
                       text=True, cwd=ROOT)
    assert r.returncode == 0 and r.stderr == ""


def test_config_without_workflows() -> None:
    pipeline = _pipeline("version: 2\njobs:\n  build:\n    docker: [{image: x}]\n"
                         "    steps: [checkout]\n")
    assert pipeline is not None
    assert to_mermaid(pipeline) == '%% workflow workflow\nflowchart LR\n  n0["build"]\n'
