"""Step options (semantics §3.1, §3.4, §3.12, §5.1): `no_output_timeout`, step and workflow
`max_auto_reruns`, `setup_remote_docker`, `add_ssh_keys`, `checkout` with `path` and `run`
with a non-bash `shell`, on every target.

The e2e tests run the generated make/shell output on this host, the GitLab output under
gitlab-ci-local and the GitHub output under tests/gha_runner.py. A silent step must fail
with the watchdog's message once its timeout passes; a step that prints more often than its
timeout must succeed however long it runs. Expectations are written by hand.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cicompile import compile_config
from cicompile.diagnostics import Diagnostic, Diagnostics
from cicompile.frontend.circleci import _duration, _Reader
from cicompile.frontend.yaml_loader import load_yaml
from cicompile.targets.hoststeps import ssh_key_secret

from tests.gha_runner import WorkflowRunner
from tests.gitlab_helpers import make_repo, run_pipeline
from tests.local_helpers import failed_exit, project, run
from tests.tools import require_tool

e2e = pytest.mark.e2e
KILLED = "too long with no output (no_output_timeout: 2 s): the step was killed"


def compiled(config: str, target: str) -> tuple[dict[str, str], list[Diagnostic]]:
    result = compile_config(config, target, path="config.yml")
    assert result.ok, [d.render() for d in result.diagnostics]
    return result.files, result.diagnostics


def codes(diags: list[Diagnostic]) -> set[str]:
    return {d.code for d in diags}


# ---- the front end -------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [
    ("10m", 600), ("1.25h", 4500), ("1h30m", 5400), ("5s", 5), ("500ms", 1), ("20m0s", 1200),
    (".5m", 30), ("'1m'", 60),
])
def test_durations(text: str, seconds: int) -> None:
    diags = Diagnostics()
    node = load_yaml(f"a: {text}\n", "x", diags)
    assert node is not None
    assert _duration(_Reader("x", diags), node.get("a"), "d") == seconds  # type: ignore[attr-defined]
    assert not list(diags)


@pytest.mark.parametrize(("text", "seconds"), [("1200", 1200), ("abc", None), ("1h 30m", None)])
def test_bad_durations_warn(text: str, seconds: int | None) -> None:
    diags = Diagnostics()
    node = load_yaml(f"a: {text}\n", "x", diags)
    assert node is not None
    assert _duration(_Reader("x", diags), node.get("a"), "d") == seconds  # type: ignore[attr-defined]
    assert [d.code for d in diags] == ["invalid-duration"]


def test_rerun_options_are_checked() -> None:
    config = """
version: 2.1
jobs:
  a:
    docker: [{image: cimg/base:stable}]
    steps:
      - run: {command: "true", max_auto_reruns: 9}
      - run: {command: "true", auto_rerun_delay: 5s}
      - run: {command: "true", max_auto_reruns: 1, auto_rerun_delay: 11m}
workflows:
  wf: {jobs: [a]}
"""
    result = compile_config(config, "shell", path="config.yml")
    errors = [d.message for d in result.diagnostics if d.code == "invalid-value"]
    assert not result.ok
    assert any("between 1 and 5" in m for m in errors)
    assert any("needs `max_auto_reruns`" in m for m in errors)
    assert any("at most 10 minutes" in m for m in errors)


def test_ssh_keys_without_fingerprints() -> None:
    # `fingerprints:` left empty (seen in real configs) means every key, as when it is absent.
    for body in ("- add_ssh_keys", "- add_ssh_keys:\n          fingerprints:"):
        config = f"""
version: 2.1
jobs:
  a:
    docker: [{{image: cimg/base:stable}}]
    steps:
      {body}
workflows:
  wf: {{jobs: [a]}}
"""
        files, diags = compiled(config, "github")
        (text,) = files.values()
        assert "${{ secrets.SSH_KEY }}" in text
        assert "ssh-key-secrets" in codes(diags)


def test_ssh_key_secret_names() -> None:
    assert ssh_key_secret("87:ea:4b:b3:be:67:e5:c4:d3:d1:98:ff:88:1c:1b:ac") == (
        "SSH_KEY_87EA4BB3BE67E5C4D3D198FF881C1BAC")
    # SHA256 fingerprints are base64 (case matters); the name holds the digest in hex.
    name = ssh_key_secret("SHA256:jS4Qm0PD6qcDx8hpfM/Oq/Z5h3kZk1pD6R6P5+L5aLs")
    assert name == "SSH_KEY_SHA256_" + "8D2E109B43C3EAA703C7C8697CCFCEAB" + (
        "F679877919935A43E91E8FE7E2F968BB")


# ---- configs -------------------------------------------------------------------------------

# `slow` prints a dot every second for 4 s under a 2 s timeout; `silent` sleeps 4 s.
TIMEOUTS = """
version: 2.1
jobs:
  chatty:
    docker: [{image: cimg/base:stable}]
    steps:
      - run:
          name: slow but talking
          no_output_timeout: 2s
          command: for i in 1 2 3 4; do printf .; sleep 1; done; echo done talking
      - run: echo after the slow step
  silent:
    docker: [{image: cimg/base:stable}]
    steps:
      - run:
          name: silent step
          no_output_timeout: 2s
          command: echo starting; sleep 4; echo never printed
      - run:
          name: after
          command: echo never reached
      - run:
          name: cleanup
          when: on_fail
          command: echo cleanup ran
workflows:
  wf:
    jobs: [chatty, silent]
"""

# The flaky command succeeds on its third attempt; the counter lives outside the job.
RERUNS = """
version: 2.1
jobs:
  flaky:
    docker: [{image: cimg/base:stable}]
    steps:
      - run:
          name: flaky
          max_auto_reruns: 2
          auto_rerun_delay: 1s
          command: |
            n=$(cat "$STATE/count" 2>/dev/null || echo 0)
            echo $((n + 1)) > "$STATE/count"
            echo "attempt $n"
            [ "$n" -ge 2 ]
  hopeless:
    docker: [{image: cimg/base:stable}]
    steps:
      - run:
          name: hopeless
          max_auto_reruns: 1
          command: echo hopeless attempt; exit 3
workflows:
  wf:
    jobs: [flaky, hopeless]
"""

WORKFLOW_RERUNS = """
version: 2.1
jobs:
  once-broken:
    docker: [{image: cimg/base:stable}]
    steps:
      - run: |
          if [ ! -e "$STATE/ran" ]; then touch "$STATE/ran"; echo first run fails; exit 1; fi
          echo second run passes
  after:
    docker: [{image: cimg/base:stable}]
    steps:
      - run: echo downstream ran
workflows:
  wf:
    max_auto_reruns: 1
    jobs:
      - once-broken
      - after: {requires: [once-broken]}
"""

HOST_STEPS = """
version: 2.1
jobs:
  docker-job:
    docker: [{image: cimg/base:stable}]
    steps:
      - setup_remote_docker:
          version: 20.10.12
          docker_layer_caching: true
      - run: docker version
  keys:
    docker: [{image: cimg/base:stable}]
    steps:
      - add_ssh_keys:
          fingerprints: ["87:ea:4b:b3:be:67:e5:c4:d3:d1:98:ff:88:1c:1b:ac"]
      - run: echo keys step done
workflows:
  wf:
    jobs: [docker-job, keys]
"""

SHELLS = """
version: 2.1
jobs:
  shells:
    docker: [{image: cimg/base:stable}]
    steps:
      - checkout:
          path: ~/project/src
      - run: test -f src/README.md && echo checked out under src
      - run:
          shell: /bin/sh
          command: echo "sh says $((1 + 2))"
      - run:
          shell: python3
          command: |
            import sys
            print("python says", sys.version_info[0])
          no_output_timeout: 1m
workflows:
  wf:
    jobs: [shells]
"""


# `ssh-add -l` in the next step lists the key the first step added (by its comment).
SSH = """
version: 2.1
jobs:
  keys:
    docker: [{image: cimg/base:stable}]
    steps:
      - add_ssh_keys:
          fingerprints: ["@FP@", "00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff"]
      - run: ssh-add -l
workflows:
  wf:
    jobs: [keys]
"""


def _ssh_key(tmp: Path) -> tuple[str, str]:
    """A fresh key: (private key text, MD5 fingerprint as CircleCI writes it)."""
    require_tool("ssh-keygen")
    key = tmp / "id_test"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "cicompile-test-key",
                    "-f", str(key)], check=True)
    out = subprocess.run(["ssh-keygen", "-l", "-E", "md5", "-f", f"{key}.pub"],
                         capture_output=True, text=True, check=True).stdout
    return key.read_text(), out.split()[1].removeprefix("MD5:")


def _end_agents(under: Path) -> None:
    """End the ssh-agents a test started, by pid: those whose socket lies under `under`."""
    ps = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    for line in ps.splitlines():
        pid, _, args = line.strip().partition(" ")
        if args.startswith("ssh-agent") and str(under) in args:
            os.kill(int(pid), signal.SIGTERM)


# ---- make and shell ------------------------------------------------------------------------


@e2e
def test_local_no_output_timeout(target: str, tmp_path: Path) -> None:
    r = run(target, project(tmp_path, TIMEOUTS, target))
    assert r.returncode == failed_exit(target), r.output
    assert r.statuses() == {"chatty": "success", "silent": "failed"}
    assert "[chatty] ....done talking" in r.stdout
    assert "[chatty] after the slow step" in r.stdout
    assert f"[silent] cicompile: {KILLED}" in r.stdout
    assert "never printed" not in r.stdout and "never reached" not in r.stdout
    assert "[silent] cleanup ran" in r.stdout


@e2e
def test_local_step_reruns(target: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    r = run(target, project(tmp_path, RERUNS, target), {"STATE": str(state)})
    assert r.statuses() == {"flaky": "success", "hopeless": "failed"}, r.output
    for n in range(3):
        assert f"[flaky] attempt {n}" in r.stdout
    assert "automatic rerun 2 of 2 in 1 s" in r.stdout
    assert r.stdout.count("[hopeless] hopeless attempt") == 2


@e2e
def test_local_workflow_reruns(target: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    r = run(target, project(tmp_path, WORKFLOW_RERUNS, target), {"STATE": str(state)})
    assert r.returncode == 0, r.output
    assert r.statuses() == {"once-broken": "success", "after": "success"}
    assert "first run fails" in r.stdout and "second run passes" in r.stdout
    assert "automatic rerun 1 of 1 (the workflow's max_auto_reruns)" in r.stdout


def _fake_docker(bin_dir: Path, works: bool) -> None:
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / "docker"
    tool.write_text(f"#!/bin/sh\necho fake docker \"$@\"\nexit {0 if works else 1}\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)


@e2e
@pytest.mark.parametrize("works", [True, False])
def test_local_remote_docker_and_ssh_keys(target: str, tmp_path: Path, works: bool) -> None:
    _fake_docker(tmp_path / "bin", works)
    env = {"PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}", "SSH_AUTH_SOCK": ""}
    r = run(target, project(tmp_path, HOST_STEPS, target), env)
    assert "no ssh-agent (SSH_AUTH_SOCK is unset)" in r.stdout, r.output
    assert r.status("keys") == "success"
    if works:
        assert r.status("docker-job") == "success", r.output
        assert "using the Docker engine of this host (the config asks for version" in r.stdout
        assert "fake docker version" in r.stdout
    else:
        assert r.status("docker-job") == "failed"
        assert "the docker command cannot reach a Docker engine" in r.stdout


@e2e
def test_local_ssh_keys_use_the_hosts_agent(target: str, tmp_path: Path) -> None:
    require_tool("ssh-agent")
    key, fp = _ssh_key(tmp_path)
    sock = tmp_path / "agent.sock"
    agent = subprocess.run(["ssh-agent", "-a", str(sock)], capture_output=True, text=True,
                           check=True).stdout
    try:
        env = {"SSH_AUTH_SOCK": str(sock)}
        subprocess.run(["ssh-add", str(tmp_path / "id_test")], env={**os.environ, **env},
                       check=True, capture_output=True)
        r = run(target, project(tmp_path, SSH.replace("@FP@", fp), target), env)
    finally:
        _end_agents(tmp_path)
    assert "SSH_AGENT_PID" in agent
    assert r.returncode == 0, r.output
    assert "the job uses your ssh-agent (1 key(s))" in r.stdout
    assert "cicompile-test-key" in r.stdout  # the next step sees the agent
    assert "the key MD5:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff is not in" in r.stdout
    assert f"the key MD5:{fp} is not" not in r.stdout
    assert key not in r.output


@e2e
def test_local_checkout_path_and_shells(target: str, tmp_path: Path) -> None:
    require_tool("python3")
    r = run(target, project(tmp_path, SHELLS, target))
    assert r.returncode == 0, r.output
    assert "checked out under src" in r.stdout
    assert "sh says 3" in r.stdout
    assert "python says 3" in r.stdout


# A stand-in for PowerShell (not installed here), as strict as pwsh about the file name.
FAKE_PWSH = """#!/bin/sh
case $1 in
  *.ps1) echo "pwsh ran a .ps1 file"; exec sh "$1" ;;
  *) echo "Processing -File '$1' failed: the file has no '.ps1' extension" >&2; exit 64 ;;
esac
"""

PWSH = """
version: 2.1
jobs:
  ps:
    docker: [{image: cimg/base:stable}]
    steps:
      - run:
          shell: pwsh
          command: echo from the script
workflows:
  wf:
    jobs: [ps]
"""


def _fake_pwsh(bin_dir: Path) -> str:
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / "pwsh"
    tool.write_text(FAKE_PWSH)
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


@e2e
def test_local_powershell_gets_a_ps1_file(target: str, tmp_path: Path) -> None:
    path = _fake_pwsh(tmp_path / "bin")
    r = run(target, project(tmp_path, PWSH, target), {"PATH": path})
    assert r.returncode == 0, r.output
    assert "pwsh ran a .ps1 file" in r.stdout and "from the script" in r.stdout


# ---- GitLab --------------------------------------------------------------------------------


def test_gitlab_shape() -> None:
    files, diags = compiled(HOST_STEPS, "gitlab")
    doc = yaml.safe_load(files[".gitlab-ci.yml"])
    job = doc["docker-job"]
    assert {"name": "docker:20.10.12-dind", "alias": "docker"} in job["services"]
    assert job["variables"]["DOCKER_HOST"] == "tcp://docker:2376"
    assert job["variables"]["DOCKER_TLS_CERTDIR"] == "/certs"
    keys = "\n".join(doc["keys"]["script"])
    assert 'ssh-add -' in keys and "$SSH_KEY_87EA4BB3BE67E5C4D3D198FF881C1BAC" in keys
    assert {"remote-docker", "remote-docker-runner", "ssh-key-secrets"} <= codes(diags)


def test_gitlab_workflow_retry_is_capped() -> None:
    config = WORKFLOW_RERUNS.replace("max_auto_reruns: 1", "max_auto_reruns: 4")
    files, diags = compiled(config, "gitlab")
    doc = yaml.safe_load(files[".gitlab-ci.yml"])
    assert doc["once-broken"]["retry"] == 2 and doc["after"]["retry"] == 2
    assert "workflow-reruns" in codes(diags)
    files, diags = compiled(WORKFLOW_RERUNS, "gitlab")
    assert yaml.safe_load(files[".gitlab-ci.yml"])["after"]["retry"] == 1
    assert "workflow-reruns" not in codes(diags)


@e2e
def test_gitlab_no_output_timeout_and_reruns(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    # One pipeline for both configs' jobs: gitlab-ci-local runs are slow to start.
    merged = yaml.safe_load(TIMEOUTS)
    merged["jobs"]["flaky"] = yaml.safe_load(RERUNS)["jobs"]["flaky"]
    merged["workflows"]["wf"]["jobs"].append("flaky")
    files, _ = compiled(yaml.safe_dump(merged), "gitlab")
    repo = make_repo(tmp_path / "repo", files[".gitlab-ci.yml"])
    r = run_pipeline(repo, "--variable", f"STATE={state}")
    assert r.passed == {"chatty", "flaky"} and r.failed == {"silent"}, r.output
    assert "....done talking" in r.log("chatty")
    silent = r.log("silent")
    assert f"cicompile: {KILLED}" in silent
    assert "never printed" not in silent and "never reached" not in silent
    assert "cleanup ran" in silent
    flaky = r.log("flaky")
    assert all(f"attempt {n}" in flaky for n in range(3)), flaky


@e2e
def test_gitlab_powershell_gets_a_ps1_file(tmp_path: Path) -> None:
    files, _ = compiled(PWSH, "gitlab")
    repo = make_repo(tmp_path / "repo", files[".gitlab-ci.yml"])
    r = run_pipeline(repo, "--variable", f"PATH={_fake_pwsh(tmp_path / 'bin')}")
    assert r.passed == {"ps"}, r.output
    assert "pwsh ran a .ps1 file" in r.log("ps") and "from the script" in r.log("ps")


@e2e
def test_gitlab_ssh_keys_from_variables(tmp_path: Path) -> None:
    require_tool("ssh-agent")
    key, fp = _ssh_key(tmp_path)
    config = SSH.replace("@FP@", fp).replace(
        ', "00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff"', "")
    files, diags = compiled(config, "gitlab")
    name = "SSH_KEY_" + fp.replace(":", "").upper()
    assert any(name in d.message for d in diags if d.code == "ssh-key-secrets")
    repo = make_repo(tmp_path / "repo", files[".gitlab-ci.yml"])
    try:
        r = run_pipeline(repo, "--variable", f"{name}={key}", "--variable", f"TMPDIR={tmp_path}")
    finally:
        _end_agents(tmp_path)
    assert r.passed == {"keys"}, r.output
    assert "cicompile-test-key" in r.log("keys")


@e2e
def test_gitlab_checkout_path_and_shells(tmp_path: Path) -> None:
    files, _ = compiled(SHELLS, "gitlab")
    repo = make_repo(tmp_path / "repo", files[".gitlab-ci.yml"], {"README.md": "x\n"})
    r = run_pipeline(repo)
    assert r.passed == {"shells"}, r.output
    log = r.log("shells")
    assert "checked out under src" in log and "sh says 3" in log and "python says 3" in log


# ---- GitHub --------------------------------------------------------------------------------


def _workflow(config: str) -> tuple[dict[str, Any], list[Diagnostic], str]:
    files, diags = compiled(config, "github")
    (text,) = files.values()
    return yaml.safe_load(text), diags, text


def test_github_shape() -> None:
    doc, diags, _ = _workflow(HOST_STEPS)
    job = doc["jobs"]["docker-job"]
    assert job["container"]["volumes"] == ["/var/run/docker.sock:/var/run/docker.sock"]
    keys = doc["jobs"]["keys"]["steps"]
    (add,) = [s for s in keys if s.get("name") == "Add SSH keys"]
    assert add["env"] == {
        "CICOMPILE_SSH_KEY_0": "${{ secrets.SSH_KEY_87EA4BB3BE67E5C4D3D198FF881C1BAC }}"}
    assert "secrets." not in add["run"] and '"$GITHUB_ENV"' in add["run"]
    assert {"remote-docker", "ssh-key-secrets"} <= codes(diags)
    doc, diags, _ = _workflow(TIMEOUTS)
    (slow,) = [s for s in doc["jobs"]["chatty"]["steps"] if s.get("name") == "slow but talking"]
    assert slow["shell"] == "cicompile-watch 2 0 0 bash --noprofile --norc -eo pipefail {0}"
    # Steps without either option keep GitHub's default shell.
    assert all("shell" not in s for s in doc["jobs"]["chatty"]["steps"] if s is not slow)
    _, diags, _ = _workflow(WORKFLOW_RERUNS)
    assert "workflow-reruns" in codes(diags)


@pytest.fixture
def gha(tmp_path: Path) -> Any:
    src = tmp_path / "src"
    src.mkdir()
    (src / "README.md").write_text("source file\n")
    r = WorkflowRunner(tmp_path / "run", src)
    yield r
    r.close()


@e2e
def test_github_no_output_timeout_and_reruns(gha: WorkflowRunner, tmp_path: Path) -> None:
    _, _, text = _workflow(TIMEOUTS)
    path = tmp_path / "w.yml"
    path.write_text(text)
    res = gha.run(path, "branch", "main")
    assert res["chatty"].result == "success", res["chatty"].log
    assert "....done talking" in res["chatty"].log
    assert res["silent"].result == "failure"
    assert f"cicompile: {KILLED}" in res["silent"].log
    assert "never printed" not in res["silent"].log and "never reached" not in res["silent"].log
    assert "cleanup ran" in res["silent"].log
    state = tmp_path / "state"
    state.mkdir()
    # The runner passes no outside variables to steps: the counter's path goes in the config.
    _, _, text = _workflow(RERUNS.replace("$STATE", str(state)))
    path.write_text(text)
    res = gha.run(path, "branch", "main")
    assert res["flaky"].result == "success", res["flaky"].log
    assert all(f"attempt {n}" in res["flaky"].log for n in range(3))
    assert res["hopeless"].result == "failure"
    assert res["hopeless"].log.count("hopeless attempt") == 2


@e2e
def test_github_ssh_keys_from_secrets(gha: WorkflowRunner, tmp_path: Path) -> None:
    require_tool("ssh-agent")
    key, fp = _ssh_key(tmp_path)
    config = SSH.replace("@FP@", fp).replace(
        ', "00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff"', "")
    _, _, text = _workflow(config)
    path = tmp_path / "w.yml"
    path.write_text(text)
    name = "SSH_KEY_" + fp.replace(":", "").upper()
    try:
        missing = gha.run(path, "branch", "main")
        gha.secrets[name] = key
        res = gha.run(path, "branch", "main")
    finally:
        _end_agents(tmp_path)
    assert missing["keys"].result == "failure"
    assert f"the secret {name} is empty" in missing["keys"].log
    assert res["keys"].result == "success", res["keys"].log
    assert "cicompile-test-key" in res["keys"].log
