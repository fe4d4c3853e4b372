"""The real-world corpus (../shared/corpus): every config compiles on every target, and every
output passes the validators of its platform. Skipped when ../shared is absent.

- No crash anywhere; config errors only for EXPECTED_ERRORS (CircleCI rejects those too).
- The six invalid-for-PyYAML configs that ran on CircleCI compile; the four real errors give
  `path:line:col: error: ... [code]`, exit 1, no traceback, nothing written.
- Validators, one process for many files: actionlint (structure; shellcheck separately, see
  below), GitHub's parser, zizmor (offline, medium+), the GitLab schema, gitlab-ci-local
  `--preview` and `--validate-dependency-chain`, shellcheck on ci.sh and on the Makefile's
  bash, `make -n`.
- shellcheck (warning level) findings on lines copied from the user's own commands are the
  user's; any finding on a line cicompile wrote fails.
- The table configs × targets (clean / warnings / errors) goes to
  .pytest_cache/cicompile-corpus-summary.md and is printed at the end of the session.

The default run checks the expensive validators (gitlab-ci-local, per-script shellcheck of
GitHub steps) on a sample; `--long-fuzz` runs them on everything.
"""

from __future__ import annotations

import collections
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cicompile import Result

from tests.corpus_tools import (
    CORPUS,
    EXPECTED_ERRORS,
    INVALID,
    TARGETS,
    compiled,
    corpus_files,
    invalid_manifest,
)
from tests.reference import expanded_config
from tests.tools import ROOT, node_script, require_tool, run

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is absent")

SUMMARY_FILE = ROOT / ".pytest_cache" / "cicompile-corpus-summary.md"
ZIZMOR_CONFIG = ROOT / ".ci" / "zizmor.yml"


def valid_inputs() -> list[Path]:
    """Corpus configs that must compile: the valid ones and the six that ran on CircleCI."""
    ok = [p for p in corpus_files() if p.name not in EXPECTED_ERRORS]
    return ok + [INVALID / r["file"] for r in invalid_manifest()
                 if r["on_default_branch"] == "yes"]


def out_id(path: Path) -> str:
    return ("invalid-" if path.parent == INVALID else "") + path.stem


def sample(paths: list[Path], long: bool) -> list[Path]:
    """Everything with --long-fuzz; else every 8th config (the expensive validators)."""
    return paths if long else paths[::8]


@pytest.fixture(scope="module")
def long_fuzz(pytestconfig: pytest.Config) -> bool:
    return bool(pytestconfig.getoption("--long-fuzz"))


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every output of every valid input, under <tmp>/<target>/<config>/."""
    root = tmp_path_factory.mktemp("corpus-out")
    for p in valid_inputs():
        for t in TARGETS:
            r = compiled(p, t)
            assert r.ok, (p.name, t, [d.render() for d in r.diagnostics if d.severity == "error"])
            for rel, text in r.files.items():
                f = root / t / out_id(p) / rel
                f.parent.mkdir(parents=True, exist_ok=True)
                f.write_text(text)
    return root


def files(root: Path, target: str, pattern: str) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in (root / target).rglob(pattern))


# ---- compiling -----------------------------------------------------------------------------

def _status(r: Result) -> str:
    errors = sum(d.severity == "error" for d in r.diagnostics)
    warnings = sum(d.severity == "warning" for d in r.diagnostics)
    return f"errors ({errors})" if errors else f"warnings ({warnings})" if warnings else "clean"


def test_every_config_compiles_on_every_target() -> None:
    rows: list[tuple[str, list[str]]] = []
    by_code: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    failures = []
    inputs = corpus_files() + [INVALID / r["file"] for r in invalid_manifest()
                               if r["on_default_branch"] == "yes"]
    for p in inputs:
        cells = []
        for t in TARGETS:
            try:
                r = compiled(p, t)
            except Exception as e:  # noqa: BLE001 - an internal error is what this looks for
                failures.append(f"{p.name} {t}: internal error {e!r}")
                cells.append("CRASH")
                continue
            cells.append(_status(r))
            for d in r.diagnostics:
                if d.severity == "warning":
                    by_code[d.code][t] += 1
            errors = {d.code for d in r.diagnostics if d.severity == "error"}
            expected = EXPECTED_ERRORS.get(p.name) if p.parent == CORPUS else None
            if expected:
                if errors != {expected[0]}:
                    failures.append(f"{p.name} {t}: expected [{expected[0]}], got {errors}")
            elif errors or not r.files:
                failures.append(f"{p.name} {t}: " + "; ".join(
                    d.render() for d in r.diagnostics if d.severity == "error"))
        rows.append((out_id(p), cells))
    write_summary(rows, by_code)
    assert not failures, "\n".join(failures)


def write_summary(rows: list[tuple[str, list[str]]],
                  by_code: dict[str, collections.Counter[str]]) -> None:
    lines = ["| config | " + " | ".join(TARGETS) + " |", "|---" * (len(TARGETS) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows]
    totals = collections.Counter(c.split(" ")[0] for _, cells in rows for c in cells)
    lines += ["", "Totals (config × target): " + ", ".join(
        f"{k} {v}" for k, v in sorted(totals.items())), "",
        "| warning code | " + " | ".join(TARGETS) + " |", "|---" * (len(TARGETS) + 1) + "|"]
    lines += [f"| {code} | " + " | ".join(str(by_code[code][t]) for t in TARGETS) + " |"
              for code in sorted(by_code)]
    SUMMARY_FILE.parent.mkdir(exist_ok=True)
    SUMMARY_FILE.write_text("\n".join(lines) + "\n")


_POSITIONED = re.compile(r"^(\S+?):(\d+):(\d+): error: .+ \[[a-z0-9-]+\]$")


@pytest.mark.parametrize("entry", invalid_manifest(), ids=lambda e: e["file"])
def test_invalid_yaml_configs(entry: dict[str, str], tmp_path: Path) -> None:
    """Through the CLI: the ones that ran on CircleCI compile; the others fail cleanly."""
    src = INVALID / entry["file"]
    out = tmp_path / "out"
    r = run([sys.executable, "-m", "cicompile", "--target", "github", "-o", str(out), str(src)])
    if entry["on_default_branch"] == "yes":
        assert r.returncode == 0, r.stderr
        assert "error:" not in r.stderr
        return
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    assert not out.exists() or not any(out.rglob("*")), "nothing may be written"
    errors = [line for line in r.stderr.splitlines() if ": error: " in line]
    assert errors, r.stderr
    for line in errors:
        m = _POSITIONED.match(line)
        assert m, line
        assert m.group(1) == str(src) and int(m.group(2)) >= 1 and int(m.group(3)) >= 1, line


# ---- validators ----------------------------------------------------------------------------

def test_actionlint(outputs: Path) -> None:
    """Structure with actionlint; its shellcheck runs below, on generated lines only."""
    actionlint = require_tool("actionlint")
    r = run([actionlint, "-oneline", "-shellcheck=", *files(outputs, "github", "*.yml")],
            cwd=outputs)
    assert r.returncode == 0, r.stdout + r.stderr


def test_github_workflow_parser(outputs: Path) -> None:
    r = run([*node_script("gha-validate.mjs"), *files(outputs, "github", "*.yml")], cwd=outputs)
    assert r.returncode == 0, r.stdout + r.stderr


def test_zizmor(outputs: Path, tmp_path: Path) -> None:
    """The project's zizmor policy, minus `unpinned-images`: an image the user's config names
    without a digest (`amazon/aws-cli`, `…:latest`) is copied as written; pinning it is the
    user's call. Every other audit applies."""
    zizmor = require_tool("zizmor")
    config = yaml.safe_load(ZIZMOR_CONFIG.read_text())
    config.setdefault("rules", {})["unpinned-images"] = {"disable": True}
    (tmp_path / "zizmor.yml").write_text(yaml.safe_dump(config))
    r = run([zizmor, "--offline", "--config", str(tmp_path / "zizmor.yml"), "--min-severity",
             "medium", "--format", "plain", *files(outputs, "github", "*.yml")], cwd=outputs)
    assert r.returncode == 0, r.stdout + r.stderr


def test_gitlab_schema(outputs: Path) -> None:
    cj = require_tool("check-jsonschema")
    r = run([cj, "--builtin-schema", "vendor.gitlab-ci", *files(outputs, "gitlab", "*.yml")],
            cwd=outputs)
    assert r.returncode == 0, r.stdout + r.stderr


def test_make_dry_run(outputs: Path) -> None:
    make = require_tool("make")
    for mf in files(outputs, "make", "Makefile"):
        r = run([make, "-n", "-f", str(outputs / mf)], cwd=outputs / Path(mf).parent)
        assert r.returncode == 0, mf + r.stdout + r.stderr


def _user_lines(path: Path) -> set[str]:
    """Every line of every command the config's own steps run (after 2.1 expansion)."""
    out: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("run", "command") and isinstance(v, str):
                    out.update(line.strip() for line in v.splitlines())
                walk(v)
        elif isinstance(node, list):
            for x in node:
                walk(x)

    walk(expanded_config(path.read_text(), path.name))
    out.discard("")
    return out


def _generated_findings(scripts: dict[Path, Path], user: dict[Path, set[str]],
                        offset: int = 0) -> list[str]:
    """shellcheck (warning level) on many files at once; findings on user lines dropped."""
    sc = require_tool("shellcheck")
    found = []
    names = list(scripts)
    for i in range(0, len(names), 400):
        r = run([sc, "-s", "bash", "-S", "warning", "-f", "gcc", *map(str, names[i:i + 400])])
        for line in r.stdout.splitlines():
            m = re.match(r"^(.*?):(\d+):\d+: (.*)$", line)
            assert m, line
            f = Path(m.group(1))
            text = f.read_text().splitlines()[int(m.group(2)) - 1].strip()
            text = text.replace("$$", "$")
            if not any(text in u or u in text for u in user[scripts[f]] if u):
                found.append(f"{scripts[f]}: {text!r}: {m.group(3)}")
    return found


def test_shellcheck_shell_and_make(outputs: Path, tmp_path: Path,
                                   long_fuzz: bool) -> None:
    inputs = {out_id(p): p for p in (valid_inputs() if long_fuzz else valid_inputs()[::16])}
    user = {p: _user_lines(p) for p in inputs.values()}
    scripts: dict[Path, Path] = {}
    for cid, p in inputs.items():
        scripts[outputs / "shell" / cid / "ci.sh"] = p
        text = (outputs / "make" / cid / "Makefile").read_text()
        for name, body in re.findall(r"^define ([A-Za-z0-9_.-]+)\n(.*?)^endef$", text,
                                     re.M | re.S):
            f = tmp_path / f"{cid}.{name}.sh"
            f.write_text("#!/usr/bin/env bash\n" + body.replace("$$", "$"))
            scripts[f] = p
    for f in scripts:
        r = run(["bash", "-n", str(f)])
        assert r.returncode == 0, f"{f}: {r.stderr}"
    findings = _generated_findings(scripts, user)
    assert not findings, "\n".join(findings)


def test_shellcheck_github_steps(outputs: Path, tmp_path: Path, long_fuzz: bool) -> None:
    """What actionlint's shellcheck sees (`${{ }}` as a placeholder), in one batch."""
    scripts: dict[Path, Path] = {}
    user: dict[Path, set[str]] = {}
    for p in sample(valid_inputs(), long_fuzz):
        user[p] = _user_lines(p)
        for wf in (outputs / "github" / out_id(p)).rglob("*.yml"):
            doc = yaml.safe_load(wf.read_text())
            for jid, job in doc["jobs"].items():
                for i, step in enumerate(job.get("steps") or []):
                    if "run" not in step or step["run"].strip() in user[p]:
                        continue  # a user's command as written: the user's business
                    f = tmp_path / f"{out_id(p)}.{wf.stem}.{jid}.{i}.sh"
                    body = re.sub(r"\$\{\{.*?\}\}", "_____", step["run"], flags=re.S)
                    f.write_text("#!/bin/bash\nset -eo pipefail\n" + body)
                    scripts[f] = p
    findings = _generated_findings(scripts, user)
    assert not findings, "\n".join(findings)


def test_gitlab_ci_local_preview_and_needs(outputs: Path, tmp_path: Path,
                                           long_fuzz: bool) -> None:
    from tests.gitlab_helpers import _gcl, make_repo, validate_needs

    problems = []
    for p in sample(valid_inputs(), long_fuzz):
        text = (outputs / "gitlab" / out_id(p) / ".gitlab-ci.yml").read_text()
        repo = make_repo(tmp_path / out_id(p), text)
        manual = [arg for name, job in yaml.safe_load(text).items() if isinstance(job, dict)
                  and "manual" in str(job.get("when")) + str(job.get("rules"))
                  for arg in ("--manual", name)]  # approvals: granted, as in a full run
        r = _gcl(repo, ["--preview", "--no-json-schema-validation"])
        if r.returncode != 0:
            problems.append(f"{p.name} --preview: {r.stdout[-2000:]}{r.stderr[-2000:]}")
        for tag in (None, "v1.2.3"):
            err = validate_needs(repo, *manual, tag=tag)
            # gitlab-ci-local 4.73 ignores --manual in this mode: a blocking approval (a manual
            # job) that others need is reported although it is what CircleCI's hold means.
            m = re.search(r"^(\S+) is when:manual, its needed by", err, re.M)
            if m and m.group(1) in manual:
                continue
            if err:
                problems.append(f"{p.name} --validate-dependency-chain ({tag}): {err[-2000:]}")
    assert not problems, "\n".join(problems)


# ---- determinism -----------------------------------------------------------------------------

DETERMINISM = ["CircleCI-Public__circleci-demo-workflows.yml", "apollographql__apollo-server.yml",
               "mne-tools__mne-python.yml"]


@pytest.mark.parametrize("name", DETERMINISM)
def test_output_is_byte_identical_across_runs_and_hash_seeds(name: str, tmp_path: Path) -> None:
    src = CORPUS / name
    script = (
        "import sys, json\nfrom cicompile import compile_config\n"
        "text = open(sys.argv[1]).read()\n"
        "print(json.dumps({t: compile_config(text, t, path='c.yml').files"
        " for t in ('github', 'gitlab', 'make', 'shell')}, sort_keys=True))\n"
    )
    outs = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        r = subprocess.run([sys.executable, "-c", script, str(src)], capture_output=True,
                           text=True, env=env, check=True)
        outs.add(r.stdout)
    assert len(outs) == 1
    assert outs.pop().strip() != "{}"
