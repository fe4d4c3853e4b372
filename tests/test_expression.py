"""The expression language (§5.5) and logic statements (§5.6): parsing, compile-time values,
and the lowering of run-time conditions, checked against the reference evaluator."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
import yaml
from cicompile import build_ir
from cicompile.conditions import (
    TRUE,
    IsKind,
    Match,
    Not,
    Pattern,
    RefKind,
    Trigger,
    evaluate,
)
from cicompile.diagnostics import Diagnostics
from cicompile.frontend.expression import (
    Binary,
    ExpressionError,
    Lit,
    Name,
    Ref,
    Unary,
    Unsupported,
    known_value,
    lower,
    lower_logic,
    parse,
    shell_guard,
    simplify,
    substitute,
    to_text,
)
from cicompile.frontend.yaml_loader import load_yaml
from cicompile.ir import Pipeline
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reference import expression, logic, pipeline_values

BRANCH = Name("pipeline.git.branch")
TAG = Name("pipeline.git.tag")
# (ref kind, name, trigger source) for every kind of pipeline the conditions tell apart.
EVENTS = [(RefKind.BRANCH, b, s) for b in ("main", "feature/x", "release/1.2", "v1")
          for s in ("webhook", "api", "scheduled_pipeline")] + [
    (RefKind.TAG, t, s) for t in ("v1.2.3", "nightly", "v2-rc1") for s in ("webhook", "api")]


# The same with the schedule's name: named schedule triggers start scheduled pipelines.
NAMED_EVENTS = [(k, n, s, "") for k, n, s in EVENTS] + [
    (RefKind.BRANCH, b, "scheduled_pipeline", sched) for b in ("main", "feature/x")
    for sched in ("nightly", "weekly-db")]


def _values(kind: RefKind, name: str, source: str, schedule: str = "") -> dict[str, Any]:
    return pipeline_values(*((name, "") if kind is RefKind.BRANCH else ("", name)), source,
                           schedule)


def _runtime(text: str) -> Any:
    return lower(substitute(parse(text), Ref))


# ---- grammar ------------------------------------------------------------------------------


def test_precedence_not_binds_tightest_then_comparisons_and_or() -> None:
    assert parse("not a and b") == Binary("and", Unary("not", Name("a")), Name("b"))
    assert parse("not a == b") == Binary("==", Unary("not", Name("a")), Name("b"))
    assert parse("a or b and c") == Binary("or", Name("a"), Binary("and", Name("b"), Name("c")))
    assert parse("(a or b) and c") == Binary("and", Binary("or", Name("a"), Name("b")),
                                             Name("c"))


def test_literals_regexes_and_names() -> None:
    assert parse('"a\\"b"') == Lit('a"b')
    assert parse("'x'") == Lit("x")
    assert parse("-3") == Lit(-3)
    assert parse("1.5") == Lit(1.5)
    assert parse("true") == Lit(True)
    e = parse(r"pipeline.git.tag matches /v[0-9]+\/x/")
    assert e == parse(to_text(e))
    assert to_text(e) == r"pipeline.git.tag matches /v[0-9]+\/x/"
    assert parse("pipeline.parameters.my-param_1") == Name("pipeline.parameters.my-param_1")
    assert parse("android and orange") == Binary("and", Name("android"), Name("orange"))


@pytest.mark.parametrize("text", ["a ==", "a == b == c", "(a", "a matches b", "1 +"])
def test_syntax_errors(text: str) -> None:
    with pytest.raises(ExpressionError):
        parse(text)


@pytest.mark.parametrize("text", [
    'pipeline.git.branch == "main" or pipeline.git.tag starts-with "v"',
    "not (a and b) or not c",
    "a and (b or c) and not d",
    '(x == "a" and 10) or 1',
])
def test_to_text_round_trips(text: str) -> None:
    e = parse(text)
    assert parse(to_text(e)) == e


# ---- compile-time values ------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [
    ('"a" == "a" and 10 or 1', 10),
    ('"a" == "b" and 10 or 1', 1),
    ('"" or "fallback"', "fallback"),
    ("0 and 5", 0),
    ('1 == "1"', False),
    ('1 != "1"', True),
    ("2 >= 2 and 3 < 4", True),
    ('"release/1" starts-with "release/"', True),
    (r'"v1.2" matches /v\d+\.\d+/', True),
    ('"v1.2x" matches /v\\d+\\.\\d+/', False),
    ("not 0", True),
])
def test_values_follow_operand_semantics(text: str, value: object) -> None:
    known, got = known_value(parse(text))
    assert known and got == value and type(got) is type(value)
    assert expression(text, {}) == value  # the reference agrees


def test_comparing_strings_by_order_is_refused() -> None:
    with pytest.raises(Unsupported):
        known_value(parse('"a" < "b"'))


def test_simplify_folds_known_parts_only() -> None:
    params = {"pipeline.parameters.env": "prod"}

    def resolve(n: str) -> Any:
        return params[n] if n in params else Ref(n)

    e = simplify(substitute(parse(
        'pipeline.parameters.env == "prod" and pipeline.git.branch == "main"'), resolve))
    assert to_text(e) == 'pipeline.git.branch == "main"'
    e = simplify(substitute(parse('pipeline.parameters.env == "dev" and pipeline.git.branch'),
                            resolve))
    assert e == Lit(False)


# ---- lowering -----------------------------------------------------------------------------


def test_lowering_maps_branch_and_tag_onto_the_ref_algebra() -> None:
    assert _runtime('pipeline.git.branch == "main"') == Match(RefKind.BRANCH, Pattern("main"))
    assert _runtime("pipeline.git.tag") == IsKind(RefKind.TAG)
    assert _runtime("pipeline.git.tag matches /v.*/") == Match(RefKind.TAG, Pattern("v.*", True))
    assert _runtime('pipeline.git.tag starts-with "v1."') == Match(
        RefKind.TAG, Pattern(r"v1\..*", True))
    assert _runtime('pipeline.trigger_source == "scheduled_pipeline"') == Trigger(
        "scheduled_pipeline")
    assert _runtime('pipeline.trigger_source != "api"') == Not(Trigger("api"))
    # The absent value is null in an expression: `!= ""` holds on the other kind too.
    assert _runtime('pipeline.git.branch != ""') == TRUE


@pytest.mark.parametrize("text", [
    'pipeline.trigger.type == "github_app"',
    'pipeline.event.name == "pull_request"',
    "pipeline.schedule.name == pipeline.git.branch",
    "pipeline.git.branch < 3",
    "pipeline.git.branch == pipeline.trigger_source",
    'pipeline.trigger_source == "github_app"',
])
def test_what_no_target_can_test_is_unsupported(text: str) -> None:
    with pytest.raises(Unsupported):
        _runtime(text)


ATOMS = [
    'pipeline.git.branch == "main"', 'pipeline.git.branch != "main"',
    "pipeline.git.branch matches /(feature|release)\\/.*/", 'pipeline.git.tag starts-with "v"',
    "pipeline.git.tag matches /v[0-9.]+/", "pipeline.git.tag", "pipeline.git.branch",
    'pipeline.trigger_source == "scheduled_pipeline"', 'pipeline.trigger_source != "webhook"',
    'pipeline.git.tag == ""', 'pipeline.git.branch == pipeline.git.tag', "true", "0",
    'pipeline.trigger.type == "schedule"', 'pipeline.event.name != "api"',
    'pipeline.event.name == "push"', 'pipeline.schedule.name == "nightly"',
    'pipeline.schedule.name starts-with "week"', "pipeline.schedule.name",
    'pipeline.schedule.name matches /n.*|w.*/',
]


@st.composite
def expressions(draw: st.DrawFn, depth: int = 3) -> str:
    if depth == 0 or draw(st.integers(0, 2)) == 0:
        return draw(st.sampled_from(ATOMS))
    op = draw(st.sampled_from(["and", "or", "not"]))
    if op == "not":
        return f"not ({draw(expressions(depth - 1))})"
    return f"({draw(expressions(depth - 1))}) {op} ({draw(expressions(depth - 1))})"


@settings(max_examples=150, deadline=None)
@given(expressions())
def test_lowered_expressions_agree_with_the_reference(text: str) -> None:
    cond = _runtime(text)
    for kind, name, source, sched in NAMED_EVENTS:
        want = bool(expression(text, _values(kind, name, source, sched)))
        assert evaluate(cond, kind, name, source, sched) == want, (text, kind, name, source,
                                                                    sched)


LOGIC_ATOMS: list[Any] = [
    {"equal": ["main", "<< pipeline.git.branch >>"]},
    {"equal": ["", "<< pipeline.git.tag >>"]},
    {"equal": ["<< pipeline.git.tag >>", "<< pipeline.git.branch >>"]},
    {"equal": [True, "<< pipeline.git.branch >>"]},
    {"equal": ["scheduled_pipeline", "<< pipeline.trigger_source >>"]},
    {"matches": {"pattern": "^v\\d+(\\.\\d+)*$", "value": "<< pipeline.git.tag >>"}},
    {"matches": {"pattern": "(release/.*)?", "value": "<< pipeline.git.branch >>"}},
    "<< pipeline.git.tag >>", "<< pipeline.git.branch >>", False, "false-but-a-string",
    {"equal": ["schedule", "<< pipeline.trigger.type >>"]},
    {"equal": ["api", "<< pipeline.event.name >>"]},
    {"equal": ["nightly", "<< pipeline.schedule.name >>"]},
    {"equal": ["", "<< pipeline.schedule.name >>"]},
    {"matches": {"pattern": "week.*", "value": "<< pipeline.schedule.name >>"}},
    "<< pipeline.schedule.name >>",
]


@st.composite
def statements(draw: st.DrawFn, depth: int = 3) -> Any:
    if depth == 0 or draw(st.integers(0, 2)) == 0:
        return draw(st.sampled_from(LOGIC_ATOMS))
    op = draw(st.sampled_from(["and", "or", "not"]))
    if op == "not":
        return {"not": draw(statements(depth - 1))}
    return {op: draw(st.lists(statements(depth - 1), min_size=1, max_size=3))}


@settings(max_examples=150, deadline=None)
@given(statements())
def test_lowered_logic_statements_agree_with_the_reference(stmt: Any) -> None:
    node = load_yaml(yaml.safe_dump({"s": stmt}), "x.yml", Diagnostics())
    cond = lower_logic(node.get("s"))  # type: ignore[union-attr]
    for kind, name, source, sched in NAMED_EVENTS:
        want = logic(stmt, _values(kind, name, source, sched))
        assert evaluate(cond, kind, name, source, sched) == want, (stmt, kind, name, source,
                                                                   sched)


# ---- step guards --------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    'pipeline.git.branch == "main"', "pipeline.git.tag matches /v[0-9]+(\\.[0-9]+)*/",
    'not pipeline.git.tag or pipeline.git.branch starts-with "it\'s"',
    'pipeline.git.branch matches /(main|release\\/.*)/ and pipeline.git.branch != "main"',
])
def test_shell_guards_decide_like_the_condition(text: str) -> None:
    """The guard runs in a POSIX sh (dash when present) with the targets' CIRCLE_* values."""
    sh = shutil.which("dash") or "sh"
    cond = _runtime(text)
    guard = shell_guard(cond)
    refs = [(RefKind.BRANCH, n) for n in ("main", "release/2", "it's-x", "x")] + [
        (RefKind.TAG, n) for n in ("v1.2", "v1.2-rc", "nightly")]
    for kind, name in refs:
        env = {"CIRCLE_BRANCH": name if kind is RefKind.BRANCH else ""}
        if kind is RefKind.TAG:
            env["CIRCLE_TAG"] = name
        rc = subprocess.run([sh, "-c", f"if {guard}; then exit 0; else exit 1; fi"],
                            env=env).returncode
        assert (rc == 0) == evaluate(cond, kind, name), (text, kind, name)


def test_trigger_source_has_no_step_guard() -> None:
    with pytest.raises(Unsupported):
        shell_guard(Trigger("scheduled_pipeline"))


# ---- through the compiler -----------------------------------------------------------------

HEAD = """\
version: 2.1
parameters:
  env: {type: string, default: prod}
  n: {type: integer, default: 3}
jobs:
  build:
    docker: [{image: cimg/base:stable}]
    parallelism: << pipeline.parameters.n > 1 and pipeline.parameters.n or 1 >>
    steps:
      - run: echo << pipeline.parameters.env == "prod" and "p" or "s" >>
      - when:
          condition: {equal: [main, << pipeline.git.branch >>]}
          steps:
            - run: echo main
            - save_cache: {key: k, paths: [x]}
      - when:
          condition: {equal: [nightly, << pipeline.schedule.name >>]}
          steps: [{run: echo nightly}]
"""


def _build(workflows: str) -> tuple[Pipeline, list[str]]:
    d = Diagnostics()
    p = build_ir(HEAD + workflows, "c.yml", d)
    assert isinstance(p, Pipeline), d.sorted()
    return p, [x.code for x in d.sorted()]


def test_compile_time_expressions_keep_their_type_and_runtime_steps_are_guarded() -> None:
    p, codes = _build("workflows:\n  w:\n    jobs: [build]\n")
    job = p.job("build")
    assert job.parallelism == 3
    runs = [s for s in job.steps if hasattr(s, "command")]
    assert runs[0].command == "echo p"  # type: ignore[union-attr]
    assert runs[1].command.startswith("if [ \"${CIRCLE_BRANCH:-}\" = 'main' ]; then\n")  # type: ignore[union-attr]
    assert runs[1].name == "echo main"  # type: ignore[union-attr]
    # save_cache cannot be guarded; schedule.name cannot be tested: both said.
    assert codes.count("runtime-condition") == 2


def test_workflow_conditions_and_expression_filters_reach_existence() -> None:
    p, codes = _build("""\
workflows:
  w:
    when:
      or:
        - equal: [main, << pipeline.git.branch >>]
        - equal: [scheduled_pipeline, << pipeline.trigger_source >>]
    jobs:
      - build:
          filters: pipeline.parameters.env == "prod" and pipeline.git.branch != "wip"
""")
    node = p.workflows[0].nodes[0]
    for kind, name, source in EVENTS:
        want = kind is RefKind.BRANCH and name != "wip" and (
            name == "main" or source == "scheduled_pipeline")
        assert evaluate(node.exists, kind, name, source) == want
    assert codes.count("trigger-source") == 1


def test_unsupported_workflow_condition_keeps_the_workflow_with_the_warning() -> None:
    p, codes = _build("""\
workflows:
  w:
    when: {equal: [github_app, << pipeline.trigger.type >>]}
    jobs: [build]
""")
    assert p.workflows[0].nodes[0].exists == IsKind(RefKind.BRANCH)
    assert "runtime-condition" in codes


def test_trigger_atoms_render_on_every_target() -> None:
    from cicompile.targets.refmatch import GATE_TRIGGER_SOURCE, bash_condition, gitlab_condition

    cond = _runtime('pipeline.trigger_source != "api" and pipeline.git.branch == "main"')
    assert gitlab_condition(cond) == (
        '$CI_PIPELINE_SOURCE !~ /^(api|web|trigger)$/ && $CI_COMMIT_BRANCH == "main"')
    assert bash_condition(cond) == (
        "{ ! [[ $CICOMPILE_TRIGGER_SOURCE == api ]] && cc_eq branch 'main'; }")
    webhook = _runtime('pipeline.trigger_source == "webhook"')
    assert gitlab_condition(webhook) == "$CI_PIPELINE_SOURCE !~ /^(schedule|api|web|trigger)$/"
    # The GitHub gate derives the source from the event that started the run.
    for event, source in (("schedule", "scheduled_pipeline"), ("workflow_dispatch", "api"),
                          ("push", "webhook")):
        script = GATE_TRIGGER_SOURCE + "\necho $CICOMPILE_TRIGGER_SOURCE"
        out = subprocess.run(["bash", "-c", script], env={"GITHUB_EVENT_NAME": event},
                             capture_output=True, text=True)
        assert out.stdout.strip() == source


def test_expression_filter_on_the_trigger_is_said_and_runs_on_schedules() -> None:
    p, codes = _build("""\
workflows:
  w:
    jobs:
      - build:
          filters: pipeline.trigger_source == "scheduled_pipeline"
""")
    assert codes.count("trigger-source") == 1
    assert p.workflows[0].reads_trigger
    exists = p.workflows[0].nodes[0].exists
    for kind, name, source in EVENTS:
        assert evaluate(exists, kind, name, source) == (source == "scheduled_pipeline")


STEP_GUARDS = """\
version: 2.1
jobs:
  build:
    docker: [{image: cimg/base:stable}]
    steps:
      - when:
          condition: {equal: [main, << pipeline.git.branch >>]}
          steps: [{run: echo "deploying main"}]
      - unless:
          condition:
            matches: {pattern: "^v[0-9]+$", value: << pipeline.git.tag >>}
          steps: [{run: echo "not a release"}]
workflows:
  w:
    when:
      or:
        - << pipeline.git.branch >>
        - matches: {pattern: "^v.*", value: << pipeline.git.tag >>}
    jobs:
      - build: {filters: {tags: {only: /.*/}}}
"""


@pytest.mark.e2e
@pytest.mark.parametrize(("kind", "name", "runs", "lines"), [
    ("branch", "main", True, ["deploying main", "not a release"]),
    ("branch", "dev", True, ["not a release"]),
    ("tag", "v2", True, []),
    ("tag", "nightly", False, []),
])
def test_guards_and_workflow_conditions_run_on_github(tmp_path: Any, kind: str, name: str,
                                                     runs: bool, lines: list[str]) -> None:
    """The generated workflow, run by tests/gha_runner.py with GitHub's expression engine."""
    from cicompile import compile_config

    from tests.gha_runner import WorkflowRunner

    result = compile_config(STEP_GUARDS, "github")
    assert result.ok, result.diagnostics
    (rel, text), = result.files.items()
    wf = tmp_path / "w.yml"
    wf.write_text(text)
    src = tmp_path / "src"
    src.mkdir()
    runner = WorkflowRunner(tmp_path / "run", src)
    try:
        res = runner.run(wf, kind, name)
    finally:
        runner.close()
    assert res["build"].result == ("success" if runs else "skipped"), res["build"].log
    for line in ("deploying main", "not a release"):
        printed = any(out.strip() == line for out in res["build"].log.splitlines())
        assert printed == (line in lines), (line, res["build"].log[-2000:])


@pytest.mark.e2e
@pytest.mark.parametrize(("branch", "tag", "lines"), [
    ("main", None, ["deploying main", "not a release"]),
    ("dev", None, ["not a release"]),
    ("main", "v2", []),
])
def test_guards_and_workflow_conditions_run_on_gitlab(tmp_path: Any, branch: str,
                                                     tag: str | None, lines: list[str]) -> None:
    """The same config under gitlab-ci-local (shell executor): its rules and the guards."""
    from cicompile import compile_config

    from tests.gitlab_helpers import make_repo, run_pipeline

    result = compile_config(STEP_GUARDS, "gitlab")
    assert result.ok, result.diagnostics
    repo = make_repo(tmp_path / "repo", result.files[".gitlab-ci.yml"], branch=branch)
    run = run_pipeline(repo, "--variable", f"CI_COMMIT_BRANCH={'' if tag else branch}",
                       tag=tag)
    assert run.passed == {"build"}, run.output[-3000:]
    log = run.log("build")
    for line in ("deploying main", "not a release"):
        printed = any(out.rstrip().endswith(f"> {line}") or out.strip() == line
                      for out in log.splitlines())
        assert printed == (line in lines), (line, log[-2000:])


@pytest.mark.parametrize("target", ["make", "shell"])
@pytest.mark.parametrize(("env", "runs", "lines"), [
    ({"CIRCLE_BRANCH": "main"}, True, ["deploying main", "not a release"]),
    ({"CIRCLE_BRANCH": "dev"}, True, ["not a release"]),
    ({"CIRCLE_TAG": "v2"}, True, []),
    ({"CIRCLE_TAG": "nightly"}, False, []),
])
def test_guards_and_workflow_conditions_run_locally(tmp_path: Any, target: str,
                                                    env: dict[str, str], runs: bool,
                                                    lines: list[str]) -> None:
    """The same config run for real by the generated Makefile and ci.sh (steps on the host)."""
    import os

    from cicompile import compile_config

    from tests.tools import require_tool

    require_tool("make")
    result = compile_config(STEP_GUARDS, target)
    assert result.ok, result.diagnostics
    (fname, text), = result.files.items()
    (tmp_path / fname).write_text(text)
    cmd = ["make", "-s", "-f", fname] if target == "make" else ["bash", fname]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CIRCLE", "MAKE"))}
    out = subprocess.run(cmd, cwd=tmp_path, env={**base, **env}, capture_output=True,
                         text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    status = (tmp_path / ".cicompile-run" / "status" / "w" / "build").read_text().strip()
    assert status == ("success" if runs else "skipped")
    for line in ("deploying main", "not a release"):
        assert (f"[build] {line}" in out.stdout.splitlines()) == (line in lines), out.stdout
