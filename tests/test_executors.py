"""Executors on GitHub and GitLab: services and the `localhost` rewrite, runner mapping,
`--runner-map` (targets/services.py, targets/runners.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cicompile import compile_config, ir
from cicompile.diagnostics import ConfigError, Diagnostic, Diagnostics
from cicompile.targets.runners import (
    RunnerMap,
    default_placement,
    github_shell,
    load_runner_map,
    place,
    xcode_version,
)
from cicompile.targets.services import image_repo, known_service, rewrite_localhost, services

from tests.tools import ROOT, require_tool, run

CLI = [sys.executable, "-m", "cicompile"]


def compile_ok(text: str, target: str, **kw: Any) -> tuple[dict[str, str], list[Diagnostic]]:
    result = compile_config(text, target, path="config.yml", **kw)
    assert result.ok, [d.render() for d in result.diagnostics]
    return result.files, result.diagnostics


def github_jobs(text: str, **kw: Any) -> tuple[dict[str, Any], list[Diagnostic]]:
    files, diags = compile_ok(text, "github", **kw)
    [wf] = files.values()
    return yaml.safe_load(wf)["jobs"], diags


def codes(diags: list[Diagnostic]) -> list[str]:
    return [d.code for d in diags]


def docker_job(*images: ir.DockerImage, commands: tuple[str, ...] = (),
               env: ir.Env = ()) -> ir.Job:
    return ir.Job(
        name="j",
        executor=ir.Executor(kind=ir.ExecutorKind.DOCKER, images=images),
        steps=tuple(ir.Run(command=c, name=c) for c in commands),
        environment=env,
    )


PRIMARY = ir.DockerImage(image="cimg/base:stable")


# ---- services ------------------------------------------------------------------------------


@pytest.mark.parametrize(("image", "repo"), [
    ("postgres:16", "postgres"),
    ("docker.io/library/postgres:16@sha256:abc", "postgres"),
    ("cimg/postgres:16.2", "cimg/postgres"),
    ("ghcr.io/acme/tools/redis:7", "acme/tools/redis"),
    ("localhost:5000/mysql", "mysql"),
])
def test_image_repo_drops_registry_tag_and_digest(image: str, repo: str) -> None:
    assert image_repo(image) == repo


@pytest.mark.parametrize(("image", "kind", "port"), [
    ("cimg/postgres:16.2", "postgres", 5432),
    ("circleci/mysql:8", "mysql", 3306),
    ("docker.io/bitnami/mariadb:10", "mysql", 3306),
    ("redis:7", "redis", 6379),
    ("selenium/standalone-chrome:latest", "selenium", 4444),
    ("localstack/localstack:3", "localstack", 4566),
    ("acme/postgres:1", "postgres", 5432),  # base name fallback
])
def test_known_service_images(image: str, kind: str, port: int) -> None:
    known = known_service(image)
    assert known is not None
    assert known[0] == kind and known[1][0] == port


def test_unknown_image_has_no_ports() -> None:
    assert known_service("acme/frobnicator:1") is None


def test_service_hosts_ports_and_overrides() -> None:
    ex = ir.Executor(kind=ir.ExecutorKind.DOCKER, images=(
        PRIMARY,
        ir.DockerImage(image="circleci/mysql:5.7", environment=(("MYSQL_TCP_PORT", "3307"),)),
        ir.DockerImage(image="circleci/postgres:13", command=("-p 5434",)),
        ir.DockerImage(image="circleci/postgres:12", name="pg12"),
        ir.DockerImage(image="postgres:11"),  # same base name as... none: "postgres" is free
        ir.DockerImage(image="acme/postgres:1"),  # base name taken → -2
    ))
    got = [(s.host, s.kind, s.ports) for s in services(ex)]
    assert got == [
        ("mysql", "mysql", (3307,)),
        ("postgres", "postgres", (5434,)),
        ("pg12", "postgres", (5432,)),
        ("postgres-2", "postgres", (5432,)),
        ("postgres-3", "postgres", (5432,)),
    ]


def _rewritten(job: ir.Job) -> tuple[ir.Job, list[str]]:
    new, rewrites = rewrite_localhost(job)
    return new, [c for r in rewrites for c in r.changes]


def test_rewrite_ports_urls_host_variables_and_clients() -> None:
    job = docker_job(
        PRIMARY,
        ir.DockerImage(image="cimg/postgres:16"),
        ir.DockerImage(image="redis:7", name="cache"),
        commands=(
            "dockerize -wait tcp://localhost:5432 -wait tcp://127.0.0.1:6379",
            "psql -h localhost -U app -c 'select 1' && redis-cli -h 127.0.0.1 ping",
            "curl http://localhost:8080/ && echo notlocalhost:5432",
        ),
        env=(("DATABASE_URL", "postgres://u:p@localhost/db"), ("PGHOST", "localhost"),
             ("REDIS_URL", "redis://localhost:6379/0"), ("APP_HOST", "localhost")),
    )
    new, changes = _rewritten(job)
    cmds = [s.command for s in new.steps if isinstance(s, ir.Run)]
    assert cmds == [
        "dockerize -wait tcp://postgres:5432 -wait tcp://cache:6379",
        "psql -h postgres -U app -c 'select 1' && redis-cli -h cache ping",
        # a port no service owns, and a host that is not localhost, stay as written
        "curl http://localhost:8080/ && echo notlocalhost:5432",
    ]
    assert dict(new.environment) == {
        "DATABASE_URL": "postgres://u:p@postgres/db", "PGHOST": "postgres",
        "REDIS_URL": "redis://cache:6379/0", "APP_HOST": "localhost",
    }
    assert "`localhost:5432` → `postgres:5432`" in changes
    assert "`PGHOST=localhost` → `PGHOST=postgres`" in changes


def test_ambiguous_services_are_not_rewritten() -> None:
    job = docker_job(
        PRIMARY,
        ir.DockerImage(image="postgres:15", name="a"),
        ir.DockerImage(image="postgres:16", name="b"),
        ir.DockerImage(image="mysql:8"),
        commands=("pg_isready -h localhost -p 5432",),
        env=(("DATABASE_URL", "postgres://localhost/x"), ("DB_HOST", "localhost"),
             ("MYSQL_HOST", "127.0.0.1")),
    )
    new, _ = _rewritten(job)
    assert new.steps == job.steps
    # two postgres services: postgres URLs and DB_HOST stay; the one mysql is unambiguous
    assert dict(new.environment) == {"DATABASE_URL": "postgres://localhost/x",
                                     "DB_HOST": "localhost", "MYSQL_HOST": "mysql"}


def test_no_services_no_rewrite() -> None:
    job = docker_job(PRIMARY, commands=("curl localhost:5432",))
    assert rewrite_localhost(job) == (job, [])


# ---- GitHub and GitLab output -----------------------------------------------------------------

DOCKER = """\
version: 2.1
jobs:
  t:
    docker:
      - image: cimg/ruby:3.3
        auth: {username: $HUB_USER, password: $HUB_PASS}
        user: root
        environment: {DATABASE_URL: "postgres://app@localhost/test"}
      - image: cimg/postgres:16.2
        environment: {POSTGRES_USER: app}
      - image: acme/s3:1
        name: s3
        entrypoint: [/bin/fake-s3, --quiet]
        command: --root /data
        user: "1000"
    steps:
      - run: curl localhost:5432 || true
workflows:
  w:
    jobs: [t]
"""


def test_github_container_services_and_rewrite() -> None:
    jobs, diags = github_jobs(DOCKER)
    job = jobs["t"]
    assert job["runs-on"] == "ubuntu-latest"
    assert job["container"] == {
        "image": "cimg/ruby:3.3",
        "credentials": {"username": "${{ secrets.HUB_USER }}",
                        "password": "${{ secrets.HUB_PASS }}"},
        "env": {"DATABASE_URL": "postgres://app@postgres/test"},
        "options": "--user root",
    }
    assert job["services"] == {
        "postgres": {"image": "cimg/postgres:16.2", "env": {"POSTGRES_USER": "app"}},
        "s3": {"image": "acme/s3:1", "entrypoint": "/bin/fake-s3",
               "command": "--quiet --root /data", "options": "--user 1000"},
    }
    assert job["steps"][-1]["run"] == "curl postgres:5432 || true"
    found = codes(diags)
    assert found.count("service-rewrite") == 2  # the image environment and the step
    assert {"service-hostname", "service-unknown-port", "registry-auth"} <= set(found)
    unknown = next(d for d in diags if d.code == "service-unknown-port")
    assert "`s3`" in unknown.message and unknown.span is not None and unknown.span.line == 11


def test_gitlab_services_and_registry_task() -> None:
    files, diags = compile_ok(DOCKER, "gitlab")
    job = yaml.safe_load(files[".gitlab-ci.yml"])["t"]
    assert job["image"] == {"name": "cimg/ruby:3.3", "entrypoint": [""],
                            "docker": {"user": "root"}}
    assert job["services"] == [
        {"name": "cimg/postgres:16.2", "alias": "postgres",
         "variables": {"POSTGRES_USER": "app"}},
        {"name": "acme/s3:1", "alias": "s3", "entrypoint": ["/bin/fake-s3", "--quiet"],
         "command": ["--root", "/data"], "docker": {"user": "1000"}},
    ]
    assert "postgres://app@postgres/test" in job["script"][0]
    auth = next(d for d in diags if d.code == "registry-auth")
    assert "DOCKER_AUTH_CONFIG" in auth.message


def test_primary_entrypoint_is_started_in_the_background() -> None:
    config = DOCKER.replace("        user: root\n",
                            "        user: root\n        entrypoint: [/bin/agent]\n"
                            "        command: --port 8125\n", 1)
    jobs, diags = github_jobs(config)
    first = jobs["t"]["steps"][0]
    assert first["name"] == "Start the primary image's entrypoint"
    assert first["run"].startswith("nohup /bin/agent --port 8125 > /tmp/cicompile-entrypoint.log")
    assert "primary-entrypoint" in codes(diags)
    files, _ = compile_ok(config, "gitlab")
    script = yaml.safe_load(files[".gitlab-ci.yml"])["t"]["script"]
    assert script[1].startswith("nohup /bin/agent --port 8125")


def test_make_and_shell_say_how_to_start_services() -> None:
    for target in ("make", "shell"):
        _, diags = compile_ok(DOCKER, target)
        [d] = [d for d in diags if d.code == "local-services"]
        assert "`docker run -d --rm --name postgres --network host -e POSTGRES_USER=app" \
               " cimg/postgres:16.2`" in d.message
        assert ("--name s3 --network host --entrypoint /bin/fake-s3 --user 1000 acme/s3:1"
                " --quiet --root /data") in d.message


# ---- runners ---------------------------------------------------------------------------------


def _ex(kind: ir.ExecutorKind, **kw: Any) -> ir.Executor:
    return ir.Executor(kind=kind, **kw)


D, M, MAC, W = (ir.ExecutorKind.DOCKER, ir.ExecutorKind.MACHINE, ir.ExecutorKind.MACOS,
                ir.ExecutorKind.WINDOWS)


@pytest.mark.parametrize(("ex", "runs_on", "tags", "container"), [
    (_ex(D, images=(PRIMARY,)), ("ubuntu-latest",), (), True),
    (_ex(D, images=(PRIMARY,), resource_class="arm.medium"), ("ubuntu-24.04-arm",),
     ("saas-linux-medium-arm64",), True),
    (_ex(M), ("ubuntu-latest",), (), False),
    (_ex(M, machine_image="ubuntu-2204:current"), ("ubuntu-22.04",), (), False),
    (_ex(M, machine_image="ubuntu-2204:current", resource_class="arm.large"),
     ("ubuntu-22.04-arm",), ("saas-linux-large-arm64",), False),
    (_ex(M, machine_image="ubuntu-2004:2023.04.2"), ("ubuntu-22.04",), (), False),
    (_ex(MAC, xcode="15.4.0"), ("macos-14",), ("saas-macos-medium-m1",), False),
    (_ex(MAC, xcode="16.2.0"), ("macos-15",), ("saas-macos-medium-m1",), False),
    (_ex(MAC, xcode="26.0.1"), ("macos-26",), ("saas-macos-medium-m1",), False),
    (_ex(MAC, xcode="16.0", resource_class="macos.x86.medium.gen2"), ("macos-15-intel",),
     ("saas-macos-medium-m1",), False),
    (_ex(M, machine_image="windows-server-2022-gui:current"), ("windows-2022",),
     ("saas-windows-medium-amd64",), False),
    (_ex(W), ("windows-2022",), ("saas-windows-medium-amd64",), False),
    (_ex(M, resource_class="gpu.nvidia.small"), ("self-hosted", "linux", "x64"),
     ("saas-linux-medium-amd64-gpu-standard",), False),
    (_ex(M, machine_image="windows-server-2019-cuda:current",
         resource_class="windows.gpu.nvidia.medium"), ("self-hosted", "windows", "x64"),
     ("saas-windows-medium-amd64",), False),
    (_ex(M, resource_class="acme/big"), ("self-hosted", "linux", "x64"), (), False),
])
def test_default_runners(ex: ir.Executor, runs_on: tuple[str, ...], tags: tuple[str, ...],
                         container: bool) -> None:
    p = default_placement(ex, "github")
    assert (p.runs_on, p.gitlab_tags, p.container) == (runs_on, tags, container)


def test_runner_findings() -> None:
    def found(ex: ir.Executor, target: str = "github") -> list[str]:
        return [f.code for f in default_placement(ex, target).findings]

    assert found(_ex(D, images=(PRIMARY,), resource_class="medium")) == []
    assert found(_ex(D, images=(PRIMARY,), resource_class="xlarge")) == ["runner-size"]
    assert found(_ex(MAC, xcode="14.3.1")) == ["runner-xcode"]
    assert found(_ex(MAC, xcode="15.4.0")) == []
    assert found(_ex(MAC, xcode="15.4.0"), "gitlab") == []
    assert found(_ex(MAC, xcode="26.0"), "gitlab") == ["runner-xcode"]
    assert found(_ex(M, machine_image="ubuntu-1604:201903-01")) == ["runner-image"]
    assert found(_ex(M, machine_image="ubuntu-1604:201903-01"), "gitlab") == []
    assert found(_ex(M, resource_class="gpu.nvidia.small")) == ["runner-gpu"]


def test_unknown_executor_with_windows_shells_runs_on_windows() -> None:
    unknown = _ex(ir.ExecutorKind.NONE)
    p = default_placement(unknown, "github", ("powershell.exe -ExecutionPolicy Bypass",))
    assert (p.os, p.runs_on, p.shell) == ("windows", ("windows-2022",), "powershell")
    assert [f.code for f in p.findings] == ["runner-windows"]
    assert default_placement(unknown, "github", ("bash",)).runs_on == ("ubuntu-latest",)
    # a known Linux executor stays Linux whatever shell a step names
    assert default_placement(_ex(M), "github", ("pwsh",)).os == "linux"


def test_runner_finding_codes_are_documented() -> None:
    doc = (ROOT / "docs" / "diagnostics.md").read_text()
    source = (ROOT / "targets" / "runners.py").read_text()
    used = set(re.findall(r"Finding\(\s*\"(?:warning|note)\", \"([a-z-]+)\"", source))
    assert used >= {"runner-size", "runner-gpu", "runner-xcode", "runner-image", "runner-windows"}
    for code in used:
        assert f"### {code}\n" in doc, code


@pytest.mark.parametrize(("shell", "os_", "out"), [
    ("powershell.exe -ExecutionPolicy Bypass", "windows", "powershell"),
    ("pwsh.exe", "windows", "pwsh"),
    ("C:\\Git\\bin\\bash.exe", "windows", "bash"),
    ("cmd.exe", "windows", "cmd"),
    ("/bin/sh -eo pipefail", "linux", "/bin/sh -eo pipefail {0}"),
    ("python3 {0}", "linux", "python3 {0}"),
])
def test_github_shells(shell: str, os_: str, out: str) -> None:
    assert github_shell(shell, os_) == out


def test_xcode_versions() -> None:
    assert [xcode_version(v) for v in ("15.0.0", "15.0.1", "16.2.0", "9.2", "16")] == [
        "15.0", "15.0.1", "16.2", "9.2", "16"]


MACHINES = """\
version: 2.1
jobs:
  ios:
    macos: {xcode: "16.2.0"}
    steps: [{run: xcodebuild -version}]
  win:
    machine: {image: "windows-server-2022-gui:current"}
    resource_class: windows.medium
    steps:
      - run: Write-Host hi
      - run: {command: echo "$OSTYPE", shell: bash.exe}
  big:
    docker: [{image: cimg/base:stable}, {image: cimg/postgres:16}]
    resource_class: xlarge
    steps: [{run: pg_isready -h localhost}]
workflows:
  w:
    jobs: [ios, win, big]
"""


def test_github_macos_and_windows_jobs() -> None:
    jobs, _ = github_jobs(MACHINES)
    ios = jobs["ios"]
    assert ios["runs-on"] == "macos-15"
    assert ios["defaults"] == {"run": {"shell": "bash --login -eo pipefail {0}"}}
    select = ios["steps"][0]
    assert select["name"] == "Select Xcode 16.2"
    assert "DEVELOPER_DIR=/Applications/Xcode_16.2.app/Contents/Developer" in select["run"]
    win = jobs["win"]
    assert win["runs-on"] == "windows-2022"
    assert [s.get("shell") for s in win["steps"]] == ["powershell", "bash"]


RUNNER_MAP = """\
github:
  - match: {executor: docker, resource_class: xlarge}
    runs-on: ubuntu-latest-8-cores
    container: false
  - match: {executor: macos}
    runs-on: [macos-15-xlarge]
gitlab:
  - match: {resource_class: "windows.*"}
    tags: [windows, shared]
  - match: {executor: macos}
    image: macos-15-xcode-16
"""


def test_runner_map_rules() -> None:
    diags = Diagnostics()
    rmap = load_runner_map(RUNNER_MAP, "map.yml", diags)
    assert not diags.items
    jobs, diags2 = github_jobs(MACHINES, runner_map=rmap)
    assert jobs["ios"]["runs-on"] == "macos-15-xlarge"
    big = jobs["big"]
    # container: false → the VM, services published, nothing rewritten
    assert big["runs-on"] == "ubuntu-latest-8-cores" and "container" not in big
    assert big["services"]["postgres"]["ports"] == ["5432:5432"]
    assert big["steps"][-1]["run"] == "pg_isready -h localhost"
    assert "docker-on-vm" in codes(diags2)
    assert "runner-size" not in codes(diags2)  # the rule chose the runner
    files, _ = compile_ok(MACHINES, "gitlab", runner_map=rmap)
    doc = yaml.safe_load(files[".gitlab-ci.yml"])
    assert doc["win"]["tags"] == ["windows", "shared"]
    assert doc["ios"]["image"] == "macos-15-xcode-16"
    assert doc["ios"]["tags"] == ["saas-macos-medium-m1"]  # the default, not overridden
    assert place(_ex(D, images=(PRIMARY,)), "github", RunnerMap()).rule is None


@pytest.mark.parametrize(("text", "where", "message"), [
    ("- a\n", "1:1", "a runner map is a mapping"),
    ("github: {a: 1}\n", "1:9", "`github` must be a list of rules"),
    ("gitlub: []\n", "1:1", "unknown key 'gitlub'"),
    ("github:\n  - match: {executor: vm}\n    runs-on: x\n", "2:23",
     "`match.executor` must be one of"),
    ("github:\n  - match: {size: large}\n    runs-on: x\n", "2:13", "unknown `match` key 'size'"),
    ("github:\n  - match: {resource_class: large}\n", "2:5", "needs `runs-on` or `container`"),
    ("github:\n  - runs-on: [ubuntu latest]\n", "2:15", "'ubuntu latest' is not a runner label"),
    ("github:\n  - runs-on: []\n", "2:14", "must name at least one label"),
    ("github:\n  - container: maybe\n", "2:16", "`container` must be true or false"),
    ("gitlab:\n  - tags: [a]\n    runs-on: b\n", "3:5", "unknown key 'runs-on' in a gitlab rule"),
    ("gitlab:\n  - match: {image: [a]}\n    tags: [x]\n", "2:20", "must be a non-empty string"),
])
def test_bad_runner_maps_have_positioned_errors(text: str, where: str, message: str) -> None:
    diags = Diagnostics()
    with pytest.raises(ConfigError):
        load_runner_map(text, "map.yml", diags)
    rendered = [d.render() for d in diags]
    assert any(r.startswith(f"map.yml:{where}: error: ") and message in r
               and r.endswith("[runner-map]") for r in rendered), rendered


# ---- the command line --------------------------------------------------------------------------


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, env=env)


def test_cli_runner_map_and_report(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text(MACHINES)
    (tmp_path / "map.yml").write_text(RUNNER_MAP)
    r = cli("--target", "github", "-o", "out", "--runner-map", "map.yml", "--report", "r.md",
            "config.yml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    wf = yaml.safe_load((tmp_path / "out/.github/workflows/w.yml").read_text())
    assert wf["jobs"]["ios"]["runs-on"] == "macos-15-xlarge"
    report = (tmp_path / "r.md").read_text()
    assert "## Runners to check" in report
    assert "| 4:5 | macos xcode `16.2.0` | `macos-15-xlarge` | --runner-map rule map.yml:5:5" \
           " | ios |" in report
    assert "| `windows-2022` | default | win |" in report
    # The mapped output still passes actionlint (it knows GitHub's larger-runner labels).
    actionlint = require_tool("actionlint")
    require_tool("shellcheck")
    lint = run([actionlint, "-oneline", "out/.github/workflows/w.yml"], cwd=tmp_path,
               env={**os.environ, "SHELLCHECK_OPTS": "--severity=warning"})
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_cli_bad_runner_map_exits_1_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text(MACHINES)
    (tmp_path / "map.yml").write_text("github:\n  - match: {executor: vm}\n    runs-on: x\n"
                                      "other: 1\n")
    r = cli("--target", "gitlab", "-o", "out", "--runner-map", "map.yml", "config.yml",
            cwd=tmp_path)
    assert r.returncode == 1
    assert not (tmp_path / "out").exists()
    assert r.stderr.splitlines() == [
        "map.yml:2:23: error: `match.executor` must be one of docker, machine, macos, windows,"
        " none, not 'vm' [runner-map]",
        "map.yml:4:1: error: unknown key 'other' (expected github, gitlab) [runner-map]",
    ]
    missing = cli("--target", "github", "--runner-map", "nope.yml", "config.yml", cwd=tmp_path)
    assert missing.returncode == 2 and "nope.yml" in missing.stderr


def test_entrypoint_and_command_are_argv() -> None:
    config = """\
version: 2.1
jobs:
  j:
    docker:
      - image: cimg/base:stable
      - image: acme/a:1
        entrypoint: [/bin/sh, -c]
        command: ["echo 'a b' && sleep 9"]
      - image: acme/b:1
        command: serve --name 'two words'
    steps: [{run: "true"}]
workflows:
  w:
    jobs: [j]
"""
    files, _ = compile_ok(config, "gitlab")
    svcs = yaml.safe_load(files[".gitlab-ci.yml"])["j"]["services"]
    assert svcs[0]["command"] == ["echo 'a b' && sleep 9"]  # a list item stays one argument
    assert svcs[1]["command"] == ["serve", "--name", "two words"]  # a string is split
    bad = compile_config(config.replace("serve --name 'two words'", "serve 'open"), "gitlab",
                         path="config.yml")
    [err] = [d for d in bad.diagnostics if d.severity == "error"]
    assert err.code == "invalid-value" and "cannot be split" in err.message
    assert (err.span.line, err.span.col) == (10, 18)  # type: ignore[union-attr]


# ---- make/shell: CICOMPILE_SERVICES=1 starts services with docker --------------------------

LOCAL_SERVICES = """\
version: 2.1
jobs:
  db-test:
    docker:
      - image: cimg/base:stable
      - image: cimg/postgres:16.2
        environment: {POSTGRES_USER: app}
      - image: acme/s3:1
        name: s3
        entrypoint: [/bin/fake-s3, --quiet]
        command: --root /data
    steps:
      - run: echo "step ran" >> "$DOCKER_LOG"
workflows:
  wf:
    jobs: [db-test]
"""


def _fake_docker(tmp_path: Path, fail_run: bool = False) -> tuple[dict[str, str], Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "docker.log"
    script = bin_dir / "docker"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "docker $*" >> "{log}"\n'
        + ('[ "$1" = run ] && exit 1\n' if fail_run else "")
        + '[ "$1" = run ] && echo 0123456789ab\nexit 0\n'
    )
    script.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "DOCKER_LOG": str(log)}, log


@pytest.mark.parametrize("target", ["make", "shell"])
def test_local_services_start_with_docker_when_asked(target: str, tmp_path: Path) -> None:
    from tests.local_helpers import project
    from tests.local_helpers import run as run_local

    src = project(tmp_path, LOCAL_SERVICES, target)
    env, log = _fake_docker(tmp_path)
    r = run_local(target, src, {**env, "CICOMPILE_SERVICES": "1"})
    assert r.returncode == 0, r.output
    lines = log.read_text().splitlines()
    assert len(lines) == 4, lines
    pg, s3, step, rm = lines
    assert re.fullmatch(r"docker run -d --rm --name cicompile-\d+-db-test-postgres --network host"
                        r" -e POSTGRES_USER=app cimg/postgres:16.2", pg), pg
    assert re.fullmatch(r"docker run -d --rm --name cicompile-\d+-db-test-s3 --network host"
                        r" --entrypoint /bin/fake-s3 acme/s3:1 --quiet --root /data", s3), s3
    assert step == "step ran"  # the steps run once the services are up, before they stop
    names = re.findall(r"--name (\S+)", pg + " " + s3)
    assert rm == "docker rm -f " + " ".join(names)


@pytest.mark.parametrize("target", ["make", "shell"])
def test_local_services_are_skipped_or_fail_the_job(target: str, tmp_path: Path) -> None:
    from tests.local_helpers import failed_exit, project
    from tests.local_helpers import run as run_local

    src = project(tmp_path, LOCAL_SERVICES, target)
    env, log = _fake_docker(tmp_path, fail_run=True)
    r = run_local(target, src, env)  # not asked: no docker, the job runs without them
    assert r.returncode == 0, r.output
    assert "service postgres is not started (CICOMPILE_SERVICES=1" in r.output
    assert log.read_text().splitlines() == ["step ran"]
    log.unlink()
    r = run_local(target, src, {**env, "CICOMPILE_SERVICES": "1"})  # asked, docker fails
    assert r.returncode == failed_exit(target), r.output
    assert "cannot start service postgres: docker run failed" in r.output
    assert r.status("db-test") == "failed"
    assert "step ran" not in log.read_text()


def test_github_container_user() -> None:
    config = """\
version: 2.1
jobs:
  a:
    docker: [{image: cimg/node:20.11}]
    steps: [{run: "true"}]
  b:
    docker: [{image: cimg/node:20.11, user: circleci}]
    steps: [{run: "true"}]
  c:
    docker: [{image: node:20}]
    steps: [{run: "true"}]
workflows:
  w:
    jobs: [a, b, c]
"""
    jobs, diags = github_jobs(config)
    assert jobs["a"]["container"] == {"image": "cimg/node:20.11", "options": "--user root"}
    assert jobs["b"]["container"] == {"image": "cimg/node:20.11", "options": "--user circleci"}
    assert jobs["c"]["container"] == {"image": "node:20"}
    found = [(d.severity, d.span.line) for d in diags if d.code == "container-user"]  # type: ignore[union-attr]
    assert found == [("note", 4), ("warning", 7)]


# ---- end to end: the steps executors add, run by the GitHub emulator and gitlab-ci-local ------

ENTRYPOINT = """\
version: 2.1
jobs:
  agent:
    docker:
      - image: acme/agent:1
        entrypoint: [sh, -c]
        command: ["echo agent up > agent.txt"]
    steps:
      - run: |
          for _ in 1 2 3 4 5 6 7 8 9 10; do [ -f agent.txt ] && break; sleep 0.5; done
          echo "saw: $(cat agent.txt)"
workflows:
  w:
    jobs: [agent]
"""


@pytest.mark.e2e
def test_e2e_github_primary_entrypoint_and_xcode_check(tmp_path: Path) -> None:
    from tests.gha_runner import WorkflowRunner

    src = tmp_path / "src"
    src.mkdir()
    runner = WorkflowRunner(tmp_path / "run", src)
    try:
        out = tmp_path / "wf"
        out.mkdir()
        files, _ = compile_ok(ENTRYPOINT, "github")
        (out / "w.yml").write_text(files[".github/workflows/w.yml"])
        res = runner.run(out / "w.yml", "branch", "main")
        assert res["agent"].result == "success", res["agent"].log
        assert "saw: agent up" in res["agent"].log
        # Off macOS no Xcode is installed: the selection step stops the job and says why.
        mac = MACHINES.split("  win:")[0] + "workflows:\n  w:\n    jobs: [ios]\n"
        files, _ = compile_ok(mac, "github")
        (out / "m.yml").write_text(files[".github/workflows/w.yml"])
        res = runner.run(out / "m.yml", "branch", "main")
        assert res["ios"].result == "failure"
        assert "::error::Xcode 16.2 is not installed on this runner image" in res["ios"].log
        assert "xcodebuild" not in res["ios"].log.split("Xcode 16.2 is not installed")[1]
    finally:
        runner.close()


@pytest.mark.e2e
def test_e2e_gitlab_primary_entrypoint(tmp_path: Path) -> None:
    from tests.gitlab_helpers import make_repo, require_gcl, run_pipeline

    require_gcl()
    files, _ = compile_ok(ENTRYPOINT, "gitlab")
    repo = make_repo(tmp_path / "repo", files[".gitlab-ci.yml"])
    r = run_pipeline(repo)
    assert r.returncode == 0, r.output
    assert "saw: agent up" in r.log("agent")


def test_windows_steps_with_timeouts_keep_a_github_shell() -> None:
    config = """\
version: 2.1
jobs:
  win:
    machine: {image: "windows-server-2022-gui:current"}
    resource_class: windows.medium
    steps:
      - run: {command: npm test, no_output_timeout: 1m}
workflows:
  w:
    jobs: [win]
"""
    jobs, diags = github_jobs(config)
    [step] = jobs["win"]["steps"]
    assert step["shell"] == "powershell"  # never wrapped by the POSIX watchdog
    assert "approximated-timeout" in codes(diags)
