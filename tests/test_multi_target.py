"""Several targets from one front-end run (`compile_targets`, `--target all`, `audit`): the same
files and diagnostics as compiling each target on its own (docs/performance.md)."""

from __future__ import annotations

import json
import shlex
from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest
from cicompile import Result, compile_config, compile_targets, front_end
from cicompile.audit import audit_config
from cicompile.cli import main
from click.testing import CliRunner

from tests.golden_cases import GOLDEN, case_dirs

TARGETS = ("github", "gitlab", "make", "shell", "circleci")
CASES = [c.name for c in case_dirs()]


def _params(case: Path) -> dict[str, str] | None:
    args = case / "args"
    words = shlex.split(args.read_text()) if args.exists() else []
    out = dict(w.partition("=")[::2] for prev, w in pairwise(words)
               if prev in ("-p", "--param"))
    return out or None


def _same(a: Result, b: Result) -> None:
    assert a.files == b.files
    assert a.diagnostics == b.diagnostics
    assert (a.ok, a.target, a.runners, a.pipeline) == (b.ok, b.target, b.runners, b.pipeline)


@pytest.mark.parametrize("case", CASES)
def test_shared_front_end_gives_what_each_target_gives(case: str) -> None:
    text = (GOLDEN / case / "input.yml").read_text()
    params = _params(GOLDEN / case)
    alone = {t: compile_config(text, t, path="input.yml", pipeline_params=params)
             for t in TARGETS}
    # Both orders: a target emitted first must leave nothing behind for the next one.
    for order in (TARGETS, TARGETS[::-1]):
        shared = compile_targets(text, order, path="input.yml", pipeline_params=params)
        assert list(shared) == list(order)
        for t in TARGETS:
            _same(shared[t], alone[t])


def test_front_end_errors_fail_every_target() -> None:
    text = (GOLDEN / "err-cycle" / "input.yml").read_text()
    front = front_end(text, path="input.yml")
    assert front.pipeline is None
    assert any(d.code == "requires-cycle" for d in front.diagnostics)
    for t in TARGETS:
        r = front.emit(t)
        assert not r.ok and r.files == {} and r.diagnostics == front.diagnostics


def test_targets_do_not_see_each_others_diagnostics() -> None:
    text = (GOLDEN / "kitchen-sink" / "input.yml").read_text()
    front = front_end(text, path="input.yml")
    github = front.emit("github")
    make = front.emit("make")
    # kitchen-sink has a macOS job: only the local targets warn that it runs on this host.
    assert "local-platform" in {d.code for d in make.diagnostics}
    assert "local-platform" not in {d.code for d in github.diagnostics}
    assert set(front.diagnostics) <= set(github.diagnostics) & set(make.diagnostics)


def _invoke(tmp: Path, case: str, *args: str) -> tuple[int, str, dict[str, str]]:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "input.yml").write_text((GOLDEN / case / "input.yml").read_text())
    extra = shlex.split((GOLDEN / case / "args").read_text()) if (
        GOLDEN / case / "args").exists() else []
    out = tmp / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        r = CliRunner().invoke(main, [*args, "-o", str(out), *extra, "input.yml"])
    if r.exception and not isinstance(r.exception, SystemExit):
        raise r.exception
    files = {str(f.relative_to(out)): f.read_text() for f in sorted(out.rglob("*"))
             if f.is_file()} if out.exists() else {}
    return r.exit_code, r.stderr, files


@pytest.mark.parametrize("case", CASES)
def test_cli_several_targets_write_what_separate_runs_write(tmp_path: Path, case: str) -> None:
    separate: dict[str, str] = {}
    codes = set()
    for i, t in enumerate(TARGETS):
        code, _, files = _invoke(tmp_path / str(i), case, "--target", t)
        codes.add(code)
        assert not set(files) & set(separate), "targets' files never collide"
        separate.update(files)
    many = [a for t in TARGETS for a in ("--target", t)]
    code, _, files = _invoke(tmp_path / "all", case, *many)
    assert {code} == codes
    assert files == separate
    if code == 0:
        assert files, "a config that compiles writes files"
    else:
        assert files == {}, "nothing is written when the config has errors"


def test_target_all_is_the_four_migration_targets(tmp_path: Path) -> None:
    code, _, files = _invoke(tmp_path / "a", "seed-workspace", "--target", "all")
    code2, _, files2 = _invoke(tmp_path / "b", "seed-workspace", "-t", "github", "-t", "gitlab",
                               "-t", "make", "-t", "shell", "-t", "github")
    assert code == code2 == 0 and files == files2
    assert sorted(files) == [".github/workflows/btd.yml", ".gitlab-ci.yml", "Makefile", "ci.sh"]
    assert (tmp_path / "a" / "out" / "ci.sh").stat().st_mode & 0o111


def test_merged_diagnostics_name_the_targets_that_report_them(tmp_path: Path) -> None:
    case = "kitchen-sink"
    text = (GOLDEN / case / "input.yml").read_text()
    alone = {t: compile_config(text, t, path="input.yml") for t in TARGETS}
    _, stderr, _ = _invoke(tmp_path, case, "--target", "all", "--target", "circleci",
                           "--format", "json")
    shown = json.loads(stderr)["diagnostics"]
    expected = []
    everyone = set.intersection(*(set(r.diagnostics) for r in alone.values()))
    for d in {d for r in alone.values() for d in r.diagnostics}:
        by = [t for t in TARGETS if d in alone[t].diagnostics]
        message = d.message if d in everyone else f"{', '.join(by)}: {d.message}"
        expected.append((d.span.line if d.span else None, d.code, message))
    assert sorted((d["line"], d["code"], d["message"]) for d in shown) == sorted(expected)
    assert len(shown) == len(expected), "each diagnostic once"
    assert any(m.startswith("make, shell: ") for _, _, m in expected)
    assert everyone, "kitchen-sink has front-end diagnostics, which stay as they are"


def test_check_covers_every_target(tmp_path: Path) -> None:
    code, _, _ = _invoke(tmp_path, "seed-workspace", "--target", "all")
    assert code == 0
    code, _, _ = _invoke(tmp_path, "seed-workspace", "--target", "all", "--check")
    assert code == 0
    (tmp_path / "out" / "Makefile").write_text("edited\n")
    code, _, _ = _invoke(tmp_path, "seed-workspace", "--target", "all", "--check")
    assert code == 1


def test_report_takes_one_target(tmp_path: Path) -> None:
    code, stderr, files = _invoke(tmp_path, "seed-workspace", "--target", "all", "--report",
                                  str(tmp_path / "r.md"))
    assert code == 2 and "one --target" in stderr and files == {}


def test_stdout_labels_every_targets_file() -> None:
    path = str(GOLDEN / "seed-workspace" / "input.yml")
    r = CliRunner().invoke(main, ["-t", "gitlab", "-t", "make", path])
    assert r.exit_code == 0
    assert "# ==> .gitlab-ci.yml <==" in r.stdout and "# ==> Makefile <==" in r.stdout
    gitlab = compile_config(Path(path).read_text(), "gitlab", path=path)
    assert gitlab.files[".gitlab-ci.yml"] in r.stdout


@pytest.mark.parametrize("case", ["kitchen-sink", "err-cycle", "v21-reuse"])
def test_audit_counts_what_each_target_reports(case: str) -> None:
    path = GOLDEN / case / "input.yml"
    audit = audit_config(path, list(TARGETS))
    for r in audit.results:
        alone = compile_config(path.read_text(), r.target, path=str(path))
        assert r.ok == alone.ok and not r.internal_error
        assert r.codes == Counter(d.code for d in alone.diagnostics)
