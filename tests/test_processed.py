"""`--target circleci` (the processed config) and the cross-check with CircleCI's own parser
(npm @circleci/circleci-config-parser, through .ci/validators/circleci-parse.mjs)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from cicompile import build_ir, compile_config
from cicompile.diagnostics import Diagnostics
from cicompile.ir import NodeKind, Pipeline
from cicompile.targets.circleci import OUTPUT

from tests.golden_cases import GOLDEN
from tests.tools import node_script, run

V21_CASES = sorted(GOLDEN.glob("v21-reuse*/input.yml"))

# Our own configs: reuse features the goldens do not cover (numbers whose text matters,
# escapes, runtime pipeline values, approvals, registry-orb placeholders, unknown keys).
OWN = {
    "numbers-and-escapes": """\
version: 2.1
parameters:
  py: {type: string, default: "3.10"}
executors:
  py:
    parameters:
      v: {type: string}
    docker: [{image: "cimg/python:<< parameters.v >>"}]
    resource_class: large
jobs:
  test:
    executor: {name: py, v: << pipeline.parameters.py >>}
    parameters:
      retries: {type: integer, default: 3}
    steps:
      - checkout
      - run:
          name: Test
          command: |
            echo "\\<< not a template >> on << pipeline.git.branch >>"
            pytest --retries << parameters.retries >>
          no_output_timeout: 20m
  deploy:
    docker: [{image: cimg/base:stable, auth: {username: me, password: $PW}}]
    steps: [{run: echo deploy}]
workflows:
  main:
    jobs:
      - test: {retries: 5}
      - test: {name: test-again, retries: 0x1F}
      - hold: {type: approval, requires: [test, test-again]}
      - deploy: {requires: [hold], filters: {branches: {only: [main, /release-.*/]}}}
""",
    "orb-placeholders": """\
version: 2.1
orbs:
  slack: circleci/slack@4.12.5
  util:
    commands:
      say:
        parameters: {what: {type: string, default: hi}}
        steps: [{run: echo << parameters.what >>}]
    jobs:
      hello:
        docker: [{image: cimg/base:stable}]
        steps: [say, {say: {what: there}}]
jobs:
  build:
    docker: [{image: cimg/base:stable}]
    steps: [checkout, slack/notify]
workflows:
  main:
    jobs: [build, {util/hello: {requires: [build]}}, {slack/on-hold: {requires: [build]}}]
""",
}


def _processed(text: str, path: str, args: dict[str, Any] | None = None) -> str:
    result = compile_config(text, "circleci", path=path, **(args or {}))
    assert result.ok, result.diagnostics
    return result.files[OUTPUT]


def _params(case: Path) -> dict[str, Any]:
    """The `--param` arguments of a golden case (its `args` file), for compile_config."""
    args_file = case.parent / "args"
    words = shlex.split(args_file.read_text()) if args_file.exists() else []
    params = dict(w.split("=", 1) for w in words if "=" in w)
    return {"pipeline_params": params} if params else {}


def _inputs() -> list[tuple[str, str, dict[str, Any]]]:
    cases = [(c.parent.name, c.read_text(), _params(c)) for c in V21_CASES]
    return cases + [(name, text, {}) for name, text in OWN.items()]


INPUTS = _inputs()
# Configs CircleCI's parser cannot read (its gaps, not config errors): `- steps: << parameters.
# steps >>` inside a command ("Custom Command steps not found"), string orb-command steps.
PARSER_REJECTS = {"v21-reuse", "v21-reuse-params", "orb-placeholders"}


@pytest.mark.parametrize(("name", "text", "args"), INPUTS, ids=[i[0] for i in INPUTS])
def test_processing_is_idempotent(name: str, text: str, args: dict[str, Any]) -> None:
    once = _processed(text, "config.yml", args)
    assert _processed(once, "config.yml") == once
    assert yaml.safe_load(once)["version"] == 2


@pytest.mark.parametrize("target", ["github", "gitlab"])
@pytest.mark.parametrize(("name", "text", "args"), INPUTS, ids=[i[0] for i in INPUTS])
def test_processed_config_compiles_like_the_original(name: str, text: str,
                                                     args: dict[str, Any], target: str) -> None:
    once = _processed(text, "config.yml", args)
    original = compile_config(text, target, path="config.yml", **args)
    again = compile_config(once, target, path="config.yml")
    assert original.ok and again.ok
    assert again.files == original.files


def test_processed_keeps_what_the_ir_drops() -> None:
    out = yaml.safe_load(_processed(OWN["numbers-and-escapes"], "c.yml"))
    test = out["jobs"]["test"]
    assert test["resource_class"] == "large"
    assert test["docker"] == [{"image": "cimg/python:3.10"}]  # not 3.1
    assert test["steps"][1]["run"]["no_output_timeout"] == "20m"
    assert test["steps"][1]["run"]["command"].startswith(
        'echo "<< not a template >> on ${CIRCLE_BRANCH}"')
    assert out["jobs"]["deploy"]["docker"][0]["auth"] == {"username": "me", "password": "$PW"}
    assert "0x1F" in _processed(OWN["numbers-and-escapes"], "c.yml")
    assert list(out["workflows"]) == ["version", "main"]
    assert "executors" not in out and "parameters" not in out


def test_processed_keeps_unavailable_registry_orbs() -> None:
    out = yaml.safe_load(_processed(OWN["orb-placeholders"], "c.yml"))
    assert out["orbs"] == {"slack": "circleci/slack@4.12.5"}  # the inline orb is expanded
    assert out["jobs"]["util/hello"]["steps"] == [{"run": "echo hi"}, {"run": "echo there"}]


def test_cli_writes_the_processed_file(tmp_path: Path) -> None:
    from cicompile.cli import main
    from click.testing import CliRunner

    r = CliRunner().invoke(main, ["--target", "circleci", "-o", str(tmp_path),
                                  str(V21_CASES[0])])
    assert r.exit_code == 0, r.output
    assert (tmp_path / ".circleci" / "config.processed.yml").is_file()


# ---- CircleCI's own parser ------------------------------------------------------------


def _parse(path: Path) -> dict[str, Any] | None:
    """The parser's summary, or None when it rejects the config (it has gaps of its own)."""
    r = run([*node_script("circleci-parse.mjs"), str(path)])
    if r.returncode != 0:
        return None
    data: dict[str, Any] = json.loads(r.stdout)
    assert data["problems"] == [], data["problems"]
    return data


def _as_21(processed: str) -> str:
    """The processed (2.0) config as 2.1: the parser reads only 2.1 and refuses
    `workflows: version`; nothing else differs for it."""
    data = yaml.safe_load(processed)
    data["version"] = 2.1
    data["workflows"].pop("version", None)
    return yaml.safe_dump(data, sort_keys=False)


def _structure_of_parser(data: dict[str, Any]) -> dict[str, list[tuple[str, str, str, list[str]]]]:
    out = {}
    for wf, body in data["workflows"].items():
        out[wf] = sorted((e["name"], e["job"] if e["type"] != "approval" else "",
                          "approval" if e["type"] == "approval" else "job",
                          sorted(e["requires"])) for e in body["jobs"])
    return out


def _structure_of_ir(p: Pipeline) -> dict[str, list[tuple[str, str, str, list[str]]]]:
    out = {}
    for wf in p.workflows:
        out[wf.name] = sorted((n.name, n.job or "", "approval" if n.kind is NodeKind.APPROVAL
                               else "job", sorted(n.requires)) for n in wf.nodes)
    return out


def _ir(text: str, args: dict[str, Any]) -> Pipeline:
    p = build_ir(text, "c.yml", Diagnostics(), **args)
    assert isinstance(p, Pipeline)
    return p


@pytest.mark.parametrize(("name", "text", "args"), INPUTS, ids=[i[0] for i in INPUTS])
def test_circleci_parser_agrees_with_the_ir(name: str, text: str, args: dict[str, Any],
                                            tmp_path: Path) -> None:
    """Workflows, entries (names, jobs), requires and approvals, as CircleCI's parser reads
    them, are cicompile's. The original is compared where the parser accepts it and it has
    no matrix (the parser expands nothing); the processed config always (matrices expanded,
    it is what cicompile understood, read by CircleCI's parser)."""
    ir = _structure_of_ir(_ir(text, args))
    processed_text = _processed(text, "c.yml", args)
    # The parser resolves registry orb *commands* only through manifests it cannot build
    # for a 2.0-style job ("Unknown native command"), so such configs skip this half.
    if "orbs" not in yaml.safe_load(processed_text):
        processed = tmp_path / "processed.yml"
        processed.write_text(_as_21(processed_text))
        parsed = _parse(processed)
        assert parsed is not None, "CircleCI's parser rejects the processed config"
        assert _structure_of_parser(parsed) == ir
    original = tmp_path / "original.yml"
    original.write_text(text)
    raw = _parse(original)
    if raw is not None and "matrix" not in text:
        # Un-expanded: an entry names the job as written, while the IR names the concrete
        # job made for its arguments (`test-again`), so the job column is left out; workflows
        # decided false by pipeline parameters are not in the IR.
        def unexpanded(s: dict[str, list[tuple[str, str, str, list[str]]]]) -> dict[str, Any]:
            return {wf: [(n, k, r) for n, _, k, r in es] for wf, es in s.items() if wf in ir}

        assert unexpanded(_structure_of_parser(raw)) == unexpanded(ir)
    elif raw is None:
        assert name in PARSER_REJECTS, f"CircleCI's parser rejects {name}"
