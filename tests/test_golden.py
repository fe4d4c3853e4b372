"""Golden files: every case's output on every target must match golden/<case>/ exactly.

Regenerate after an intended change with `pytest tests/test_golden.py --update-golden`, then
review the diff with `git diff golden/`.
"""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest

from tests.golden_cases import TARGETS, case_dirs, compile_case, expected_files

CASES = case_dirs()


def _diff(expected: str, actual: str, name: str) -> str:
    return "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True),
            actual.splitlines(keepends=True),
            f"expected/{name}",
            f"actual/{name}",
        )
    )


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden(case: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    outcome = compile_case(case, tmp_path)
    if request.config.getoption("--update-golden"):
        for target in TARGETS:
            shutil.rmtree(case / target, ignore_errors=True)
        for rel, text in outcome.files.items():
            dest = case / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(text)
        (case / "stderr.txt").write_text(outcome.stderr)
        code_file = case / "exit_code"
        if outcome.exit_code:
            code_file.write_text(f"{outcome.exit_code}\n")
        elif code_file.exists():
            code_file.unlink()
        return
    problems = []
    code_file = case / "exit_code"
    want_code = int(code_file.read_text()) if code_file.exists() else 0
    if outcome.exit_code != want_code:
        problems.append(f"exit status {outcome.exit_code}, expected {want_code}")
    want_stderr = (case / "stderr.txt").read_text() if (case / "stderr.txt").exists() else ""
    if outcome.stderr != want_stderr:
        problems.append(_diff(want_stderr, outcome.stderr, "stderr.txt"))
    expected = expected_files(case)
    for name in sorted(set(expected) | set(outcome.files)):
        if expected.get(name) != outcome.files.get(name):
            problems.append(_diff(expected.get(name, ""), outcome.files.get(name, ""), name))
    if problems:
        pytest.fail(
            "golden mismatch; if intended, run `pytest tests/test_golden.py --update-golden`"
            " and review `git diff golden/`\n" + "\n".join(problems)
        )


def test_every_case_covers_every_target() -> None:
    for case in CASES:
        if (case / "exit_code").exists():
            assert not any((case / t).exists() for t in TARGETS), case.name
            continue
        for t in TARGETS:
            assert (case / t).is_dir(), f"{case.name} has no expected output for {t}"
