"""The command line: exit codes, output files, nothing written on error, no tracebacks."""

from __future__ import annotations

import os
import re
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
    r = cli("--target", "gitlab", "-v", "-o", str(tmp_path), "--report",
            str(tmp_path / "r.md"), approval)
    assert f"wrote {tmp_path}/.gitlab-ci.yml" in r.stderr
    assert f"wrote {tmp_path}/r.md" in r.stderr
    r = cli("--target", "github", "-q", str(GOLDEN / "err-cycle" / "input.yml"))
    assert "[requires-cycle]" in r.stderr  # errors are never silenced
    assert "\x1b[" not in r.stderr  # no colour when stderr is not a terminal


# ---- golden checks (--check / --diff) as a PR check runs them -------------------------------

def _in(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd)


def test_check_every_kind_of_difference_with_several_targets(tmp_path: Path) -> None:
    # The repository layout: the config is out/.circleci/config.yml, so stale workflows of
    # this config in out/.github/workflows are its own.
    (tmp_path / "out" / ".circleci").mkdir(parents=True)
    (tmp_path / "out" / ".circleci" / "config.yml").write_text(TWO_WORKFLOWS.read_text())
    args = ("-t", "github", "-t", "gitlab", "-t", "make", "-o", "out",
            "out/.circleci/config.yml")
    assert _in(tmp_path, *args).returncode == 0
    r = _in(tmp_path, "--check", *args)
    assert r.returncode == 0 and r.stdout == ""
    out = tmp_path / "out"
    wfs = out / ".github/workflows"
    (out / "Makefile").unlink()  # missing
    gitlab = out / ".gitlab-ci.yml"
    gitlab.write_bytes(gitlab.read_bytes().replace(b"\n", b"\r\n"))  # CRLF only
    release = wfs / "release.yml"
    release.write_text(release.read_text().replace("name: release", "name: edited"))
    # A workflow file generated from this config for a workflow since removed: stale.
    (wfs / "old.yml").write_text("# Generated by cicompile from config.yml. Do not edit by"
                                 " hand.\n# CircleCI workflow: old\nname: old\n")
    (wfs / "mine.yml").write_text("name: mine\n")  # the user's own: never touched
    r = _in(tmp_path, "--check", *args)
    assert r.returncode == 1, r.stderr
    assert r.stderr.endswith("out: the generated files are not current (the diff on stdout);"
                             " the same command without --check updates them\n"), r.stderr
    assert "not current" not in _in(tmp_path, "--diff", *args).stderr
    headers = [ln for ln in r.stdout.splitlines() if ln.startswith(("--- ", "+++ ", "Files "))]
    assert headers == [
        "--- out/.github/workflows/old.yml", "+++ /dev/null",
        "--- out/.github/workflows/release.yml", "+++ out/.github/workflows/release.yml",
        "Files out/.gitlab-ci.yml and generated differ in line endings (out/.gitlab-ci.yml"
        " has CRLF, cicompile writes LF)",
        "--- /dev/null", "+++ out/Makefile",
    ]
    assert "-name: edited\n+name: release\n" in r.stdout
    assert "mine.yml" not in r.stdout
    d = _in(tmp_path, "--diff", *args)
    assert d.returncode == 0 and d.stdout == r.stdout  # same diff, no failure, stable
    assert not (out / "Makefile").exists() and (wfs / "old.yml").exists()  # nothing written
    # Writing makes the check pass: the stale workflow is removed, the user's file kept.
    w = _in(tmp_path, *args)  # a removal is said without -v
    assert "removed out/.github/workflows/old.yml" in w.stderr
    assert sorted(p.name for p in wfs.iterdir()) == ["documentation.yml", "mine.yml",
                                                    "release.yml"]
    r = _in(tmp_path, "--check", *args)
    assert r.returncode == 0 and r.stdout == "", r.stdout


def test_another_configs_workflows_are_never_removed(tmp_path: Path) -> None:
    """Two repositories' config.yml compiled into one folder: their notices are the same
    (`from config.yml`), so the second compile must not take the first one's workflows for
    its own stale ones, nor fail --check on them."""
    for repo, config in (("a", TWO_WORKFLOWS), ("b", SEED)):
        (tmp_path / repo / ".circleci").mkdir(parents=True)
        (tmp_path / repo / ".circleci" / "config.yml").write_text(config.read_text())
    assert _in(tmp_path, "-t", "github", "-o", "shared", "a/.circleci/config.yml").returncode == 0
    b = ("-t", "github", "-o", "shared", "b/.circleci/config.yml")
    r = _in(tmp_path, *b)
    assert r.returncode == 0, r.stderr
    wfs = tmp_path / "shared" / ".github" / "workflows"
    assert sorted(p.name for p in wfs.iterdir()) == ["btd.yml", "documentation.yml",
                                                    "release.yml"]
    assert "removed" not in r.stderr
    # Said, since it could also be this config's own workflow that was renamed.
    assert ("kept shared/.github/workflows/release.yml: generated from a config.yml for the"
            " workflow 'release'") in r.stderr
    r = _in(tmp_path, "--check", *b)
    assert r.returncode == 0 and r.stdout == "", r.stdout


def test_a_renamed_copy_of_a_generated_workflow_is_not_removed(tmp_path: Path) -> None:
    """A user's hand-edited copy of a generated workflow keeps cicompile's first line, but its
    file name is not the one cicompile gives the workflow on its second line: it is kept."""
    (tmp_path / ".circleci").mkdir()
    (tmp_path / ".circleci" / "config.yml").write_text(SEED.read_text())
    args = ("-t", "github", "-o", ".", ".circleci/config.yml")
    assert _in(tmp_path, *args).returncode == 0
    wfs = tmp_path / ".github" / "workflows"
    mine = (wfs / "btd.yml").read_text().replace("name: btd", "name: mine")
    (wfs / "btd-mine.yml").write_text(mine)
    (wfs / "gone.yml").write_text("# Generated by cicompile from config.yml. Do not edit by"
                                  " hand.\n# CircleCI workflow: gone\nname: gone\n")
    r = _in(tmp_path, "--check", *args)
    assert r.returncode == 1 and "btd-mine" not in r.stdout
    r = _in(tmp_path, *args)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines()[-1] == ("removed .github/workflows/gone.yml (generated from"
                                         " config.yml for the workflow 'gone', which it no"
                                         " longer has)")
    assert sorted(p.name for p in wfs.iterdir()) == ["btd-mine.yml", "btd.yml"]
    assert (wfs / "btd-mine.yml").read_text() == mine


def test_the_report_is_not_written_when_the_outputs_cannot_be(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    report = tmp_path / "MIGRATION.md"
    r = cli("-t", "github", "-o", str(blocker / "out"), "--report", str(report), str(SEED))
    assert r.returncode == 2 and "cannot write" in r.stderr, r.stderr
    assert not report.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # no temporary files


def test_a_read_only_generated_file_is_not_replaced(tmp_path: Path) -> None:
    """Renaming into place would replace a file its owner made read-only: refused like a
    plain write to it, unless --force."""
    assert cli("-t", "make", "-o", str(tmp_path), str(SEED)).returncode == 0
    makefile = tmp_path / "Makefile"
    makefile.write_text(makefile.read_text() + "# kept\n")
    makefile.chmod(0o444)
    r = cli("-t", "make", "-t", "shell", "-o", str(tmp_path), str(SEED))
    assert r.returncode == 2, r.stderr
    assert f"cannot write {makefile}: it is read-only" in r.stderr
    assert makefile.read_text().endswith("# kept\n") and not (tmp_path / "ci.sh").exists()
    assert cli("-t", "make", "-o", str(tmp_path), "--force", str(SEED)).returncode == 0
    assert not makefile.read_text().endswith("# kept\n")


def test_a_file_that_only_mentions_cicompile_is_not_taken_for_generated(tmp_path: Path) -> None:
    mine = "# Targets generated by cicompile are in ci.mk.\nall:\n\techo mine\n"
    (tmp_path / "Makefile").write_text(mine)
    r = cli("-t", "make", "-o", str(tmp_path), str(SEED))
    assert r.returncode == 2 and "not generated by cicompile" in r.stderr
    assert (tmp_path / "Makefile").read_text() == mine


def test_check_of_a_file_that_is_not_text(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert cli("-t", "gitlab", "-o", str(out), str(SEED)).returncode == 0
    (out / ".gitlab-ci.yml").write_bytes(b"\xff\xfe\x00")
    r = cli("-t", "gitlab", "-o", str(out), "--check", str(SEED))
    assert r.returncode == 1 and "is not UTF-8 text" in r.stdout and "Traceback" not in r.stderr


def test_written_files_follow_the_umask(tmp_path: Path) -> None:
    r = subprocess.run(["bash", "-c", 'umask 022 && exec "$@"', "-", *CLI, "-t", "gitlab",
                        "-t", "shell", "-o", str(tmp_path), str(SEED)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / ".gitlab-ci.yml").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "ci.sh").stat().st_mode & 0o777 == 0o755


# ---- exit statuses: 0 done, 1 config errors / differences, 2 usage and paths, 3 bugs --------

def test_unwritable_outputs_exit_2_and_write_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for args in (["-t", "all", "-o", str(blocker / "out")],
                 ["-t", "github", "--report", str(blocker / "r.md")],
                 ["-t", "github", "-o", str(blocker)]):
        r = cli(*args, str(SEED))
        assert r.returncode == 2, (args, r.stderr)
        assert "Traceback" not in r.stderr and "Error: " in r.stderr
    r = cli("audit", str(SEED), "--json", str(blocker / "a.json"))
    assert r.returncode == 2 and f"cannot write {blocker / 'a.json'}" in r.stderr
    r = cli("orbs", "fetch", "--orb-dir", str(blocker / "orbs"), str(SEED))
    assert r.returncode == 2 and f"cannot write {blocker / 'orbs'}" in r.stderr
    assert blocker.read_text() == "" and list(tmp_path.iterdir()) == [blocker]


def test_a_partial_write_leaves_nothing(tmp_path: Path) -> None:
    """make's Makefile would be written, but ci.sh cannot be: neither is."""
    (tmp_path / "ci.sh").mkdir()
    (tmp_path / "ci.sh" / "x").write_text("")  # a non-empty folder cannot be replaced
    r = cli("-t", "make", "-t", "shell", "-o", str(tmp_path), str(SEED))
    assert r.returncode == 2 and "cannot write" in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ci.sh"]


@pytest.mark.parametrize("command", [["-t", "github"], ["graph"], ["audit"],
                                     ["orbs", "fetch", "--orb-dir", "o"]])
def test_a_missing_input_exits_2_for_every_command(tmp_path: Path, command: list[str]) -> None:
    r = cli(*command, str(tmp_path / "missing.yml"))
    assert r.returncode == 2, r.stderr
    assert "missing.yml" in r.stderr and "Traceback" not in r.stderr


def test_every_command_exits_1_on_config_errors() -> None:
    bad = str(GOLDEN / "err-cycle" / "input.yml")
    for args in (["-t", "github", bad], ["graph", bad], ["audit", bad]):
        r = cli(*args)
        assert r.returncode == 1, (args, r.stderr)
        assert "Traceback" not in r.stderr


def test_quiet_and_verbose_together_are_a_usage_error() -> None:
    r = cli("-t", "github", "-q", "-v", str(SEED))
    assert r.returncode == 2 and "--quiet and --verbose" in r.stderr


def test_quiet_keeps_the_report_complete(tmp_path: Path) -> None:
    report = tmp_path / "r.md"
    r = cli("-t", "github", "-q", "--report", str(report), str(GOLDEN / "seed-approval" /
                                                              "input.yml"))
    assert r.returncode == 0 and r.stderr == ""
    assert "GitHub environment 'hold'" in report.read_text()


# ---- help, version, completion -----------------------------------------------------------

@pytest.mark.parametrize("command", [[], ["compile"], ["graph"], ["audit"], ["orbs", "fetch"]])
def test_every_help_has_examples_and_exit_statuses(command: list[str]) -> None:
    r = cli(*command, "--help")
    assert r.returncode == 0, r.stderr
    assert "Example" in r.stdout and "Exit status" in r.stdout, r.stdout
    # Each names the statuses it can end with, a bug's (3) too.
    statuses = r.stdout.split("Exit status", 1)[1]
    for status in ("0", "1", "2", "3"):
        assert re.search(rf"(^|[ ;:]){status} ", statuses, re.M), (command, status, statuses)
    # Every example line names a real command, with options the command knows.
    for line in r.stdout.splitlines():
        words = line.split()
        if words[:1] == ["cicompile"] and "--help" not in words:
            sub = [w for w in words[1:3] if w in ("graph", "audit", "orbs", "fetch")]
            opts = [w.split("=")[0] for w in words if w.startswith("-") and w != "-"]
            known = cli(*sub, "--help").stdout
            for opt in opts:
                assert opt in known, (line, opt)


def test_main_help_lists_commands_and_completion() -> None:
    r = cli("--help")
    for name in ("audit", "compile", "graph", "orbs"):
        m = re.search(rf"^  {name}\s+(\S.*)$", r.stdout, re.M)
        assert m and not m.group(1).endswith("..."), name  # a sentence, not cut short
    assert "_CICOMPILE_COMPLETE=bash_source cicompile" in r.stdout


def test_version() -> None:
    from cicompile import __version__

    r = cli("--version")
    assert r.returncode == 0 and r.stdout == f"cicompile, version {__version__}\n"
    # The version a user sees is the one pip installed (pyproject.toml), not a stale copy.
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == __version__


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(shell: str) -> None:
    env = {**os.environ, "_CICOMPILE_COMPLETE": f"{shell}_source"}
    r = subprocess.run([str(Path(sys.executable).parent / "cicompile")], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0 and "_CICOMPILE_COMPLETE" in r.stdout, r.stderr
    if shell == "bash":
        assert subprocess.run(["bash", "-n"], input=r.stdout, text=True).returncode == 0
        env = {**os.environ, "_CICOMPILE_COMPLETE": "bash_complete",
               "COMP_WORDS": "cicompile au", "COMP_CWORD": "1"}
        r = subprocess.run([str(Path(sys.executable).parent / "cicompile")],
                           capture_output=True, text=True, env=env)
        assert "plain,audit" in r.stdout.splitlines(), r.stdout


# ---- colour and progress only for a person at a terminal ---------------------------------

def _on_a_tty(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run with stderr on a pseudo-terminal (stdout a pipe): (status, stdout, stderr)."""
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=follower,
                            stdin=subprocess.DEVNULL, cwd=ROOT, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    out = proc.stdout.read().decode() if proc.stdout else ""
    status = proc.wait()
    os.close(leader)
    return status, out, b"".join(chunks).decode()


def test_colour_only_on_a_terminal_and_never_with_no_color() -> None:
    approval = str(GOLDEN / "seed-approval" / "input.yml")
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    status, out, err = _on_a_tty(["-t", "github", approval], env)
    assert status == 0 and "\x1b[" in err and "[approval-environment]" in err
    assert "\x1b[" not in out  # the workflow itself is never coloured
    status, out, err = _on_a_tty(["-t", "github", approval], {**env, "NO_COLOR": "1"})
    assert status == 0 and "\x1b[" not in err and "[approval-environment]" in err
    r = cli("-t", "github", approval)
    assert "\x1b[" not in r.stderr


def test_audit_progress_bar_only_on_a_terminal(tmp_path: Path) -> None:
    configs = [str(p) for p in sorted(GOLDEN.glob("seed-*/input.yml"))]
    assert len(configs) > 3
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    status, out, err = _on_a_tty(["audit", "-t", "github", *configs], env)
    assert status == 0 and "auditing" in err and "100%" in err
    assert "auditing" not in out and out.startswith("config ")
    r = cli("audit", "-t", "github", *configs)
    assert r.returncode == 0 and r.stderr == "" and r.stdout.startswith("config ")


def test_pre_commit_hooks_run_as_pre_commit_runs_them(tmp_path: Path) -> None:
    """Each hook as pre-commit calls it: `entry` split like a shell would, run at the root of
    the user's repository, files passed only if `pass_filenames`; it runs when a staged path
    matches `files`."""
    import shlex

    import yaml

    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert {h["id"] for h in hooks} == {"cicompile-github", "cicompile-gitlab"}
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ["PATH"]}
    generated = {"cicompile-github": ".github/workflows/btd.yml",
                 "cicompile-gitlab": ".gitlab-ci.yml"}
    for hook in hooks:
        assert hook["language"] == "python" and hook["pass_filenames"] is False
        files = re.compile(hook["files"])
        repo = tmp_path / hook["id"]
        (repo / ".circleci").mkdir(parents=True)
        (repo / ".circleci" / "config.yml").write_text(SEED.read_text())
        out = generated[hook["id"]]
        for staged in (".circleci/config.yml", out):
            assert files.search(staged), (hook["id"], staged)
        for unrelated in ("README.md", "src/config.yml", ".github/dependabot.yml"):
            assert not files.search(unrelated), (hook["id"], unrelated)

        def run_hook(repo: Path = repo, entry: str = hook["entry"]) -> int:
            return subprocess.run(shlex.split(entry), cwd=repo, env=env,
                                  capture_output=True, text=True).returncode

        assert run_hook() == 1  # nothing generated yet
        target = hook["entry"].split("--target ")[1].split()[0]
        assert cli("-t", target, "-o", str(repo), str(repo / ".circleci/config.yml")
                   ).returncode == 0
        assert run_hook() == 0
        (repo / out).write_text((repo / out).read_text() + "# hand edit\n")
        assert run_hook() == 1


def test_the_documented_github_actions_check_passes_the_validators(tmp_path: Path) -> None:
    from tests.tools import node_script, require_tool, run

    doc = (ROOT / "docs" / "migration.md").read_text()
    snippet = doc.split("# .github/workflows/cicompile-check.yml\n", 1)[1].split("```", 1)[0]
    wf = tmp_path / ".github" / "workflows" / "cicompile-check.yml"
    wf.parent.mkdir(parents=True)
    wf.write_text(snippet)
    assert "--check" in snippet
    env = {**os.environ, "SHELLCHECK_OPTS": "--severity=warning"}
    r = run([require_tool("actionlint"), "-oneline", str(wf)], cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    r = run([*node_script("gha-validate.mjs"), str(wf)], cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    r = run([require_tool("zizmor"), "--offline", "--config",
             str(ROOT / ".ci" / "zizmor.yml"), "--min-severity", "low", "--format", "plain",
             str(wf)], cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("command", [["-t", "github"], ["graph"],
                                     ["orbs", "fetch", "--orb-dir", "ORB_DIR"]])
def test_internal_errors_exit_3_with_one_line(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path, command: list[str]) -> None:
    import cicompile
    import cicompile.graph
    import cicompile.orbfetch
    from cicompile.cli import main
    from click.testing import CliRunner

    def bug(*args: object, **kwargs: object) -> None:
        raise KeyError("bug")

    monkeypatch.setattr(cicompile, "compile_targets", bug)
    monkeypatch.setattr("cicompile.cli.compile_targets", bug)
    monkeypatch.setattr(cicompile.graph, "to_mermaid", bug)
    monkeypatch.setattr(cicompile.orbfetch, "fetch_orbs", bug)
    monkeypatch.delenv("CICOMPILE_DEBUG", raising=False)
    command = [str(tmp_path / "orbs") if a == "ORB_DIR" else a for a in command]
    r = CliRunner().invoke(main, [*command, str(SEED)])
    assert r.exit_code == 3, r.output
    assert r.stderr.strip().endswith("[internal-error]") and "KeyError" in r.stderr
    assert len(r.stderr.splitlines()) == 1


def test_a_hand_written_file_is_never_overwritten_silently(tmp_path: Path) -> None:
    """`-t make -o .` in a repository with its own Makefile: refused (exit 2, nothing
    written, not even the report), unless --force; cicompile's own files are replaced."""
    mine = "all:\n\techo mine\n"
    (tmp_path / "Makefile").write_text(mine)
    report = tmp_path / "MIGRATION.md"
    r = cli("-t", "make", "-t", "shell", "-o", str(tmp_path), str(SEED))
    assert r.returncode == 2 and "Makefile: not generated by cicompile" in r.stderr
    assert "--force" in r.stderr and "Traceback" not in r.stderr
    r = cli("-t", "make", "-o", str(tmp_path), "--report", str(report), str(SEED))
    assert r.returncode == 2 and not report.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Makefile"]
    assert (tmp_path / "Makefile").read_text() == mine
    assert cli("-t", "make", "-t", "shell", "-o", str(tmp_path), "--force",
               str(SEED)).returncode == 0
    assert (tmp_path / "Makefile").read_text() != mine
    # Generated files (ci.sh's notice is on its second line) are replaced without --force.
    assert cli("-t", "make", "-t", "shell", "-o", str(tmp_path), str(SEED)).returncode == 0


@pytest.mark.parametrize("case", sorted(p.name for p in GOLDEN.iterdir()
                                        if (p / "input.yml").exists()
                                        and not (p / "exit_code").exists()))
def test_check_agrees_with_every_golden_output(case: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The golden files are what `-o DIR` writes: --check against them passes, for every
    target (big Makefiles, scripts, several workflows)."""
    import shlex

    from cicompile.cli import main
    from click.testing import CliRunner

    d = GOLDEN / case
    args_file = d / "args"
    extra = shlex.split(args_file.read_text()) if args_file.exists() else []
    monkeypatch.chdir(d)  # the goldens name their input `input.yml`
    for target in ("github", "gitlab", "make", "shell", "circleci"):
        if not (d / target).is_dir():
            continue
        r = CliRunner().invoke(main, ["-t", target, "-o", target, "--check", "-q", *extra,
                                      "input.yml"])
        assert r.exit_code == 0 and r.stdout == "", (target, r.stdout[:2000], r.stderr)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux /dev/full")
@pytest.mark.parametrize("command", [["-t", "github", "-q"], ["graph"], ["audit"]])
def test_a_full_disk_under_stdout_exits_2(command: list[str]) -> None:
    with open("/dev/full", "w") as full:
        r = subprocess.run([*CLI, *command, str(SEED)], stdout=full, stderr=subprocess.PIPE,
                           text=True, cwd=ROOT)
    assert r.returncode == 2, r.stderr
    assert r.stderr == "Error: cannot write the output: No space left on device\n"


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failure_on_the_second_file_leaves_no_trace(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException) -> None:
    """A full disk or Ctrl-C while the second of three files is written: the first is not
    in place, and neither temporary files nor the folders made for them are left."""
    import cicompile.cli
    from cicompile.cli import main
    from click.testing import CliRunner

    chmod, calls = os.chmod, []

    def failing_chmod(path: str, mode: int) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise failure
        chmod(path, mode)

    monkeypatch.setattr(cicompile.cli.os, "chmod", failing_chmod)
    out = tmp_path / "repo" / "out"
    # Two workflows and the report.
    r = CliRunner().invoke(main, ["-t", "github", "-o", str(out), "--report",
                                  str(tmp_path / "repo" / "r.md"), str(TWO_WORKFLOWS)])
    assert len(calls) == 2
    if isinstance(failure, OSError):
        assert r.exit_code == 2 and "No space left on device" in r.stderr, r.output
    else:
        assert r.exit_code == 130 and "Aborted!" in r.stderr  # as a shell reports Ctrl-C
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["-t", "github"], ["graph"],
                                     ["orbs", "fetch", "--orb-dir", "ORB_DIR"]])
def test_every_command_colours_errors_at_a_terminal_alike(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]) -> None:
    from cicompile.cli import main
    from click.testing import CliRunner

    monkeypatch.setattr("cicompile.cli._colour", lambda: True)  # a terminal, NO_COLOR unset
    broken = tmp_path / "broken.yml"
    broken.write_text("version: 2\njobs: [\n")
    command = [str(tmp_path / "orbs") if a == "ORB_DIR" else a for a in command]
    r = CliRunner().invoke(main, [*command, str(broken)], color=True)  # keep escapes
    assert r.exit_code == 1, r.output
    assert r.stderr.startswith(f"{broken}:3:1: \x1b[31m\x1b[1merror\x1b[0m: invalid YAML")


def test_a_file_generated_from_another_config_is_not_overwritten(tmp_path: Path) -> None:
    """Two configs of one repository (a setup config and its continuation, both with a
    workflow `main`) compiled into one folder: the second must not silently replace the
    first one's workflow; the notice names the config it came from."""
    (tmp_path / ".circleci").mkdir()
    config = "version: 2\njobs: {a: {docker: [{image: x}], steps: [checkout]}}\n" \
             "workflows: {main: {jobs: [a]}}\n"
    for name in ("config.yml", "continue.yml"):
        (tmp_path / ".circleci" / name).write_text(config)
    assert _in(tmp_path, "-t", "github", "-o", ".", ".circleci/config.yml").returncode == 0
    main_yml = tmp_path / ".github" / "workflows" / "main.yml"
    first = main_yml.read_text()
    r = _in(tmp_path, "-t", "github", "-o", ".", ".circleci/continue.yml")
    assert r.returncode == 2, r.stderr
    assert (".github/workflows/main.yml: generated by cicompile from config.yml, not from"
            " continue.yml; it would be overwritten") in r.stderr
    assert main_yml.read_text() == first
    r = _in(tmp_path, "-t", "github", "-o", ".", "--force", ".circleci/continue.yml")
    assert r.returncode == 0 and "from continue.yml" in main_yml.read_text()
    # Recompiling from the same config, or from standard input, replaces its own files.
    assert _in(tmp_path, "-t", "github", "-o", ".", ".circleci/continue.yml").returncode == 0
    r = subprocess.run([*CLI, "-t", "github", "-o", ".", "-"], cwd=tmp_path, text=True,
                       input=config, capture_output=True)
    assert r.returncode == 0, r.stderr


def test_a_symbolic_link_in_the_output_folder_is_never_written_through(tmp_path: Path) -> None:
    """A Makefile that links to a file elsewhere (a repository's shared one, or anything a
    checkout could point at): refused, and --force replaces the link, not what it points to."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("mine\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "Makefile").symlink_to(elsewhere)
    r = cli("-t", "make", "-o", str(out), str(SEED))
    assert r.returncode == 2 and "not generated by cicompile" in r.stderr
    assert cli("-t", "make", "-o", str(out), "--force", str(SEED)).returncode == 0
    assert elsewhere.read_text() == "mine\n"
    assert not (out / "Makefile").is_symlink() and "cicompile" in (out / "Makefile").read_text()


def test_report_with_check_or_onto_an_output_is_a_usage_error(tmp_path: Path) -> None:
    """--check writes nothing, so a --report with it would be silently dropped; a report
    onto one of the generated files would replace it."""
    report = tmp_path / "r.md"
    for extra in (["--check"], ["--diff"]):
        r = cli("-t", "make", "-o", str(tmp_path), "--report", str(report), *extra, str(SEED))
        assert r.returncode == 2 and "--report" in r.stderr, r.stderr
    r = cli("-t", "make", "-o", str(tmp_path), "--report", str(tmp_path / "Makefile"),
            str(SEED))
    assert r.returncode == 2 and "--report" in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == []


def test_check_against_a_folder_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    """A pre-commit hook or CI check before the first compile: every file is a creation in
    the diff, exit 1, and the folder is still not there."""
    out = tmp_path / "out"
    r = cli("-t", "all", "-q", "-o", str(out), "--check", str(SEED))
    assert r.returncode == 1
    assert [ln for ln in r.stdout.splitlines() if ln.startswith("+++ ")] == [
        f"+++ {out}/{rel}" for rel in (".github/workflows/btd.yml", ".gitlab-ci.yml",
                                       "Makefile", "ci.sh")]
    assert not out.exists()
