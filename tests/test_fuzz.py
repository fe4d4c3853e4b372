"""Fuzzing the compiler with hypothesis.

1. Valid configs (random DAGs, branch/tag filters, approvals, workspaces, steps) compile on
   every target; the outputs pass the cheap validators (shellcheck, GitLab schema, and
   actionlint once for all examples); the GitHub gate and the shell script (dry run) agree
   with the reference evaluator on which jobs exist.
2. Real and golden configs mutated into invalid ones (keys deleted, types changed, YAML
   broken, cycles, unknown requires) give a clean positioned error or compile: never an
   internal error.

A fast profile by default; `--long-fuzz` runs many more examples.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from cicompile import compile_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.corpus_tools import (
    BASE_EVENTS,
    corpus_files,
    github_view,
    golden_inputs,
    local_view,
    mismatches,
    push_expectation,
)
from tests.test_filters_differential import workflows
from tests.tools import require_tool, run

TARGETS = ("github", "gitlab", "make", "shell")


@pytest.fixture(scope="module")
def long_fuzz(pytestconfig: pytest.Config) -> bool:
    return bool(pytestconfig.getoption("--long-fuzz"))


def _settings(long: bool, fast: int, slow: int) -> Any:
    return settings(max_examples=slow if long else fast, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


STEP_TEXT = st.sampled_from(["echo hi", "make test", 'echo "$CIRCLE_BRANCH"', "ls -la | wc -l",
                             "mkdir -p out && date > out/stamp", "true"])


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    """A random workflow (test_filters_differential) with richer jobs: steps, `when`,
    working directories, environment, workspaces persisted and attached."""
    config = draw(workflows())
    for name, job in config["jobs"].items():
        steps: list[Any] = [] if draw(st.booleans()) else ["checkout"]
        for _ in range(draw(st.integers(1, 3))):
            run: dict[str, Any] = {"command": draw(STEP_TEXT)}
            if draw(st.booleans()):
                run["name"] = f"step of {name}"
            if draw(st.integers(0, 3)) == 0:
                run["when"] = draw(st.sampled_from(["always", "on_fail", "on_success"]))
            if draw(st.integers(0, 3)) == 0:
                run["working_directory"] = draw(st.sampled_from(["sub", "~/project/x", "/tmp"]))
            steps.append({"run": run})
        if draw(st.booleans()):
            steps.append({"persist_to_workspace": {"root": ".", "paths": ["out"]}})
        if draw(st.booleans()):
            steps.insert(0, {"attach_workspace": {"at": draw(st.sampled_from(
                ["ws", "~/project/ws", "/tmp/ws"]))}})
        job["steps"] = steps
        if draw(st.booleans()):
            job["environment"] = {"FOO": draw(st.sampled_from(["bar", "a b", "$HOME"]))}
        if draw(st.integers(0, 4)) == 0:
            job["working_directory"] = "~/repo"
    return config


def test_random_valid_configs(tmp_path: Path, long_fuzz: bool) -> None:
    shellcheck = require_tool("shellcheck")
    cj = require_tool("check-jsonschema")
    out = tmp_path / "out"
    counter = iter(range(10**6))

    @_settings(long_fuzz, 15, 300)
    @given(configs())
    def check(config: dict[str, Any]) -> None:
        i = next(counter)
        text = yaml.safe_dump(config, sort_keys=False)
        results = {t: compile_config(text, t, path="c.yml") for t in TARGETS}
        for t, r in results.items():
            assert r.ok, (t, text, [d.render() for d in r.diagnostics])
            for rel, body in r.files.items():
                f = out / t / str(i) / rel
                f.parent.mkdir(parents=True, exist_ok=True)
                f.write_text(body)
        # Which jobs exist, and in which order: the reference, the gate, the script.
        exp = push_expectation(config, BASE_EVENTS)
        problems = mismatches(exp, github_view(results["github"], BASE_EVENTS), "github")
        problems += mismatches(exp, local_view(results["shell"], "shell", BASE_EVENTS,
                                               tmp_path / "run" / str(i)), "shell")
        assert not problems, (problems, text)

    check()
    sh = sorted(str(p) for p in (out / "shell").rglob("ci.sh"))
    r = run([shellcheck, "-S", "warning", "-f", "gcc", *sh])
    assert r.returncode == 0, r.stdout
    r = run([cj, "--builtin-schema", "vendor.gitlab-ci",
             *sorted(str(p) for p in (out / "gitlab").rglob("*.yml"))])
    assert r.returncode == 0, r.stdout + r.stderr
    actionlint = require_tool("actionlint")
    r = run([actionlint, "-oneline", *sorted(str(p) for p in (out / "github").rglob("*.yml"))],
            env={**os.environ, "SHELLCHECK_OPTS": "--severity=warning"})
    assert r.returncode == 0, r.stdout + r.stderr


# ---- mutations ---------------------------------------------------------------------------

def _seeds() -> list[str]:
    paths = golden_inputs() + corpus_files()[::10]
    return [p.read_text() for p in paths]


SEEDS = _seeds()
_POSITIONED = re.compile(r"^c\.yml:\d+:\d+: (error|warning|note): .+ \[[a-z0-9-]+\]$", re.S)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for k in path:
        node = node[k]
    return node


@st.composite
def mutants(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEEDS))
    kind = draw(st.sampled_from(["text", "delete", "retype", "cycle", "unknown-requires"]))
    if kind == "text":
        lines = text.splitlines()
        i = draw(st.integers(0, max(0, len(lines) - 1)))
        op = draw(st.sampled_from(["drop", "dup", "indent", "junk", "truncate"]))
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i] if lines else "")
        elif op == "indent" and lines:
            lines[i] = " " * draw(st.integers(1, 3)) + lines[i]
        elif op == "junk":
            lines.insert(i, draw(st.sampled_from(["- :", "{", "]", "key: [", "\t", "*nope",
                                                  "&a", "<<: 3", "!!python/object x"])))
        else:
            lines = lines[:i]
        return "\n".join(lines) + "\n"
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return text  # the duplicate-anchor seeds: mutate them as text only
    if not isinstance(doc, dict):
        return text
    if kind in ("cycle", "unknown-requires"):
        wfs = [w for w in (doc.get("workflows") or {}).values()
               if isinstance(w, dict) and w.get("jobs")]
        if wfs:
            wf = draw(st.sampled_from(wfs))
            names = [next(iter(e)) if isinstance(e, dict) else e for e in wf["jobs"]]
            a, b = draw(st.sampled_from(names)), draw(st.sampled_from(names))
            req = "no-such-job" if kind == "unknown-requires" else b
            wf["jobs"] = [{a: {"requires": [req]}} if n == a else e
                          for n, e in zip(names, wf["jobs"], strict=True)]
            if kind == "cycle":
                wf["jobs"] = [{b: {"requires": [a]}} if n == b and a != b else e
                              for n, e in zip(names, wf["jobs"], strict=True)]
    else:
        paths = [p for p in _paths(doc) if p]
        path = draw(st.sampled_from(paths))
        parent = _get(doc, path[:-1])
        if kind == "delete":
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(st.sampled_from([None, 3, True, "x", [], {}, [1, 2],
                                                     {"a": 1}]))
    return yaml.safe_dump(doc, sort_keys=False)


def test_mutated_configs_fail_cleanly(long_fuzz: bool) -> None:
    @_settings(long_fuzz, 60, 1500)
    @given(mutants(), st.sampled_from(TARGETS))
    def check(text: str, target: str) -> None:
        r = compile_config(text, target, path="c.yml")  # an exception here is the bug
        rendered = [d.render() for d in r.diagnostics]
        for line in rendered:
            assert _POSITIONED.match(line), line
        if not r.ok:
            assert not r.files
        else:
            assert r.files

    check()
