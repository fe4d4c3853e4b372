"""The command line: exit codes, output files, nothing written on error, no tracebacks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.golden_cases import GOLDEN
from tests.tools import ROOT

CLI = [sys.executable, "-m", "cicompile"]
SEED = GOLDEN / "seed-workspace" / "input.yml"
TWO_WORKFLOWS = GOLDEN / "release-pipeline" / "input.yml"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, cwd=ROOT)


@pytest.mark.parametrize("target", ["github", "gitlab", "make", "shell"])
def test_stdout_output(target: str) -> None:
    r = cli("--target", target, str(SEED))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()
    assert "Traceback" not in r.stderr


def test_several_github_files_are_labelled() -> None:
    r = cli("--target", "github", str(TWO_WORKFLOWS))
    assert r.returncode == 0
    assert "# ==> .github/workflows/release.yml <==" in r.stdout
    assert "# ==> .github/workflows/documentation.yml <==" in r.stdout


@pytest.mark.parametrize(
    ("target", "path"),
    [("github", ".github/workflows/btd.yml"), ("gitlab", ".gitlab-ci.yml"),
     ("make", "Makefile"), ("shell", "ci.sh")],
)
def test_output_dir(tmp_path: Path, target: str, path: str) -> None:
    r = cli("--target", target, "-o", str(tmp_path), str(SEED))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / path).is_file()
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [Path(path).name]
    if target == "shell":
        assert os.access(tmp_path / path, os.X_OK)


@pytest.mark.parametrize("case", sorted(p.name for p in GOLDEN.glob("err-*")))
def test_errors_exit_1_and_write_nothing(tmp_path: Path, case: str) -> None:
    out = tmp_path / "out"
    r = cli("--target", "gitlab", "-o", str(out), str(GOLDEN / case / "input.yml"))
    assert r.returncode == 1
    assert not out.exists()
    assert "Traceback" not in r.stderr
    first = r.stderr.splitlines()[0]
    assert first.startswith(str(GOLDEN / case / "input.yml") + ":"), first
    assert ": error: " in first and first.endswith("]")


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert cli("--target", "nope", str(SEED)).returncode == 2
    assert cli(str(SEED)).returncode == 2
    r = cli("--target", "github", str(tmp_path / "missing.yml"))
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_not_utf8_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_bytes(b"version: 2\n\xff\xfe\n")
    r = cli("--target", "github", str(bad))
    assert r.returncode in (1, 2) and "Traceback" not in r.stderr


def test_help_has_examples() -> None:
    r = cli("--help")
    assert r.returncode == 0
    assert "Examples:" in r.stdout and "--target" in r.stdout


def test_json_diagnostics() -> None:
    r = cli("--target", "github", "--format", "json", str(GOLDEN / "err-cycle" / "input.yml"))
    assert r.returncode == 1
    assert '"code": "requires-cycle"' in r.stderr


def test_github_annotation_diagnostics() -> None:
    r = cli("--target", "github", "--format", "github", str(GOLDEN / "err-cycle" / "input.yml"))
    assert r.stderr.startswith("::error file=")


@pytest.mark.parametrize("target", ["github", "gitlab", "make", "shell"])
def test_deterministic_across_hash_seeds(target: str) -> None:
    outs = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        r = cli("--target", target, str(TWO_WORKFLOWS), env=env)
        assert r.returncode == 0, r.stderr
        outs.add(r.stdout)
    assert len(outs) == 1


REPORT_CONFIG = """version: 2
jobs:
  deploy:
    docker: [{image: cimg/base:stable}]
    environment: {REGION: eu}
    steps:
      - run: |
          for f in a b; do echo "$f"; done
          TOKEN_FILE=/tmp/t
          aws s3 cp dist "s3://$BUCKET/$REGION" --profile "${AWS_PROFILE}" > "$TOKEN_FILE"
workflows:
  version: 2
  w:
    jobs:
      - hold: {type: approval}
      - deploy: {requires: [hold], context: [aws-prod]}
"""


def test_migration_report(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yml"
    cfg.write_text(REPORT_CONFIG)
    report = tmp_path / "MIGRATION.md"
    r = cli("--target", "github", "--report", str(report), str(cfg))
    assert r.returncode == 0, r.stderr
    text = report.read_text()
    assert "GitHub environment 'hold'" in text and "| 15:9 |" in text
    assert "uses CircleCI context 'aws-prod'" in text
    assert "| `AWS_PROFILE` | deploy | aws-prod |" in text
    assert "| `BUCKET` | deploy | aws-prod |" in text
    for defined in ("`REGION`", "`TOKEN_FILE`", "`f`"):
        assert defined not in text


def test_check_and_diff(tmp_path: Path) -> None:
    r = cli("--target", "github", "-o", str(tmp_path), "--check", str(SEED))
    assert r.returncode == 1 and "+++ " in r.stdout and not any(tmp_path.iterdir())
    assert cli("--target", "github", "-o", str(tmp_path), str(SEED)).returncode == 0
    r = cli("--target", "github", "-o", str(tmp_path), "--check", str(SEED))
    assert r.returncode == 0 and r.stdout == ""
    wf = tmp_path / ".github/workflows/btd.yml"
    wf.write_text(wf.read_text().replace("name: flow", "name: edited"))
    r = cli("--target", "github", "-o", str(tmp_path), "--diff", str(SEED))
    assert r.returncode == 0 and "-    name: edited" in r.stdout and "+    name: flow" in r.stdout
    assert "edited" in wf.read_text()  # --diff writes nothing
    assert cli("--target", "github", "-o", str(tmp_path), "--check", str(SEED)).returncode == 1
    assert cli("--target", "github", "--check", str(SEED)).returncode == 2


def test_graph_mermaid_and_dot(tmp_path: Path) -> None:
    r = cli("graph", str(GOLDEN / "seed-approval" / "input.yml"))
    assert r.returncode == 0, r.stderr
    assert "flowchart LR" in r.stdout and '{{"⏸ hold"}}' in r.stdout
    assert "n1 -.-> n3" in r.stdout  # test1 → hold is implied by test2: dashed
    r = cli("graph", "--format", "dot", str(TWO_WORKFLOWS))
    assert r.returncode == 0 and "shape=octagon" in r.stdout and "tags only" in r.stdout
    dot = shutil.which("dot")
    if dot:
        svg = subprocess.run([dot, "-Tsvg"], input=r.stdout, capture_output=True, text=True)
        assert svg.returncode == 0 and "<svg" in svg.stdout, svg.stderr
    r = cli("graph", str(GOLDEN / "err-cycle" / "input.yml"))
    assert r.returncode == 1 and "requires-cycle" in r.stderr and "Traceback" not in r.stderr


def test_pipeline_parameters_from_the_command_line(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text(
        "version: 2.1\nparameters:\n  deploy: {type: boolean, default: false}\njobs:\n"
        "  build:\n    docker: [{image: cimg/base:stable}]\n    steps: [{run: echo hi}]\n"
        "workflows:\n  main:\n    when: << pipeline.parameters.deploy >>\n    jobs: [build]\n"
    )
    r = cli("--target", "github", str(cfg))
    assert r.returncode == 0 and r.stdout == "" and "[workflow-skipped]" in r.stderr
    r = cli("--target", "github", "-p", "deploy=true", str(cfg))
    assert r.returncode == 0 and "name: main" in r.stdout
    r = cli("--target", "github", "-p", "deploy=maybe", str(cfg))
    assert r.returncode == 1 and "[invalid-parameter]" in r.stderr
    assert cli("--target", "github", "-p", "nonsense", str(cfg)).returncode == 2


def test_audit_batch_with_folders_and_bad_configs(tmp_path: Path) -> None:
    for name, src in (("good", "seed-approval"), ("bad", "err-cycle"), ("also", "seed-workspace")):
        d = tmp_path / name / ".circleci"
        d.mkdir(parents=True)
        (d / "config.yml").write_text((GOLDEN / src / "input.yml").read_text())
    (tmp_path / "broken.yml").write_bytes(b"version: 2\n\xff\n")
    md, js = tmp_path / "audit.md", tmp_path / "audit.json"
    r = cli("audit", str(tmp_path), str(tmp_path / "broken.yml"), "--markdown", str(md),
            "--json", str(js))
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stdout.splitlines()
    assert any("good/.circleci/config.yml" in ln and "clean" in ln for ln in lines)
    assert any("bad/.circleci/config.yml" in ln and "1 error" in ln for ln in lines)
    assert any(ln.startswith("TOTAL (2/4 compiled)") for ln in lines)
    import json as _json

    data = _json.loads(js.read_text())
    by_path = {Path(c["path"]).parent.parent.name: c for c in data["configs"]}
    assert by_path["good"]["approvals"] == 1 and by_path["good"]["jobs"] == 4
    assert by_path["bad"]["targets"]["github"]["codes"] == {"requires-cycle": 1}
    assert "| config | workflows |" in md.read_text()


def test_audit_needs_configs(tmp_path: Path) -> None:
    r = cli("audit", str(tmp_path))
    assert r.returncode == 2 and "no CircleCI config found" in r.stderr


def test_quiet_and_verbose(tmp_path: Path) -> None:
    approval = str(GOLDEN / "seed-approval" / "input.yml")
    assert "[approval-environment]" in cli("--target", "github", approval).stderr
    assert cli("--target", "github", "-q", approval).stderr == ""
    r = cli("--target", "gitlab", "-v", "-o", str(tmp_path), approval)
    assert f"wrote {tmp_path}/.gitlab-ci.yml" in r.stderr
    r = cli("--target", "github", "-q", str(GOLDEN / "err-cycle" / "input.yml"))
    assert "[requires-cycle]" in r.stderr  # errors are never silenced
    assert "\x1b[" not in r.stderr  # no colour when stderr is not a terminal
