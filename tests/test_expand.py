"""CircleCI 2.1 expansion (compiler/frontend/expand.py): parameters, commands, executors,
job invocations, matrices, conditions, pipeline parameters and values, orbs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cicompile import build_ir, compile_config
from cicompile.diagnostics import ConfigError, Diagnostics
from cicompile.frontend.expand import expand_config
from cicompile.frontend.yaml_loader import YMap, YNode, YScalar, YSeq, load_yaml
from cicompile.ir import Pipeline, Run, Unsupported

CORPUS = Path("/work/shared/corpus/circleci")
HEAD = "version: 2.1\n"
DOCKER = "    docker: [{image: cimg/base:stable}]\n"


def plain(node: YNode) -> Any:
    if isinstance(node, YScalar):
        return node.value
    if isinstance(node, YSeq):
        return [plain(i) for i in node.items]
    return {k.as_str(): plain(v) for k, v in node.pairs}


def expand_tree(text: str, params: dict[str, str] | None = None) -> tuple[YMap, Diagnostics]:
    d = Diagnostics()
    root = load_yaml(text, "c.yml", d)
    assert isinstance(root, YMap)
    return expand_config(root, d, pipeline_params=params), d


def expand(text: str, params: dict[str, str] | None = None) -> tuple[dict[str, Any], Diagnostics]:
    tree, d = expand_tree(text, params)
    return plain(tree), d


def errors(text: str, params: dict[str, str] | None = None) -> list[tuple[str, int, int]]:
    d = Diagnostics()
    root = load_yaml(text, "c.yml", d)
    assert isinstance(root, YMap)
    with pytest.raises(ConfigError):
        expand_config(root, d, pipeline_params=params)
    return [(x.code, x.span.line if x.span else 0, x.span.col if x.span else 0)
            for x in d.sorted() if x.severity == "error"]


def codes(d: Diagnostics, severity: str = "warning") -> list[str]:
    return [x.code for x in d.sorted() if x.severity == severity]


def commands_of(job: dict[str, Any]) -> list[str]:
    out = []
    for step in job["steps"]:
        if isinstance(step, dict) and "run" in step:
            body = step["run"]
            out.append(body if isinstance(body, str) else body["command"])
        else:
            out.append(step if isinstance(step, str) else next(iter(step)))
    return out


# ---- substitution -----------------------------------------------------------------------

JOB_WITH_PARAMS = HEAD + """\
jobs:
  build:
    parameters:
      version: {type: string, default: "3.10"}
      nodes: {type: integer, default: 2}
      verbose: {type: boolean, default: yes}
      token: {type: env_var_name, default: NPM_TOKEN}
      os: {type: enum, enum: [linux, mac], default: linux}
    docker: [{image: "cimg/python:<< parameters.version >>"}]
    parallelism: << parameters.nodes >>
    environment:
      VERBOSE: << parameters.verbose >>
    steps:
      - run: echo <<parameters.os>> ${<< parameters.token >>} v=<< parameters.verbose >>
      - run: cat \\<<EOF > f
      - run: cat <<EOF >> out.txt
workflows:
  w:
    jobs: [build]
"""


def test_substitution_embeds_and_keeps_whole_value_types() -> None:
    out, d = expand(JOB_WITH_PARAMS)
    job = out["jobs"]["build"]
    assert job["docker"] == [{"image": "cimg/python:3.10"}]
    assert job["parallelism"] == 2  # whole value: still an integer
    assert job["environment"] == {"VERBOSE": True}
    assert "parameters" not in job
    assert commands_of(job) == [
        "echo linux ${NPM_TOKEN} v=true",  # booleans print as true/false, not `yes`
        "cat <<EOF > f",  # `\<<` is the escape for a literal `<<`
        "cat <<EOF >> out.txt",  # not a reference: literal text, no diagnostic
    ]
    assert not d.items


def test_parameter_errors_have_positions() -> None:
    text = HEAD + """\
commands:
  greet:
    parameters:
      who: {type: string}
      times: {type: integer, default: 1}
    steps:
      - run: echo << parameters.who >> << parameters.times >> << parameters.nope >>
jobs:
  build:
""" + DOCKER + """\
    steps:
      - greet
      - greet: {who: me, times: many}
      - greet: {who: me, colour: red}
      - greet: {who: me}
workflows:
  w:
    jobs: [build]
"""
    assert errors(text) == [
        ("undeclared-parameter", 8, 14),  # reported in the command, where it is written
        ("missing-parameter", 13, 9),  # at the invocation
        ("invalid-parameter", 14, 33),  # at the value
        ("unknown-parameter", 15, 26),  # at the argument's name
    ]


@pytest.mark.parametrize(("ptype", "value", "ok"), [
    ("string", "'yes'", True), ("string", "yes", False), ("string", "3.8", True),
    ("boolean", "on", True), ("boolean", "'true'", False),
    ("integer", "3", True), ("integer", "'3'", False), ("integer", "3.5", False),
    ("enum", "b", True), ("enum", "c", False),
    ("env_var_name", "MY_TOKEN", True), ("env_var_name", "1TOKEN", False),
    ("steps", "[{run: x}]", True), ("steps", "x", False),
])
def test_parameter_types(ptype: str, value: str, ok: bool) -> None:
    enum = ", enum: [a, b]" if ptype == "enum" else ""
    text = HEAD + f"""\
commands:
  c:
    parameters:
      p: {{type: {ptype}{enum}}}
    steps: [{{run: echo}}]
jobs:
  build:
{DOCKER}    steps:
      - c: {{p: {value}}}
workflows:
  w:
    jobs: [build]
"""
    if ok:
        expand(text)
    else:
        assert [c for c, _, _ in errors(text)] == ["invalid-parameter"]


def test_invalid_declarations() -> None:
    text = HEAD + """\
parameters:
  p: {type: string}
commands:
  c:
    parameters:
      a: {type: text}
      b: {type: enum}
      e: {type: enum, enum: [x, y], default: z}
    steps: [{run: echo}]
jobs:
  build:
""" + DOCKER + """\
    steps: [c]
workflows:
  w:
    jobs: [build]
"""
    assert [c for c, _, _ in errors(text)] == [
        "invalid-parameter-declaration",  # pipeline parameter without default
        "invalid-parameter-declaration",  # unknown type
        "invalid-parameter-declaration",  # enum without values
        "invalid-parameter",  # default outside the enum
    ]


def test_legacy_sections() -> None:
    text = HEAD + """\
jobs:
  build:
    parameters:
      core: {type: boolean, default: true}
      plain: {type: boolean, default: false}
""" + DOCKER + """\
    steps:
      - run: tox -e <<# parameters.core >>core-<</ parameters.core
          >>py<<^ parameters.plain >>!<</ parameters.plain >>
workflows:
  w:
    jobs: [build]
"""
    out, _ = expand(text)
    assert commands_of(out["jobs"]["build"]) == ["tox -e core-py!"]


# ---- commands ---------------------------------------------------------------------------

COMMANDS = HEAD + """\
commands:
  test:
    parameters:
      before: {type: steps, default: []}
      target: {type: string, default: all}
    steps:
      - run: make deps
      - steps: << parameters.before >>
      - run: make << parameters.target >>
  wrapped:
    parameters:
      inner: {type: steps}
    steps:
      - << parameters.inner >>
      - test: {target: wrapped}
  checkout:
    steps:
      - run: echo before checkout
      - checkout
jobs:
  build:
    parameters:
      greeting: {type: string, default: hi}
""" + DOCKER + """\
    steps:
      - checkout
      - test:
          before:
            - run: echo << parameters.greeting >>
            - run: echo b
      - wrapped:
          inner: [{run: echo inner}]
workflows:
  w:
    jobs: [build]
"""


def test_commands_inline_splice_and_override_builtins() -> None:
    out, d = expand(COMMANDS)
    assert commands_of(out["jobs"]["build"]) == [
        "echo before checkout", "checkout",  # a command named like a built-in overrides it
        "make deps", "echo hi", "echo b", "make all",  # the caller's parameter, spliced
        "echo inner", "make deps", "make wrapped",  # `- << parameters.steps >>` splices too
    ]
    assert "commands" not in out
    assert not d.items


def test_inlined_steps_point_at_the_command() -> None:
    d = Diagnostics()
    p = build_ir(COMMANDS, "c.yml", d)
    assert isinstance(p, Pipeline)
    runs = [s for s in p.job("build").steps if isinstance(s, Run)]
    assert runs[0].span is not None and runs[0].span.line == 19  # `- run: echo before checkout`
    assert runs[1].span is not None and runs[1].span.line == 8  # `- run: make deps`


def test_command_parameters_are_lexically_scoped() -> None:
    text = HEAD + """\
commands:
  show:
    steps: [{run: echo << parameters.greeting >>}]
jobs:
  build:
    parameters:
      greeting: {type: string, default: hi}
""" + DOCKER + """\
    steps: [show]
workflows:
  w:
    jobs: [build]
"""
    assert errors(text) == [("undeclared-parameter", 4, 19)]


def test_recursive_commands_are_refused() -> None:
    text = HEAD + """\
commands:
  a:
    steps: [b]
  b:
    steps: [{run: x}, a]
jobs:
  build:
""" + DOCKER + """\
    steps: [a]
workflows:
  w:
    jobs: [build]
"""
    assert errors(text) == [("recursive-command", 6, 23)]


def test_exponential_fan_out_is_refused() -> None:
    cmds = "".join(f"  c{i}:\n    steps: [c{i + 1}, c{i + 1}]\n" for i in range(30))
    text = HEAD + "commands:\n" + cmds + "  c30:\n    steps: [{run: x}]\njobs:\n  build:\n" \
        + DOCKER + "    steps: [c0]\nworkflows:\n  w:\n    jobs: [build]\n"
    assert [c for c, _, _ in errors(text)] == ["expansion-limit"]


# ---- executors --------------------------------------------------------------------------

EXECUTORS = HEAD + """\
executors:
  py:
    parameters:
      tag: {type: string, default: "3.12"}
    docker: [{image: "cimg/python:<< parameters.tag >>"}]
    working_directory: /src
    environment: {A: from-executor, B: from-executor}
    resource_class: large
jobs:
  one:
    executor: py
    steps: [checkout]
  two:
    executor: {name: py, tag: "3.9"}
    docker: [{image: alpine}]
    environment: {B: from-job}
    steps: [checkout]
  three:
    parameters:
      e: {type: executor, default: py}
    executor: << parameters.e >>
    steps: [checkout]
workflows:
  w:
    jobs: [one, two, three]
"""


def test_executors_merge_into_jobs() -> None:
    out, d = expand(EXECUTORS)
    one, two, three = (out["jobs"][n] for n in ("one", "two", "three"))
    assert one == {"docker": [{"image": "cimg/python:3.12"}], "working_directory": "/src",
                   "environment": {"A": "from-executor", "B": "from-executor"},
                   "resource_class": "large", "steps": ["checkout"]}
    # the job's own keys win wholesale, except `environment`, merged key by key
    assert two["docker"] == [{"image": "alpine"}]
    assert two["environment"] == {"A": "from-executor", "B": "from-job"}
    assert three["docker"] == one["docker"]
    assert not d.items


def test_unknown_executor() -> None:
    text = HEAD + "jobs:\n  build:\n    executor: nope\n    steps: [checkout]\n" \
        "workflows:\n  w:\n    jobs: [build]\n"
    assert errors(text) == [("unknown-executor", 4, 15)]


# ---- job invocations ----------------------------------------------------------------------

INVOCATIONS = HEAD + """\
jobs:
  test:
    parameters:
      py: {type: string, default: "3.12"}
""" + DOCKER + """\
    steps: [{run: pytest --py << parameters.py >>}]
workflows:
  w:
    jobs:
      - test
      - test: {name: test-old, py: "3.8", requires: [test]}
      - test: {name: test-same, py: "3.12"}
      - test:
          name: test-wrapped
          pre-steps: [{run: echo pre}]
          post-steps: [{run: echo post}]
          requires: [test-old]
  other:
    jobs:
      - test: {py: "3.8"}
"""


def test_each_distinct_invocation_is_a_concrete_job() -> None:
    out, d = expand(INVOCATIONS)
    jobs = out["jobs"]
    assert list(jobs) == ["test", "test-old", "test-wrapped"]
    assert commands_of(jobs["test-old"]) == ["pytest --py 3.8"]
    assert commands_of(jobs["test-wrapped"]) == ["echo pre", "pytest --py 3.12", "echo post"]
    assert out["workflows"]["w"]["jobs"] == [
        "test",
        {"test-old": {"requires": ["test"]}},
        {"test": {"name": "test-same"}},  # same arguments as the plain job: shared
        {"test-wrapped": {"requires": ["test-old"]}},
    ]
    # the same arguments in another workflow reuse the concrete job, keeping the name
    assert out["workflows"]["other"]["jobs"] == [{"test-old": {"name": "test"}}]
    assert not d.items


def test_invocations_compile_to_ir() -> None:
    d = Diagnostics()
    p = build_ir(INVOCATIONS, "c.yml", d)
    assert isinstance(p, Pipeline)
    w = next(wf for wf in p.workflows if wf.name == "w")
    assert {n.name: n.job for n in w.nodes} == {
        "test": "test", "test-same": "test", "test-old": "test-old",
        "test-wrapped": "test-wrapped"}


def test_job_argument_errors() -> None:
    text = HEAD + """\
jobs:
  test:
    parameters:
      py: {type: string}
""" + DOCKER + """\
    steps: [checkout]
workflows:
  w:
    jobs:
      - test
      - test: {name: b, py: "3", colour: red}
"""
    assert errors(text) == [("missing-parameter", 11, 9), ("unknown-parameter", 12, 34)]


# ---- matrix -----------------------------------------------------------------------------

MATRIX = HEAD + """\
jobs:
  build:
    parameters:
      version: {type: string}
      platform: {type: string}
""" + DOCKER + """\
    steps: [{run: make << parameters.platform >> << parameters.version >>}]
  deploy:
""" + DOCKER + """\
    steps: [{run: deploy}]
workflows:
  w:
    jobs:
      - build:
          matrix:
            parameters:
              version: ["0.1", "0.2"]
              platform: [macos, linux]
            exclude:
              - {version: "0.2", platform: linux}
      - build:
          name: again-<< matrix.version >>
          matrix:
            alias: again
            parameters: {version: ["0.1"], platform: [linux]}
          requires: [build-macos-<< matrix.version >>]
      - deploy:
          requires: [build, again]
"""


def test_matrix_expansion_names_and_alias() -> None:
    out, d = expand(MATRIX)
    entries = out["workflows"]["w"]["jobs"]
    # default names: the job, then values ordered by parameter name (platform < version)
    assert entries[:3] == ["build-macos-0.1", "build-linux-0.1", "build-macos-0.2"]
    # per-instance `requires` (one-to-one); the same arguments as `build-linux-0.1`: shared
    assert entries[3] == {"build-linux-0.1": {"name": "again-0.1",
                                              "requires": ["build-macos-0.1"]}}
    assert entries[4] == {"deploy": {"requires": [
        "build-macos-0.1", "build-linux-0.1", "build-macos-0.2", "again-0.1"]}}
    assert commands_of(out["jobs"]["build-linux-0.1"]) == ["make linux 0.1"]
    assert "build" not in out["jobs"]  # required parameters: no plain `build`
    assert out["jobs"].keys() == {"build-macos-0.1", "build-linux-0.1", "build-macos-0.2",
                                  "deploy"}
    assert not d.items
    assert compile_config(MATRIX, "github").ok


def test_matrix_errors() -> None:
    text = HEAD + """\
jobs:
  build:
    parameters: {v: {type: string}}
""" + DOCKER + """\
    steps: [checkout]
workflows:
  w:
    jobs:
      - build: {matrix: {parameters: {v: x}}}
      - build: {name: y, matrix: {parameters: {v: [a]}, exclude: [{w: a}]}}
"""
    assert errors(text) == [("invalid-matrix", 10, 42), ("invalid-matrix", 11, 67)]


# ---- conditions -------------------------------------------------------------------------

CONDITIONS = HEAD + """\
parameters:
  deploy: {type: boolean, default: false}
  env: {type: enum, enum: [dev, prod], default: dev}
jobs:
  build:
    parameters:
      fast: {type: boolean, default: true}
      label: {type: string, default: "false"}
""" + DOCKER + """\
    steps:
      - when:
          condition: << parameters.fast >>
          steps: [{run: fast}]
      - unless:
          condition: << parameters.fast >>
          steps: [{run: slow}]
      - when:
          condition: << parameters.label >>   # a non-empty string is truthy
          steps: [{run: labelled}]
      - when:
          condition:
            and:
              - equal: [prod, << pipeline.parameters.env >>]
              - not: << pipeline.parameters.deploy >>
              - matches: {pattern: "^p.*d$", value: << pipeline.parameters.env >>}
          steps: [{run: prod-only}]
      - when:
          condition: {equal: [main, << pipeline.git.branch >>]}
          steps: [{run: main-only}]
workflows:
  always:
    jobs: [build]
  deploying:
    when: << pipeline.parameters.deploy >>
    jobs: [build]
  not-prod:
    unless: {equal: [prod, << pipeline.parameters.env >>]}
    jobs: [build]
  nightly:
    when: {equal: [scheduled_pipeline, << pipeline.trigger_source >>]}
    jobs: [build]
"""


def test_conditions_decided_from_parameters() -> None:
    out, d = expand(CONDITIONS)
    assert commands_of(out["jobs"]["build"])[:2] == ["fast", "labelled"]
    assert list(out["workflows"]) == ["always", "not-prod", "nightly"]
    # Run-time conditions stay, for the reader to lower: the step as a shell guard, the
    # workflow's as written.
    assert out["workflows"]["nightly"]["when"] == {
        "equal": ["scheduled_pipeline", "<< pipeline.trigger_source >>"]}
    main_only = out["jobs"]["build"]["steps"][-1]["run"]
    assert main_only["command"] == (
        "if [ \"${CIRCLE_BRANCH:-}\" = 'main' ]; then\nmain-only\nfi\n")
    assert codes(d) == []
    assert codes(d, "note") == ["workflow-skipped"]


def test_conditions_with_given_pipeline_parameters() -> None:
    out, _ = expand(CONDITIONS, {"env": "prod", "deploy": "false"})
    assert commands_of(out["jobs"]["build"])[:3] == ["fast", "labelled", "prod-only"]
    assert list(out["workflows"]) == ["always", "nightly"]
    out, _ = expand(CONDITIONS, {"deploy": "yes"})
    assert list(out["workflows"]) == ["always", "deploying", "not-prod", "nightly"]


def test_invalid_conditions() -> None:
    text = HEAD + """\
jobs:
  build:
""" + DOCKER + """\
    steps:
      - when: {condition: {and: []}, steps: [checkout]}
      - when: {condition: {matches: {pattern: "(", value: x}}, steps: [checkout]}
workflows:
  w:
    when: true
    unless: false
    jobs: [build]
"""
    assert errors(text) == [("invalid-condition", 6, 28), ("invalid-condition", 7, 47),
                            ("invalid-condition", 11, 5)]


# ---- pipeline parameters and values -------------------------------------------------------

PIPELINE = HEAD + """\
parameters:
  image: {type: string, default: "cimg/base:stable"}
  retries: {type: integer, default: 1}
jobs:
  build:
    docker: [{image: << pipeline.parameters.image >>}]
    environment: {BRANCH: << pipeline.git.branch >>}
    steps:
      - run: ./ci --retries << pipeline.parameters.retries >> --sha << pipeline.git.revision >>
      - run:
          name: on << pipeline.git.branch >>
          command: echo << pipeline.git.tag >> << pipeline.number >> << pipeline.trigger_source >>
      - save_cache:
          key: v1-<< pipeline.git.branch >>-<< pipeline.git.tag >>
          paths: [x]
workflows:
  w:
    jobs: [build]
"""


def test_pipeline_parameters_and_values() -> None:
    out, d = expand(PIPELINE, {"retries": "3"})
    job = out["jobs"]["build"]
    assert job["docker"] == [{"image": "cimg/base:stable"}]
    assert commands_of(job) == [
        "./ci --retries 3 --sha ${CIRCLE_SHA1}",
        "echo ${CIRCLE_TAG} ${CIRCLE_PIPELINE_NUMBER} << pipeline.trigger_source >>",
        "save_cache"]
    assert job["steps"][1]["run"]["name"] == "on << pipeline.git.branch >>"  # a label: quiet
    assert job["steps"][2]["save_cache"]["key"] == "v1-{{ .Branch }}-{{ .Environment.CIRCLE_TAG }}"
    assert job["environment"] == {"BRANCH": "<< pipeline.git.branch >>"}
    lines = sorted((x.span.line if x.span else 0) for x in d.sorted()
                   if x.code == "runtime-pipeline-value")
    assert lines == [8, 13]  # `environment` and the unmapped `trigger_source`
    assert "parameters" not in out


@pytest.mark.parametrize(("params", "code"), [
    ({"nope": "1"}, "unknown-parameter"),
    ({"retries": "many"}, "invalid-parameter"),
])
def test_pipeline_parameter_errors(params: dict[str, str], code: str) -> None:
    assert [c for c, _, _ in errors(PIPELINE, params)] == [code]


def test_pipeline_parameters_are_not_visible_in_orbs() -> None:
    text = HEAD + """\
parameters:
  v: {type: string, default: "1"}
orbs:
  my:
    commands:
      hello:
        steps: [{run: echo << pipeline.parameters.v >>}]
jobs:
  build:
""" + DOCKER + """\
    steps: [my/hello]
workflows:
  w:
    jobs: [build]
"""
    assert errors(text) == [("undeclared-parameter", 8, 23)]


def test_version_2_0_is_not_templated() -> None:
    text = "version: 2\njobs:\n  build:\n" + DOCKER + \
        "    steps: [{run: echo << parameters.x >>}]\n"
    d = Diagnostics()
    p = build_ir(text, "c.yml", d)
    assert isinstance(p, Pipeline)
    step = p.job("build").steps[0]
    assert isinstance(step, Run) and step.command == "echo << parameters.x >>"
    d = Diagnostics()
    with pytest.raises(ConfigError):
        build_ir(text, "c.yml", d, pipeline_params={"x": "1"})
    assert [x.code for x in d.sorted()] == ["unknown-parameter"]


# ---- orbs ---------------------------------------------------------------------------------

ORBS = HEAD + """\
orbs:
  node: circleci/node@5.1.0
  tools:
    executors:
      small:
        parameters: {tag: {type: string, default: "1.0"}}
        docker: [{image: "tools:<< parameters.tag >>"}]
    commands:
      setup:
        parameters: {what: {type: string, default: all}}
        steps: [{run: setup << parameters.what >>}]
      both:
        steps: [setup, {setup: {what: extra}}]
    jobs:
      lint:
        executor: small
        steps: [checkout, both]
jobs:
  build:
    executor: {name: tools/small, tag: "2.0"}
    steps:
      - tools/setup
      - node/install-packages: {pkg-manager: yarn}
  remote:
    executor: node/default
    steps: [checkout]
workflows:
  w:
    jobs:
      - tools/lint
      - build: {requires: [tools/lint]}
      - remote
      - node/test
"""


def test_inline_orbs_expand_with_their_prefix() -> None:
    out, d = expand(ORBS)
    assert out["orbs"] == {"node": "circleci/node@5.1.0"}  # only registry orbs remain
    jobs = out["jobs"]
    assert list(jobs) == ["build", "remote", "tools/lint"]
    assert jobs["tools/lint"]["docker"] == [{"image": "tools:1.0"}]
    assert commands_of(jobs["tools/lint"]) == ["checkout", "setup all", "setup extra"]
    assert jobs["build"]["docker"] == [{"image": "tools:2.0"}]
    assert commands_of(jobs["build"]) == ["setup all", "node/install-packages"]
    assert "docker" not in jobs["remote"] and "executor" not in jobs["remote"]
    assert codes(d) == ["unsupported-orb"]  # the registry orb's executor


def test_registry_orb_commands_become_placeholders() -> None:
    d = Diagnostics()
    p = build_ir(ORBS, "c.yml", d)
    assert isinstance(p, Pipeline)
    step = p.job("build").steps[1]
    assert isinstance(step, Unsupported) and "'node'" in step.reason
    orb_warnings = [(x.span.line if x.span else 0) for x in d.sorted()
                    if x.code == "unsupported-orb"]
    assert orb_warnings == [24, 26, 34]  # the command step, the executor, the workflow job
    assert {j.name for j in p.jobs} == {"build", "remote", "tools/lint", "node/test"}
    assert not [x for x in d.sorted() if x.code in ("unsupported-feature", "unsupported-step")]


def test_unknown_orb_command() -> None:
    text = HEAD + "jobs:\n  build:\n" + DOCKER + "    steps: [ghost/run]\n" \
        "workflows:\n  w:\n    jobs: [build]\n"
    assert errors(text) == [("unknown-command", 5, 13)]


# ---- whole configs ------------------------------------------------------------------------

def test_unused_jobs_that_do_not_expand_are_left_out() -> None:
    text = HEAD + """\
jobs:
  build:
""" + DOCKER + """\
    steps: [checkout]
  broken:
""" + DOCKER + """\
    steps: [{run: echo << parameters.nope >>}]
  needs-args:
    parameters: {x: {type: string}}
""" + DOCKER + """\
    steps: [checkout]
workflows:
  w:
    jobs: [build]
"""
    out, d = expand(text)
    assert list(out["jobs"]) == ["build"]
    assert codes(d) == ["unused-job"]


def test_no_workflows_runs_build_with_defaults() -> None:
    text = HEAD + "jobs:\n  build:\n    parameters: {v: {type: string, default: x}}\n" \
        + DOCKER + "    steps: [{run: echo << parameters.v >>}]\n"
    d = Diagnostics()
    p = build_ir(text, "c.yml", d)
    assert isinstance(p, Pipeline)
    step = p.job("build").steps[0]
    assert isinstance(step, Run) and step.command == "echo x"


@pytest.mark.parametrize("text", [JOB_WITH_PARAMS, COMMANDS,
                                  EXECUTORS, INVOCATIONS, MATRIX, CONDITIONS, PIPELINE, ORBS])
def test_expansion_is_idempotent(text: str) -> None:
    once, _ = expand_tree(text)
    twice, _ = expand_config(once, Diagnostics()), None
    assert plain(twice) == plain(once)


def test_compile_config_accepts_pipeline_params() -> None:
    result = compile_config(CONDITIONS, "github", pipeline_params={"deploy": "true"})
    assert result.ok
    assert "deploying" in "".join(result.files.values())


def test_defaults_may_use_pipeline_parameters() -> None:
    text = HEAD + """\
parameters:
  go: {type: string, default: "1.22"}
commands:
  install-go:
    parameters:
      version: {type: string, default: << pipeline.parameters.go >>}
    steps: [{run: install go<< parameters.version >>}]
jobs:
  build:
""" + DOCKER + """\
    steps: [install-go]
workflows:
  w:
    jobs: [build]
"""
    out, _ = expand(text, {"go": "1.23"})
    assert commands_of(out["jobs"]["build"]) == ["install go1.23"]


def test_runtime_expressions_are_kept_and_said() -> None:
    text = HEAD + """\
jobs:
  build:
""" + DOCKER + """\
    steps: [{run: 'echo << pipeline.git.branch == "main" and 1 or 2 >>'}]
workflows:
  w:
    when: pipeline.git.branch == "main"
    jobs: [build]
"""
    out, d = expand(text)
    assert codes(d) == ["template-expression"]
    assert out["workflows"]["w"]["when"] == 'pipeline.git.branch == "main"'


def test_approvals_and_flexible_requires_use_matrix_aliases() -> None:
    text = HEAD + """\
jobs:
  t:
    parameters: {v: {type: integer}}
""" + DOCKER + """\
    steps: [{run: test << parameters.v >>}]
workflows:
  w:
    jobs:
      - t: {matrix: {parameters: {v: [1, 2]}}}
      - hold: {type: approval, requires: [t]}
      - report:
          type: approval
          requires: [{t: [success, failed]}]
"""
    out, _ = expand(text)
    entries = out["workflows"]["w"]["jobs"]
    assert entries[2] == {"hold": {"type": "approval", "requires": ["t-1", "t-2"]}}
    assert entries[3]["report"]["requires"] == [{"t-1": ["success", "failed"]},
                                               {"t-2": ["success", "failed"]}]
    assert commands_of(out["jobs"]["t-2"]) == ["test 2"]


def test_inline_orbs_keep_their_registry_imports() -> None:
    text = HEAD + """\
orbs:
  my:
    orbs:
      slack: circleci/slack@4.12.5
    commands:
      notify:
        steps: [slack/notify]
jobs:
  build:
""" + DOCKER + """\
    steps: [my/notify]
workflows:
  w:
    jobs: [build]
"""
    out, _ = expand(text)
    assert out["orbs"] == {"slack": "circleci/slack@4.12.5"}
    assert out["jobs"]["build"]["steps"] == ["slack/notify"]
    twice = expand_config(expand_tree(text)[0], Diagnostics())
    assert plain(twice) == out


def test_implicit_build_with_a_required_parameter() -> None:
    text = HEAD + "jobs:\n  build:\n    parameters: {v: {type: string}}\n" + DOCKER \
        + "    steps: [checkout]\n"
    assert errors(text) == [("missing-parameter", 3, 3)]


# ---- corpus smoke test --------------------------------------------------------------------

# Configs of the corpus that CircleCI itself would reject; cicompile must say so, not crash:
EXPECTED_ERRORS = {
    # passes `resource-class:` to a job whose parameter is `resource_class` (CircleCI:
    # "Unexpected argument(s)")
    "filecoin-project__lotus.yml": {"unknown-parameter"},
    # a `run` step with an empty `name:`
    "wandb__wandb.yml": {"invalid-type"},
}


@pytest.mark.skipif(not CORPUS.is_dir(), reason="no corpus at /work/shared/corpus/circleci")
@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.yml")) if CORPUS.is_dir() else [],
                         ids=lambda p: p.name)
def test_corpus_compiles_without_internal_errors(path: Path) -> None:
    result = compile_config(path.read_text(encoding="utf-8"), "github", path=str(path))
    error_codes = {d.code for d in result.diagnostics if d.severity == "error"}
    assert error_codes == EXPECTED_ERRORS.get(path.name, set()), [
        d.render() for d in result.diagnostics if d.severity == "error"]


@pytest.mark.skipif(not CORPUS.is_dir(), reason="no corpus at /work/shared/corpus/circleci")
def test_corpus_expansion_is_idempotent() -> None:
    for path in sorted(CORPUS.glob("*.yml")):
        d = Diagnostics()
        root = load_yaml(path.read_text(encoding="utf-8"), str(path), d)
        version = root.get("version") if isinstance(root, YMap) else None
        if not isinstance(root, YMap) or not isinstance(version, YScalar) or (
            version.text != "2.1"
        ):
            continue
        try:
            once = expand_config(root, d)
        except ConfigError:
            assert path.name in EXPECTED_ERRORS
            continue
        assert plain(expand_config(once, Diagnostics())) == plain(once), path.name
