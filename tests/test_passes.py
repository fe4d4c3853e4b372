"""Passes: fixes cases (input → expected derived fields) and noop/idempotence cases."""

from __future__ import annotations

from dataclasses import replace

from cicompile import build_ir
from cicompile.conditions import IsKind, RefKind
from cicompile.diagnostics import Diagnostics
from cicompile.ir import Pipeline, Workflow, WorkspaceLayer
from cicompile.passes import PassContext, run_passes


def _pipeline(workflow_jobs: str, jobs: dict[str, str] | None = None) -> Pipeline:
    names = jobs or {}
    job_text = "".join(
        f"  {n}:\n    docker: [{{image: x}}]\n    steps:\n{steps}" for n, steps in names.items()
    )
    text = f"version: 2\njobs:\n{job_text}workflows:\n  version: 2\n  w:\n{workflow_jobs}"
    p = build_ir(text, "c.yml", Diagnostics())
    assert isinstance(p, Pipeline)
    return p


SIMPLE = "      - run: echo\n"
PERSIST = "      - persist_to_workspace: {root: ., paths: [f]}\n"
ATTACH = "      - attach_workspace: {at: w}\n"


def _wf(p: Pipeline) -> Workflow:
    return p.workflows[0]


def test_transitive_reduction_drops_implied_edges() -> None:
    p = _pipeline(
        "    jobs: [a, {b: {requires: [a]}}, {c: {requires: [a, b]}}]\n",
        {"a": SIMPLE, "b": SIMPLE, "c": SIMPLE},
    )
    assert _wf(p).node("c").needs == ("b",)
    assert _wf(p).node("c").requires == ("a", "b")


def test_reduction_keeps_edges_through_filtered_nodes() -> None:
    # b exists only on main; when it is filtered out, c must still wait for a.
    p = _pipeline(
        "    jobs:\n      - a\n      - b: {requires: [a], filters: {branches: {only: main}}}\n"
        "      - c: {requires: [a, b]}\n",
        {"a": SIMPLE, "b": SIMPLE, "c": SIMPLE},
    )
    assert _wf(p).node("c").needs == ("a", "b")


def test_topological_order_is_stable_by_source() -> None:
    p = _pipeline(
        "    jobs: [{d: {requires: [c]}}, b, c, a]\n",
        {"a": SIMPLE, "b": SIMPLE, "c": SIMPLE, "d": SIMPLE},
    )
    assert [n.name for n in _wf(p).nodes] == ["b", "c", "d", "a"]


def test_existence_default_is_branch_pipelines_only() -> None:
    p = _pipeline("    jobs: [a]\n", {"a": SIMPLE})
    assert _wf(p).node("a").exists == IsKind(RefKind.BRANCH)


def test_workspace_layers_are_ancestors_only_in_order() -> None:
    p = _pipeline(
        "    jobs:\n      - a\n      - b\n      - c: {requires: [a]}\n"
        "      - d: {requires: [c, b]}\n      - e: {requires: [a]}\n",
        {"a": PERSIST, "b": PERSIST, "c": PERSIST + ATTACH, "d": ATTACH, "e": ATTACH},
    )
    wf = _wf(p)
    assert wf.node("c").layers == (WorkspaceLayer(node="a", index=0),)
    assert [lay.node for lay in wf.node("d").layers] == ["a", "b", "c"]
    assert [lay.node for lay in wf.node("e").layers] == ["a"]  # never sibling c's


def test_passes_are_idempotent() -> None:
    p = _pipeline(
        "    jobs:\n      - a\n      - b: {requires: [a], filters: {branches: {only: main}}}\n"
        "      - h: {type: approval, requires: [b]}\n      - c: {requires: [a, b, h]}\n",
        {"a": PERSIST, "b": SIMPLE, "c": ATTACH},
    )
    again = run_passes(p, PassContext())
    assert again == p


def test_passes_do_not_touch_the_input() -> None:
    p = _pipeline("    jobs: [a, {b: {requires: [a]}}]\n", {"a": SIMPLE, "b": SIMPLE})
    raw = replace(p, workflows=tuple(
        replace(w, nodes=tuple(replace(n, needs=()) for n in w.nodes)) for w in p.workflows))
    run_passes(raw, PassContext())
    assert all(n.needs == () for n in raw.workflows[0].nodes)
