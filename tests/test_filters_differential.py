"""Filters: the compiler agrees with the reference evaluator, in the IR and in generated code.

Random workflows (DAGs with branch/tag filters and approvals) are compiled; for every ref in
a fixed matrix, the set of existing jobs must equal what CircleCI's rules (tests/reference.py)
say: (1) in the IR's conditions, (2) in the GitHub gate job's bash, actually run (where an
approval none of whose dependents exists is skipped: nothing waits for it).
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from cicompile import build_ir, compile_config
from cicompile.conditions import RefKind, evaluate
from cicompile.diagnostics import Diagnostics
from cicompile.ir import Pipeline
from cicompile.targets.base import on_scheduled_pipelines
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.corpus_tools import github_idle_approvals
from tests.gha_runner import gate_outputs
from tests.reference import existing_jobs, expanded_config

BRANCHES = ["main", "dev", "feature/x", "release/1.2", "wip/a", "Main"]
TAGS = ["v1.2.3", "nightly", "v1", "release-2"]
REFS = [("branch", b) for b in BRANCHES] + [("tag", t) for t in TAGS]

BRANCH_PATTERNS = ["main", "dev", r"/feature\/.*/", r"/release\/\d+\.\d+/", "/.*/", "/ma.*/",
                   "/(dev|main)/"]
TAG_PATTERNS = [r"/^v\d+\.\d+\.\d+$/", "/v.*/", "nightly", "/.*/", r"/release-\d+/", "/v1/"]


def _ref_filter(patterns: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    specs = st.one_of(st.sampled_from(patterns), st.lists(st.sampled_from(patterns), min_size=1,
                                                          max_size=3, unique=True))
    return st.fixed_dictionaries({}, optional={"only": specs, "ignore": specs})


@st.composite
def workflows(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 6))
    entries = []
    names = [f"j{i}" for i in range(n)]
    for i, name in enumerate(names):
        body: dict[str, Any] = {}
        if i and draw(st.booleans()):
            body["requires"] = draw(st.lists(st.sampled_from(names[:i]), min_size=1, max_size=3,
                                             unique=True))
        filters = draw(st.fixed_dictionaries({}, optional={
            "branches": _ref_filter(BRANCH_PATTERNS), "tags": _ref_filter(TAG_PATTERNS)}))
        if filters:
            body["filters"] = filters
        if i and draw(st.integers(0, 4)) == 0:
            body["type"] = "approval"
        entries.append({name: body} if body else name)
    jobs = {
        name: {"docker": [{"image": "cimg/base:stable"}], "steps": [{"run": f"echo {name}"}]}
        for name in names
    }
    return {"version": 2, "jobs": jobs, "workflows": {"version": 2, "wf": {"jobs": entries}}}


def _expected(config: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    out = {}
    for kind, name in REFS:
        branch, tag = (name, "") if kind == "branch" else ("", name)
        out[(kind, name)] = existing_jobs(config, branch, tag)["wf"]
    return out


def _gate_results(config_text: str) -> dict[tuple[str, str], set[str]]:
    """Run the generated GitHub gate job's bash for every ref; jobs whose output is true."""
    result = compile_config(config_text, "github")
    assert result.ok, result.diagnostics
    (workflow_text,) = result.files.values()
    doc = yaml.safe_load(workflow_text)
    jobs = [j for j in doc["jobs"] if j != "circleci-gate"]
    gate = doc["jobs"].get("circleci-gate")
    push = (doc.get("on") or doc[True])["push"]  # PyYAML (YAML 1.1) reads bare `on` as True
    if gate is None:
        # No gate: every job runs on every branch push, and the workflow has no tag trigger.
        assert "tags" not in push
        return {(k, n): set(jobs) if k == "branch" else set() for k, n in REFS}
    results = gate_outputs(gate["steps"][0]["run"], [(k, n) for k, n in REFS])
    for k, _ in REFS:
        if k == "tag":
            assert "tags" in push or not any(results[(kk, n)] for kk, n in REFS if kk == "tag")
    return results


def _settings(request_long: bool) -> Any:
    return settings(max_examples=400 if request_long else 40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def long_fuzz(pytestconfig: pytest.Config) -> bool:
    return bool(pytestconfig.getoption("--long-fuzz"))


def test_ir_conditions_match_reference(long_fuzz: bool) -> None:
    @_settings(long_fuzz)
    @given(workflows())
    def check(config: dict[str, Any]) -> None:
        text = yaml.safe_dump(config, sort_keys=False)
        pipeline = build_ir(text, "c.yml", Diagnostics())
        assert isinstance(pipeline, Pipeline)
        (wf,) = pipeline.workflows
        for (kind, name), want in _expected(config).items():
            got = {n.name for n in wf.nodes if evaluate(n.exists, RefKind(kind), name)}
            assert got == want, (kind, name, text)

    check()


def test_github_gate_matches_reference(long_fuzz: bool) -> None:
    @_settings(long_fuzz)
    @given(workflows())
    def check(config: dict[str, Any]) -> None:
        text = yaml.safe_dump(config, sort_keys=False)
        got = _gate_results(text)
        for ref, want in _expected(config).items():
            # An approval none of whose dependents runs is skipped (targets/approvals.py).
            assert got[ref] == want - github_idle_approvals(config, "wf", want), (ref, text)

    check()


# ---- run-time workflow conditions and expression filters (§5.1, §5.5, §5.6) --------------

WHEN_ATOMS: list[Any] = [
    {"equal": ["main", "<< pipeline.git.branch >>"]},
    {"equal": ["scheduled_pipeline", "<< pipeline.trigger_source >>"]},
    {"matches": {"pattern": "^v\\d+(\\.\\d+)*$", "value": "<< pipeline.git.tag >>"}},
    {"matches": {"pattern": "(feature|release)/.*", "value": "<< pipeline.git.branch >>"}},
    "<< pipeline.git.tag >>",
]
EXPRESSION_FILTERS = [
    'pipeline.git.branch == "main" or pipeline.git.tag starts-with "v"',
    "not pipeline.git.tag and pipeline.git.branch matches /(dev|main)/",
    'pipeline.git.tag matches /v1(\\..*)?/ or pipeline.trigger_source == "scheduled_pipeline"',
    'pipeline.git.branch != "dev"',
]
SOURCES = [("push", "webhook"), ("schedule", "scheduled_pipeline")]


@st.composite
def conditions(draw: st.DrawFn, depth: int = 2) -> Any:
    if depth == 0 or draw(st.booleans()):
        return draw(st.sampled_from(WHEN_ATOMS))
    op = draw(st.sampled_from(["and", "or", "not"]))
    if op == "not":
        return {"not": draw(conditions(depth - 1))}
    return {op: draw(st.lists(conditions(depth - 1), min_size=1, max_size=3))}


@st.composite
def conditional_workflows(draw: st.DrawFn) -> dict[str, Any]:
    config = draw(workflows())
    wf = config["workflows"]["wf"]
    key = draw(st.sampled_from(["when", "unless"]))
    wf[key] = draw(conditions())
    for i, entry in enumerate(wf["jobs"]):
        if draw(st.integers(0, 3)) == 0:
            name, body = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
            body["filters"] = draw(st.sampled_from(EXPRESSION_FILTERS))
            wf["jobs"][i] = {name: body}
    return {**config, "version": 2.1, "workflows": {"wf": wf}}


def test_runtime_workflow_conditions_match_reference(long_fuzz: bool) -> None:
    """Workflow `when`/`unless` and expression filters over the branch, the tag and the
    trigger source: the IR's conditions and the GitHub gate agree with the reference, on
    pushes and on scheduled pipelines (where only workflows reading the trigger run)."""
    @_settings(long_fuzz)
    @given(conditional_workflows())
    def check(config: dict[str, Any]) -> None:
        text = yaml.safe_dump(config, sort_keys=False)
        pipeline = build_ir(text, "c.yml", Diagnostics())
        assert isinstance(pipeline, Pipeline)
        (wf,) = pipeline.workflows
        on_schedule = on_scheduled_pipelines(pipeline, wf)  # what the targets run then
        expanded = expanded_config(text, "c.yml")
        for trigger, source in SOURCES:
            for kind, name in REFS:
                branch, tag = (name, "") if kind == "branch" else ("", name)
                want = existing_jobs(expanded, branch, tag, trigger)["wf"]
                got = {n.name for n in wf.nodes
                       if (trigger == "push" or on_schedule)
                       and evaluate(n.exists, RefKind(kind), name, source)}
                assert got == want, (trigger, kind, name, text)

    check()
