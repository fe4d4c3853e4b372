"""Registry orbs from disk (`--orb-dir`), `cicompile orbs fetch` against a fake registry on
127.0.0.1 (never the internet), and setup (dynamic) configs.

The orb sources here are our own, written in the shapes the registry serves: a packed orb
YAML, and an unpacked source tree (`src/@orb.yml`, `src/commands/*.yml`, `<<include()>>`).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cicompile import compile_config
from cicompile.cli import main
from cicompile.ir import Pipeline, Run, Unsupported
from click.testing import CliRunner

GREET = """\
version: 2.1
description: Greets people.
executors:
  default:
    parameters:
      tag: {type: string, default: stable}
    docker: [{image: "cimg/base:<< parameters.tag >>"}]
commands:
  hello:
    parameters:
      who: {type: string, default: world}
    steps:
      - run: echo "hello << parameters.who >>"
jobs:
  greet:
    executor: default
    parameters:
      who: {type: string}
    steps:
      - hello: {who: << parameters.who >>}
"""

CONFIG = """\
version: 2.1
orbs:
  greet: acme/greet@1.0.0
  tools: acme/tools@2
jobs:
  build:
    executor: {name: greet/default, tag: "2024.01"}
    steps:
      - checkout
      - greet/hello
      - tools/lint: {dir: src}
workflows:
  main:
    jobs:
      - build
      - greet/greet: {who: team, requires: [build]}
      - tools/check: {requires: [build]}
"""


def _tools_tree(root: Path) -> None:
    """An unpacked orb (orb-tools layout) that imports the packed one."""
    src = root / "src"
    for d in ("commands", "jobs", "scripts", "examples"):
        (src / d).mkdir(parents=True)
    (src / "@orb.yml").write_text("version: 2.1\ndescription: Tools.\n"
                                  "orbs:\n  greet: acme/greet@1.0.0\n")
    (src / "commands" / "lint.yml").write_text("""\
description: Lint a folder.
parameters:
  dir: {type: string, default: "."}
steps:
  - run:
      name: Lint << parameters.dir >>
      environment: {LINT_DIR: << parameters.dir >>}
      command: <<include(scripts/lint.sh)>>
""")
    (src / "scripts" / "lint.sh").write_text('#!/bin/bash\necho "linting $LINT_DIR"\n')
    (src / "jobs" / "check.yml").write_text("""\
executor: greet/default
steps: [checkout, lint, {greet/hello: {who: tools}}]
""")
    (src / "examples" / "broken.yml").write_text("not: [valid yaml\n")  # ignored, as by pack


@pytest.fixture
def orb_dir(tmp_path: Path) -> Path:
    d = tmp_path / "orbs"
    (d / "acme").mkdir(parents=True)
    (d / "acme" / "greet@1.0.0.yml").write_text(GREET)
    _tools_tree(d / "acme" / "tools@2")
    return d


def _steps(pipeline: Any, job: str) -> list[str]:
    assert isinstance(pipeline, Pipeline)
    found = pipeline.job(job)
    assert found is not None
    return [s.command if isinstance(s, Run) else type(s).__name__ for s in found.steps]


def test_registry_orbs_from_disk_expand_like_inline_orbs(orb_dir: Path) -> None:
    r = compile_config(CONFIG, "github", orb_dir=orb_dir)
    assert r.ok and not [d for d in r.diagnostics if d.code == "unsupported-orb"], r.diagnostics
    p = r.pipeline
    assert isinstance(p, Pipeline)
    assert _steps(p, "build") == ["Checkout", 'echo "hello world"',
                                  '#!/bin/bash\necho "linting $LINT_DIR"\n']
    build = p.job("build")
    assert build is not None and build.executor.images[0].image == "cimg/base:2024.01"
    assert _steps(p, "greet/greet") == ['echo "hello team"']
    # tools/check: the tree's own command, and a command of the orb that tools imports
    assert _steps(p, "tools/check")[1:] == ['#!/bin/bash\necho "linting $LINT_DIR"\n',
                                            'echo "hello tools"']
    processed = yaml.safe_load(compile_config(CONFIG, "circleci", orb_dir=orb_dir)
                               .files[".circleci/config.processed.yml"])
    assert "orbs" not in processed
    assert processed["jobs"]["build"]["steps"][2]["run"]["name"] == "Lint src"


def test_any_version_fallback(orb_dir: Path) -> None:
    (orb_dir / "acme" / "greet@1.0.0.yml").rename(orb_dir / "acme" / "greet.yml")
    r = compile_config(CONFIG, "github", orb_dir=orb_dir)
    assert r.ok and _steps(r.pipeline, "greet/greet") == ['echo "hello team"']


def test_missing_orbs_stay_placeholders_and_say_how(tmp_path: Path) -> None:
    r = compile_config(CONFIG, "github", orb_dir=tmp_path)
    warnings = [d for d in r.diagnostics if d.code == "unsupported-orb"]
    assert r.ok and warnings
    assert all("--orb-dir" in d.message and "cicompile orbs fetch" in d.message
               for d in warnings)
    assert isinstance(r.pipeline, Pipeline)
    job = r.pipeline.job("greet/greet")
    assert job is not None and isinstance(job.steps[0], Unsupported)


def _errors(config: str, orb_dir: Path) -> list[tuple[str, str]]:
    r = compile_config(config, "github", orb_dir=orb_dir)
    assert not r.ok
    return [(d.code, d.message) for d in r.diagnostics if d.severity == "error"]


def test_include_must_stay_inside_the_orb(orb_dir: Path) -> None:
    lint = orb_dir / "acme" / "tools@2" / "src" / "commands" / "lint.yml"
    lint.write_text(lint.read_text().replace("scripts/lint.sh", "../../../secret"))
    assert [c for c, _ in _errors(CONFIG, orb_dir)] == ["orb-source"]


def test_orbs_importing_each_other_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x@1.yml").write_text("version: 2.1\norbs: {y: a/y@1}\n")
    (tmp_path / "a" / "y@1.yml").write_text("version: 2.1\norbs: {x: a/x@1}\n")
    config = CONFIG.replace("acme/greet@1.0.0", "a/x@1")
    assert ("orb-source", "orb 'a/x@1' imports itself (a/x@1 -> a/y@1 -> a/x@1)") in _errors(
        config, tmp_path)


def test_a_changed_locked_file_is_an_error(orb_dir: Path) -> None:
    data = (orb_dir / "acme" / "greet@1.0.0.yml").read_bytes()
    lock = {"lockfileVersion": 1, "orbs": {"acme/greet@1.0.0": {
        "version": "1.0.0", "file": "acme/greet@1.0.0.yml",
        "sha256": hashlib.sha256(data).hexdigest()}}}
    (orb_dir / "orbs.lock").write_text(json.dumps(lock))
    assert compile_config(CONFIG, "github", orb_dir=orb_dir).ok
    (orb_dir / "acme" / "greet@1.0.0.yml").write_bytes(data + b"# edited\n")
    errors = _errors(CONFIG, orb_dir)
    assert [c for c, _ in errors] == ["orb-lock"] and "sha256" in errors[0][1]
    (orb_dir / "orbs.lock").write_text("{not json")
    assert [c for c, _ in _errors(CONFIG, orb_dir)] == ["orb-lock"]


def test_graph_and_compile_take_orb_dir(orb_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(CONFIG)
    r = CliRunner().invoke(main, ["graph", "--orb-dir", str(orb_dir), str(config)])
    assert r.exit_code == 0 and "greet/greet" in r.output and "unsupported-orb" not in r.output
    r = CliRunner().invoke(main, ["--target", "shell", "--orb-dir", str(orb_dir), str(config)])
    assert r.exit_code == 0, r.output
    assert "unsupported-orb" not in r.stderr


# ---- orbs fetch, against a fake registry ---------------------------------------------------

REGISTRY: dict[str, tuple[str, str]] = {  # ref → (resolved version, source)
    "acme/greet@1.0.0": ("1.0.0", GREET),
    "acme/tools@2": ("2.3.1", "version: 2.1\norbs: {greet: acme/greet@1.0.0}\ncommands:\n"
                     "  lint:\n    parameters: {dir: {type: string, default: .}}\n"
                     "    steps: [{run: echo lint << parameters.dir >>}]\njobs:\n  check:\n"
                     "    executor: greet/default\n    steps: [lint]\n"),
}


class _Registry(http.server.BaseHTTPRequestHandler):
    mode = "ok"  # ok | 500 | garbage

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length", "0"))
        request = json.loads(self.rfile.read(length))
        assert self.path == "/graphql-unstable" and "orbVersion" in request["query"]
        if self.mode == "500":
            self.send_error(500, "boom")
            return
        ref = request["variables"]["orbVersionRef"]
        found = REGISTRY.get(ref)
        orb = None if found is None else {"id": "x", "version": found[0], "source": found[1]}
        body = b"<html>" if self.mode == "garbage" else json.dumps(
            {"data": {"orbVersion": orb}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def registry() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        _Registry.mode = "ok"
        server.shutdown()
        server.server_close()


def _fetch(tmp_path: Path, registry: str, config: str = CONFIG) -> Any:
    path = tmp_path / "config.yml"
    path.write_text(config)
    return CliRunner().invoke(main, ["orbs", "fetch", str(path), "--orb-dir",
                                     str(tmp_path / "fetched"), "--registry", registry])


def test_fetch_writes_sources_and_lock(tmp_path: Path, registry: str) -> None:
    r = _fetch(tmp_path, registry)
    assert r.exit_code == 0, r.output
    d = tmp_path / "fetched"
    assert (d / "acme" / "greet@1.0.0.yml").read_text() == GREET
    lock = json.loads((d / "orbs.lock").read_text())["orbs"]
    assert lock["acme/tools@2"]["version"] == "2.3.1"
    assert lock["acme/tools@2"]["file"] == "acme/tools@2.yml"
    assert lock["acme/greet@1.0.0"]["sha256"] == hashlib.sha256(GREET.encode()).hexdigest()
    result = compile_config(CONFIG, "github", orb_dir=d)
    assert result.ok and _steps(result.pipeline, "tools/check") == ["echo lint ."]


def test_fetch_quiet_prints_errors_only(tmp_path: Path, registry: str) -> None:
    """-q as in compile and graph: nothing on success, the error when the registry fails."""
    path = tmp_path / "config.yml"
    path.write_text(CONFIG)
    args = ["orbs", "fetch", "-q", str(path), "--orb-dir", str(tmp_path / "fetched")]
    r = CliRunner().invoke(main, [*args, "--registry", registry])
    assert r.exit_code == 0 and r.output == "", r.output
    assert (tmp_path / "fetched" / "orbs.lock").exists()
    _Registry.mode = "500"
    r = CliRunner().invoke(main, [*args, "--registry", registry])
    assert r.exit_code == 1 and "[orb-fetch]" in r.stderr, r.output


@pytest.mark.parametrize(("mode", "config", "message"), [
    ("500", CONFIG, "HTTP 500"),
    ("garbage", CONFIG, "did not answer JSON"),
    ("ok", CONFIG.replace("acme/tools@2", "acme/nosuch@9"), "has no orb acme/nosuch@9"),
])
def test_fetch_errors_are_clean(tmp_path: Path, registry: str, mode: str, config: str,
                                message: str) -> None:
    _Registry.mode = mode
    r = _fetch(tmp_path, registry, config)
    assert r.exit_code == 1
    assert message in r.stderr and "[orb-fetch]" in r.stderr
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert not (tmp_path / "fetched" / "orbs.lock").exists()


def test_fetch_unreachable_registry(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = _fetch(tmp_path, f"http://127.0.0.1:{port}")
    assert r.exit_code == 1 and "cannot reach" in r.stderr and "Traceback" not in r.output


# ---- setup configs ---------------------------------------------------------------------

SETUP = """\
version: 2.1
setup: true
orbs:
  path-filtering: circleci/path-filtering@1.0.0
workflows:
  setup:
    jobs:
      - path-filtering/filter:
          mapping: |
            src/.* run-build true
          base-revision: main
"""


def test_setup_config_is_a_precise_warning_and_a_report_task() -> None:
    r = compile_config(SETUP, "gitlab")
    assert r.ok
    setup = [d for d in r.diagnostics if d.code == "setup-config"]
    assert len(setup) == 1 and "--param" in setup[0].message
    assert "setup-config" not in [d.code for d in r.diagnostics if d.code == "unsupported-feature"]
    report = r.report()
    assert "setup config" in report


def test_unreadable_orb_source_is_a_diagnostic(orb_dir: Path) -> None:
    (orb_dir / "acme" / "greet@1.0.0.yml").write_bytes(b"\xff\xfe not utf-8")
    assert [c for c, _ in _errors(CONFIG, orb_dir)] == ["orb-source"]


def test_orb_version_from_a_pipeline_parameter(orb_dir: Path) -> None:
    config = CONFIG.replace("acme/greet@1.0.0", "acme/greet@<< pipeline.parameters.v >>")
    config = config.replace("orbs:\n", "parameters:\n  v: {type: string, default: 0.9.0}\n"
                            "orbs:\n", 1)
    assert compile_config(config, "github", orb_dir=orb_dir,
                          pipeline_params={"v": "1.0.0"}).ok
    missing = compile_config(config, "github", orb_dir=orb_dir)  # 0.9.0 is not on disk
    assert "unsupported-orb" in [d.code for d in missing.diagnostics]


def test_processed_config_with_orbs_from_disk(orb_dir: Path) -> None:
    """The processed config needs no orbs any more: it compiles (without --orb-dir) to what
    the original compiles to with them, and processing it again changes nothing."""
    processed = compile_config(CONFIG, "circleci", path="c.yml", orb_dir=orb_dir).files[
        ".circleci/config.processed.yml"]
    again = compile_config(processed, "circleci", path="c.yml").files
    assert again[".circleci/config.processed.yml"] == processed
    for target in ("github", "gitlab"):
        assert (compile_config(processed, target, path="c.yml").files
                == compile_config(CONFIG, target, path="c.yml", orb_dir=orb_dir).files)
