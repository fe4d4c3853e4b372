"""`setup_remote_docker` and `add_ssh_keys` for the hosted targets (semantics §3.4, §3.12).

The GitHub and GitLab jobs share the shell text built here; the make and shell targets have
their own functions in the bash runtime (`cc_setup_docker`, `cc_ssh_keys`), which use the host.

SSH keys come from secrets (GitHub) or CI/CD variables (GitLab) named after the fingerprints,
so a reader of the config knows which key goes where: `SSH_KEY_<32 hex digits>` for an MD5
fingerprint (`aa:bb:...`), `SSH_KEY_SHA256_<64 hex digits>` for a `SHA256:<base64>` one (hex
of the digest: secret names are case-insensitive, base64 is not), and `SSH_KEY` when the step
lists none (CircleCI then adds every project key).
"""

from __future__ import annotations

import base64
import binascii
import re

from cicompile import ir
from cicompile.targets.base import EmitContext, sh_quote

DEFAULT_SECRET = "SSH_KEY"
DOCKER_SOCKET = "/var/run/docker.sock"
DIND_DEFAULT_VERSION = "24.0.9"  # CircleCI's documented default engine (semantics §3.4)


def ssh_key_secret(fingerprint: str) -> str:
    """The secret / variable name holding the private key of one fingerprint."""
    text = fingerprint.strip()
    if text.upper().startswith("SHA256:"):
        digest = text[7:]
        try:
            raw = base64.b64decode(digest + "=" * (-len(digest) % 4), validate=True)
            return "SSH_KEY_SHA256_" + raw.hex().upper()
        except (binascii.Error, ValueError):
            return "SSH_KEY_SHA256_" + re.sub(r"[^A-Za-z0-9]", "_", digest).upper()
    digits = re.sub(r"^MD5:", "", text, flags=re.I).replace(":", "")
    return "SSH_KEY_" + re.sub(r"[^A-Za-z0-9]", "_", digits).upper()


def ssh_key_secrets(step: ir.AddSshKeys) -> list[tuple[str, str]]:
    """(fingerprint or "", secret name) for every key the step adds, in order."""
    if not step.fingerprints:
        return [("", DEFAULT_SECRET)]
    return [(f, ssh_key_secret(f)) for f in step.fingerprints]


def ssh_agent_script(variables: list[tuple[str, str, str]]) -> str:
    """POSIX sh that starts an agent on `$SSH_AUTH_SOCK` (already exported) unless one runs
    there, and adds each key. `variables` are (fingerprint, environment variable, where the
    value comes from, for messages); a variable holds the key itself or, for a GitLab file
    variable, the path of a file with it. The key text never appears in the script."""
    lines = [
        "if ! command -v ssh-agent >/dev/null 2>&1; then",
        "  echo 'cicompile: add_ssh_keys: there is no ssh-agent in this job"
        " (install openssh-client)' >&2",
        "  exit 1",
        "fi",
        # ssh-add -l: 2 when no agent answers on the socket (absent, or left by a dead one).
        "cicompile_agent=0",
        'ssh-add -l >/dev/null 2>&1 || cicompile_agent=$?',
        'if [ "$cicompile_agent" = 2 ]; then',
        '  rm -f "$SSH_AUTH_SOCK"',
        '  ssh-agent -a "$SSH_AUTH_SOCK" >/dev/null',
        "fi",
    ]
    for fingerprint, var, where in variables:
        what = f"the key {fingerprint}" if fingerprint else "the project's SSH key"
        missing = f"cicompile: add_ssh_keys: {where} is empty; set it to the private key of {what}"
        lines += [
            f'if [ -z "${{{var}:-}}" ]; then',
            f"  echo {sh_quote(missing)} >&2",
            "  exit 1",
            f'elif [ -f "${var}" ]; then',
            f"  tr -d '\\r' < \"${var}\" | ssh-add -",
            "else",
            f"  printf '%s\\n' \"${var}\" | tr -d '\\r' | ssh-add -",
            "fi",
        ]
    return "\n".join(lines) + "\n"


def dind_image(step: ir.SetupRemoteDocker) -> str:
    """The `docker:*-dind` service image for a `setup_remote_docker` version."""
    version = (step.version or "").strip()
    if re.fullmatch(r"\d+(?:\.\d+)*(?:-ce)?", version):
        return f"docker:{version}-dind"
    m = re.fullmatch(r"docker(\d+)", version)
    if m:
        return f"docker:{m.group(1)}-dind"
    return f"docker:{DIND_DEFAULT_VERSION}-dind"


def docker_check_script(wait_seconds: int) -> str:
    """POSIX sh failing clearly unless `docker` reaches an engine, retrying for a while (a
    dind service may still be starting)."""
    return (
        "if ! command -v docker >/dev/null 2>&1; then\n"
        "  echo 'cicompile: setup_remote_docker: this job needs the docker command, which its"
        " image lacks' >&2\n"
        "  exit 1\n"
        "fi\n"
        f"cicompile_wait={wait_seconds}\n"
        "until docker version >/dev/null 2>&1; do\n"
        '  if [ "$cicompile_wait" -le 0 ]; then\n'
        "    docker version >&2 || true\n"
        "    echo 'cicompile: setup_remote_docker: the docker command cannot reach a Docker"
        " engine' >&2\n"
        "    exit 1\n"
        "  fi\n"
        "  sleep 1\n"
        "  cicompile_wait=$((cicompile_wait - 1))\n"
        "done\n"
        "docker version --format 'Docker engine {{.Server.Version}}'\n"
    )


def remote_docker_notes(ctx: EmitContext, step: ir.SetupRemoteDocker, engine: str, *,
                        versioned: bool = False) -> None:
    """Warn about what of `setup_remote_docker` the target does not reproduce (`versioned`:
    the engine follows `version`)."""
    lost = []
    if step.version and step.version != "default" and not versioned:
        lost.append(f"`version: {step.version}` is not selected")
    if step.docker_layer_caching:
        lost.append("`docker_layer_caching` has no equivalent (layers are not kept between jobs)")
    if lost:
        ctx.diags.warning("remote-docker", f"setup_remote_docker: {engine}; " + "; ".join(lost),
                          step.span)
