"""`cicompile audit` over many repositories: bad configs never stop the batch, the counts agree
with the migration report, and the JSON has the documented shape (docs/cli.md)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cicompile import compile_config
from cicompile.audit import audit_config, find_configs, render_json, render_markdown

from tests.corpus_tools import INVALID, corpus_files, golden_inputs
from tests.golden_cases import GOLDEN
from tests.tools import ROOT

CLI = [sys.executable, "-m", "cicompile"]
TARGETS = ["github", "gitlab", "make", "shell"]

CONFIG_KEYS = {"path", "ok", "unreadable", "workflows", "jobs", "approvals", "steps",
               "manual_tasks", "targets"}
TARGET_KEYS = {"ok", "errors", "approximated", "unsupported", "manual_tasks", "codes",
               "first_error", "internal_error"}
TOTAL_KEYS = {"configs", "compiled", "workflows", "jobs", "approvals", "steps",
              "manual_tasks", "targets"}


def _repos(root: Path) -> None:
    """good, bad (a cycle), a folder where the config should be, a broken link, and a config
    inside node_modules (a dependency's, not the repository's)."""
    for name, src in (("good", "seed-approval"), ("bad", "err-cycle"),
                      ("deps/node_modules/pkg", "seed-workspace")):
        d = root / name / ".circleci"
        d.mkdir(parents=True)
        (d / "config.yml").write_text((GOLDEN / src / "input.yml").read_text())
    (root / "folder" / ".circleci" / "config.yml").mkdir(parents=True)
    (root / "link" / ".circleci").mkdir(parents=True)
    os.symlink(root / "nowhere.yml", root / "link" / ".circleci" / "config.yml")


def test_folders_of_repositories(tmp_path: Path) -> None:
    _repos(tmp_path)
    found = [str(p.relative_to(tmp_path)) for p in find_configs([tmp_path])]
    assert found == ["bad/.circleci/config.yml", "folder/.circleci/config.yml",
                     "good/.circleci/config.yml", "link/.circleci/config.yml"]
    md, js = tmp_path / "audit.md", tmp_path / "audit.json"
    r = subprocess.run([*CLI, "audit", ".", "--markdown", str(md), "--json", str(js)],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1 and r.stderr == "", r.stderr
    rows = {ln.split()[0]: ln for ln in r.stdout.splitlines() if ".circleci" in ln}
    assert "clean" in rows["good/.circleci/config.yml"]
    assert "1 error" in rows["bad/.circleci/config.yml"]
    for unreadable in ("folder/.circleci/config.yml", "link/.circleci/config.yml"):
        assert "unreadable" in rows[unreadable] and "CRASH" not in rows[unreadable]
    assert "TOTAL (1/4 compiled)" in r.stdout
    text = md.read_text()
    assert "## Internal errors" not in text  # an unreadable file is no bug of cicompile
    assert ("- `bad/.circleci/config.yml`: 16:9: error: workflow 'loop' has a cycle in"
            " `requires` among: a -> b -> c [requires-cycle]") in text
    assert "- `link/.circleci/config.yml`: error: cannot read: No such file or directory" in text
    data = json.loads(js.read_text())
    by_path = {c["path"]: c for c in data["configs"]}
    assert by_path["link/.circleci/config.yml"]["unreadable"] == "No such file or directory"
    assert by_path["bad/.circleci/config.yml"]["targets"]["gitlab"]["first_error"].startswith(
        "bad/.circleci/config.yml:16:9: error: ")


def test_json_schema_is_the_documented_one(tmp_path: Path) -> None:
    _repos(tmp_path)
    audits = [audit_config(p, TARGETS) for p in find_configs([tmp_path])]
    data = json.loads(render_json(audits, TARGETS))
    assert set(data) == {"version", "targets", "configs", "totals"} and data["version"] == 1
    assert data["targets"] == TARGETS
    for c in data["configs"]:
        assert set(c) == CONFIG_KEYS and list(c["targets"]) == TARGETS
        for t in c["targets"].values():
            assert set(t) == TARGET_KEYS
    assert set(data["totals"]) == TOTAL_KEYS
    totals = data["totals"]
    assert totals["configs"] == 4 and totals["compiled"] == 1
    good = next(c for c in data["configs"] if c["path"].startswith(str(tmp_path / "good")))
    assert good["jobs"] == 4 and good["steps"] == 4  # one `run` in each job
    for key in ("workflows", "jobs", "approvals", "steps", "manual_tasks"):
        assert totals[key] == sum(c[key] for c in data["configs"])
    for t in TARGETS:
        assert totals["targets"][t]["errors"] == sum(c["targets"][t]["errors"]
                                                     for c in data["configs"])
    doc = (ROOT / "docs" / "cli.md").read_text()
    for key in CONFIG_KEYS | TARGET_KEYS | TOTAL_KEYS:
        assert f"`{key}`" in doc, key


def _report_rows(report: str) -> int:
    """The to-do rows of a migration report: its manual tasks and secrets to create."""
    count = 0
    for section in ("## Manual tasks", "## Secrets and variables to create"):
        if section in report:
            body = report.split(section, 1)[1].split("\n## ", 1)[0]
            count += len(re.findall(r"^\| (?!#|Variable|---)", body, re.M))
    return count


def test_manual_tasks_are_the_reports_rows() -> None:
    inputs = [p for p in golden_inputs() if not p.parent.name.startswith("err-")]
    inputs += corpus_files()[:20]
    checked = with_tasks = 0
    for path in inputs:
        audit = audit_config(path, TARGETS)
        text = path.read_text()
        for r in audit.results:
            result = compile_config(text, r.target, path=str(path))
            if not result.ok:
                continue
            assert r.manual_tasks == _report_rows(result.report()), (path, r.target)
            checked += 1
            with_tasks += r.manual_tasks > 0
    assert checked > 100 and with_tasks > 20


def test_the_whole_corpus_in_one_batch() -> None:
    """Valid and invalid real configs: every one is audited, none crashes cicompile."""
    paths = corpus_files() + sorted(INVALID.glob("*.yml"))
    audits = [audit_config(p, TARGETS) for p in paths]
    assert len(audits) == len(paths) > 70
    assert not [(a.path, r.internal_error) for a in audits for r in a.results
                if r.internal_error]
    failed = [a for a in audits if not a.ok]
    assert failed and all(r.first_error for a in failed for r in a.results)
    md = render_markdown(audits, TARGETS)
    assert md.count("\n- `") == len(failed)


def test_the_documented_json_example_is_real_output(tmp_path: Path) -> None:
    doc = (ROOT / "docs" / "cli.md").read_text()
    section = doc.split("### `--json FILE`", 1)[1]
    example = json.loads(section.split("```json\n", 1)[1].split("```", 1)[0])
    (tmp_path / "repo" / ".circleci").mkdir(parents=True)
    (tmp_path / "repo" / ".circleci" / "config.yml").write_text(
        (GOLDEN / "seed-approval" / "input.yml").read_text())
    r = subprocess.run([*CLI, "audit", "-t", "github", "repo", "--json", "audit.json"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "audit.json").read_text()) == example


def test_targets_all_and_repeated() -> None:
    seed = str(GOLDEN / "seed-approval" / "input.yml")
    header = subprocess.run([*CLI, "audit", "-t", "all", "-t", "github", "-t", "circleci", seed],
                            capture_output=True, text=True, cwd=ROOT).stdout.splitlines()[0]
    assert header.split()[5:10] == ["github", "gitlab", "make", "shell", "circleci"]


def test_a_crash_exits_3_after_the_whole_batch(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in cicompile on one config is exit status 3, as for every command (docs/cli.md),
    not 1 ("the config has errors"); the batch, the table and the files are still done."""
    import cicompile
    from cicompile.cli import main
    from click.testing import CliRunner

    real = cicompile.front_end

    def front_end(text: str, path: str, **kwargs: object) -> object:
        if path.endswith("crash.yml"):
            raise KeyError("bug")
        return real(text, path=path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(cicompile, "front_end", front_end)
    good, crash = tmp_path / "good.yml", tmp_path / "crash.yml"
    for f in (good, crash):
        f.write_text((GOLDEN / "seed-approval" / "input.yml").read_text())
    md = tmp_path / "audit.md"
    r = CliRunner().invoke(main, ["audit", "-t", "github", str(good), str(crash),
                                  "--markdown", str(md)])
    assert r.exit_code == 3, r.output
    assert "CRASH" in r.stdout and md.exists()
    assert r.stderr == (f"{crash}: error: internal error in cicompile (github: KeyError: 'bug');"
                        " please report it [internal-error]\n")


def test_markdown_and_json_are_written_both_or_neither(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    md = tmp_path / "audit.md"
    r = subprocess.run([*CLI, "audit", "-t", "github", str(GOLDEN / "seed-approval" / "input.yml"),
                        "--markdown", str(md), "--json", str(blocker / "audit.json")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "cannot write" in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
