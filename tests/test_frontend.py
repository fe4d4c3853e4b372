"""Front end: YAML with positions, CircleCI's leniencies, bounded aliases, validation codes."""

from __future__ import annotations

import time

import pytest
from cicompile import build_ir
from cicompile.diagnostics import ConfigError, Diagnostics, Span
from cicompile.frontend.yaml_loader import YMap, YScalar, YSeq, load_yaml
from cicompile.ir import Pipeline, Run


def _codes(text: str) -> list[str]:
    d = Diagnostics()
    with pytest.raises(ConfigError):
        build_ir(text, "c.yml", d)
    return [x.code for x in d.sorted() if x.severity == "error"]


def _ok(text: str) -> tuple[Pipeline, Diagnostics]:
    d = Diagnostics()
    p = build_ir(text, "c.yml", d)
    assert isinstance(p, Pipeline)
    return p, d


JOB = "    docker: [{image: cimg/base:stable}]\n"


def test_positions_are_one_based() -> None:
    node = load_yaml("a:\n  b: [x, y]\n", "f.yml", Diagnostics())
    assert isinstance(node, YMap)
    b = node.get("a")
    assert isinstance(b, YMap)
    seq = b.get("b")
    assert isinstance(seq, YSeq)
    assert seq.items[1].span == Span("f.yml", 2, 10)


def test_scalars_keep_their_text() -> None:
    node = load_yaml("v: 2.0\nb: 1.10\n", "f.yml", Diagnostics())
    assert isinstance(node, YMap)
    v = node.get("b")
    assert isinstance(v, YScalar) and v.text == "1.10" and v.value == 1.1


def test_redefined_anchor_uses_newest_definition() -> None:
    text = "a: &x 1\nb: *x\nc: &x 2\nd: *x\n"
    node = load_yaml(text, "f.yml", Diagnostics())
    assert isinstance(node, YMap)
    values = {k: v.text for k, v in ((k.text, node.get(k.text)) for k, _ in node.pairs)
              if isinstance(v, YScalar)}
    assert values == {"a": "1", "b": "1", "c": "2", "d": "2"}


def test_merge_keys_explicit_keys_win() -> None:
    text = "base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n"
    node = load_yaml(text, "f.yml", Diagnostics())
    assert isinstance(node, YMap)
    m = node.get("m")
    assert isinstance(m, YMap)
    assert m.keys() == ["y", "x"]
    y = m.get("y")
    assert isinstance(y, YScalar) and y.text == "3"


def test_alias_bomb_is_rejected_fast() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i-1}'] * 10)}]" for i in range(1, 12)]
    d = Diagnostics()
    start = time.perf_counter()
    with pytest.raises(ConfigError):
        load_yaml("\n".join(lines), "bomb.yml", d)
    assert time.perf_counter() - start < 2  # not a benchmark: a bomb would take hours
    assert [x.code for x in d.sorted()] == ["alias-expansion-limit"]


def test_safe_loading_refuses_python_tags() -> None:
    assert _codes("version: 2\njobs: !!python/object:os.system {}\n") == ["yaml-tag"]


@pytest.mark.parametrize("version", ["2", "2.0", "'2'", '"2.1"', "2.1"])
def test_versions_accepted(version: str) -> None:
    p, _ = _ok(f"version: {version}\njobs:\n  build:\n{JOB}    steps: [checkout]\n")
    assert p.version in ("2.0", "2.1")


def test_implicit_workflow_for_build() -> None:
    p, _ = _ok(f"version: 2\njobs:\n  build:\n{JOB}    steps: [checkout]\n")
    assert [n.name for n in p.workflows[0].nodes] == ["build"]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("jobs: {}\n", "missing-version"),
        ("version: 3\njobs: {}\n", "invalid-version"),
        (f"version: 2\njobs:\n  b:\n{JOB}", "missing-steps"),
        ("version: 2\njobs:\n  b:\n    docker: [{image: x}]\n    machine: true\n"
         "    steps: [checkout]\nworkflows: {version: 2, w: {jobs: [b]}}\n", "executor-conflict"),
        (f"version: 2\njobs:\n  b:\n{JOB}    steps: [checkout]\nworkflows:\n  version: 2\n"
         "  w:\n    jobs:\n      - b: {filters: {branches: {only: '/[a-/'}}}\n", "invalid-regex"),
        (f"version: 2\njobs:\n  b:\n{JOB}    steps: [checkout]\nworkflows:\n  version: 2\n"
         "  w:\n    jobs: [{b: {requires: [b]}}]\n", "requires-cycle"),
        ("- a\n- b\n", "invalid-type"),
    ],
)
def test_validation_codes(text: str, code: str) -> None:
    assert code in _codes(text)


def test_run_short_and_long_forms() -> None:
    p, _ = _ok(
        f"version: 2\njobs:\n  build:\n{JOB}    steps:\n      - run: make\n"
        "      - run:\n          name: Test\n          command: make test\n"
        "          when: always\n          environment: {A: $B}\n"
    )
    r0, r1 = p.jobs[0].steps
    assert isinstance(r0, Run) and r0.command == "make" and r0.name == "make"
    assert isinstance(r1, Run) and r1.name == "Test" and r1.when == "always"
    assert r1.environment == (("A", "$B"),)


def test_unknown_keys_warn_with_position() -> None:
    _, d = _ok(f"version: 2\njobs:\n  build:\n{JOB}    stepz: []\n    steps: [checkout]\n")
    (w,) = [x for x in d.sorted() if x.code == "unknown-key"]
    assert w.span == Span("c.yml", 5, 5)


def test_parallelism_is_read_and_bounded() -> None:
    from cicompile import compile_config

    base = "version: 2.1\njobs:\n  t:\n    parallelism: {n}\n    steps: [{{run: x}}]\n" \
           "workflows:\n  w:\n    jobs: [t]\n"
    ok = compile_config(base.format(n=4), "shell")
    assert ok.ok and not ok.diagnostics  # no "not translated" warning any more
    for bad in (0, 201, -1):
        r = compile_config(base.format(n=bad), "shell")
        assert not r.ok
        assert [d.code for d in r.diagnostics] == ["invalid-value"], r.diagnostics
