"""The make and shell targets leave out the runtime functions a generated file never calls."""

from __future__ import annotations

import re
import subprocess

import pytest
from cicompile import compile_config
from cicompile.targets import make, shell
from cicompile.targets.jobscript import drop_unused_functions

from tests.tools import ROOT, require_tool

SCRIPT = """\
#!/usr/bin/env bash
# uses: main, d_one (called as "d_$x")

# Called by main.
used() {
  echo used
}

# Nothing calls this.
# (a second comment line)
unused() {
  echo unused
}

d_one() ( echo dynamic )

main() {
  used
  cat <<'EOF'
fake() {
}
EOF
  x=one
  "d_$x"
}

main "$@"
"""


def test_functions_nothing_calls_are_dropped_with_their_comments() -> None:
    out = drop_unused_functions(SCRIPT, "")
    assert "unused" not in out.replace("# Nothing", "")
    assert "# Nothing calls this." not in out and "(a second comment line)" not in out
    assert "\n\n\n" not in out
    # Kept: called by name, by a run-time name, and the heredoc text that looks like code.
    for kept in ("used() {", "d_one() ( echo dynamic )", "fake() {\n}\nEOF", "main() {"):
        assert kept in out
    r = subprocess.run(["bash", "-c", out, "script"], capture_output=True, text=True)
    assert r.stdout == "used\nfake() {\n}\ndynamic\n"


def test_callers_outside_the_runtime_keep_functions() -> None:
    runtime = "a() {\n  :\n}\n\nb() {\n  :\n}\n"
    assert drop_unused_functions(runtime, "cc_job_x() {\n  b\n}\n") == "b() {\n  :\n}\n"
    assert drop_unused_functions(runtime, "a; b") == runtime


@pytest.mark.parametrize("text", [
    "f() {\n  echo\n",  # the function never ends
    "f() {\ng() {\n}\n}\nf\n",  # a definition at column 0 inside a function
    "f() {\n  cat <<A <<B\n  a\nA\n  b\nB\n}\n",  # two heredocs on a line: not followed
    "echo no functions\n",
])
def test_text_it_cannot_follow_is_left_alone(text: str) -> None:
    assert drop_unused_functions(text, "") == text


NO_CACHES = """\
version: 2.1
jobs:
  build:
    docker: [{image: cimg/base:stable}]
    steps:
      - run: echo hi
workflows:
  main:
    jobs: [build]
"""

CACHES = NO_CACHES.replace(
    "      - run: echo hi\n",
    "      - checkout\n      - save_cache: {key: v1, paths: [x]}\n"
    "      - restore_cache: {key: v1}\n")


def _defined(text: str) -> set[str]:
    return set(re.findall(r"^([A-Za-z_][A-Za-z0-9_]*)\(\) [{(]$", text, re.M))


@pytest.mark.parametrize("target", ["make", "shell"])
def test_generated_files_define_what_they_call(target: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    plain = compile_config(NO_CACHES, target).files
    caching = compile_config(CACHES, target).files
    monkeypatch.setattr(make if target == "make" else shell, "drop_unused_functions",
                        lambda runtime, callers: runtime)
    whole = compile_config(NO_CACHES, target).files
    (name, text), = plain.items()
    dropped = _defined(whole[name]) - _defined(text)
    assert {"cc_checkout", "cc_cache_env", "cc_ssh_keys"} <= dropped
    assert ("cc_shell_main" if target == "make" else "cc_make_main") in dropped
    # A dropped function is not named anywhere in the file (so nothing calls it).
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text))
    assert not dropped & words
    (caching_text,) = caching.values()
    assert {"cc_checkout", "cc_cache_env", "cc_cache_save", "cc_cache_restore"} <= _defined(
        caching_text)
    assert len(text.splitlines()) < len(whole[name].splitlines()) - 100


def test_the_whole_runtime_reads_every_variable_it_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runtime disables SC2034 because a file may drop a variable's readers; with every
    function kept, shellcheck still finds no unused variable in it."""
    sc = require_tool("shellcheck")
    monkeypatch.setattr(shell, "drop_unused_functions", lambda runtime, callers: runtime)
    config = (ROOT / "golden" / "kitchen-sink" / "input.yml").read_text()
    (text,) = compile_config(config, "shell").files.values()
    directive = "# shellcheck disable=SC2034\n"
    assert text.count(directive) == 1
    r = subprocess.run([sc, "-f", "gcc", "-"], input=text.replace(directive, ""),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


def test_quoted_angle_brackets_are_no_heredoc() -> None:
    # `<< pipeline.id >>` in a step name: no line `pipeline` follows, so no heredoc begins.
    text = "used() {\n  echo '<< pipeline.id >>'\n}\n\nunused() {\n  :\n}\n\nused\n"
    assert drop_unused_functions(text, "") == "used() {\n  echo '<< pipeline.id >>'\n}\n\nused\n"


def test_the_makefile_size_warning_is_given_once() -> None:
    # make.py checks the runtime after dropping functions; the check used to run twice.
    config = NO_CACHES.replace("echo hi", "echo " + "x" * (125 * 1024))
    result = compile_config(config, "make")
    warnings = [d for d in result.diagnostics if d.code == "unsupported-feature"]
    assert len(warnings) == 1 and "job.main.build" in warnings[0].message
