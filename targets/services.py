"""Secondary docker images (services): hostnames, known ports and the `localhost` rewrite.

On CircleCI every container of a docker job shares one network namespace, so code reaches a
service at `localhost:PORT` (semantics §2.2). On GitHub (job in `container:`) and on GitLab's
Docker executor each service is a separate host, reached by its label / alias. Scripts in the
config that spell `localhost:PORT` (or `127.0.0.1:PORT`) are rewritten to the service's
hostname when the port belongs to exactly one service, as are database URLs and `*_HOST`
variables whose service is unambiguous. Every rewrite is reported; docs/targets.md explains
why this was chosen over running jobs on the VM with published ports.
"""

from __future__ import annotations

import dataclasses
import re
import shlex

from cicompile import ir
from cicompile.diagnostics import Diagnostics
from cicompile.records import dataclass
from cicompile.targets.base import service_hostname

# Image repository (registry and tag stripped) → (service kind, default ports). Kinds name
# the protocol, so `DATABASE_URL=postgres://localhost/db` finds the postgres service.
_KNOWN: dict[str, tuple[str, tuple[int, ...]]] = {}


def _known(kind: str, ports: tuple[int, ...], *repos: str) -> None:
    for repo in repos:
        _KNOWN[repo] = (kind, ports)


_known("postgres", (5432,), "postgres", "circleci/postgres", "cimg/postgres", "postgis/postgis",
       "bitnami/postgresql", "wodby/postgres", "timescale/timescaledb",
       "jhawthorn/circleci-postgres-fast", "mdillon/postgis")
_known("mysql", (3306,), "mysql", "circleci/mysql", "cimg/mysql", "bitnami/mysql",
       "percona", "mysql/mysql-server", "mariadb", "circleci/mariadb", "cimg/mariadb",
       "bitnami/mariadb", "wodby/mariadb")
_known("redis", (6379,), "redis", "circleci/redis", "cimg/redis", "bitnami/redis",
       "valkey/valkey", "redis/redis-stack-server")
_known("mongo", (27017,), "mongo", "circleci/mongo", "bitnami/mongodb",
       "mongodb/mongodb-community-server")
_known("memcached", (11211,), "memcached", "bitnami/memcached")
_known("rabbitmq", (5672, 15672), "rabbitmq", "bitnami/rabbitmq")
_known("elasticsearch", (9200, 9300), "elasticsearch", "elasticsearch/elasticsearch",
       "circleci/elasticsearch", "opensearchproject/opensearch", "bitnami/elasticsearch")
_known("cassandra", (9042,), "cassandra", "bitnami/cassandra", "scylladb/scylla")
_known("localstack", (4566,), "localstack/localstack")
_known("minio", (9000,), "minio/minio", "bitnami/minio")
_known("yugabyte", (5433, 9042), "yugabytedb/yugabyte")
_known("gremlin", (8182,), "entgo/gremlin-server", "tinkerpop/gremlin-server")
_known("zookeeper", (2181,), "zookeeper", "bitnami/zookeeper", "confluentinc/cp-zookeeper")
_known("kafka", (9092,), "bitnami/kafka", "confluentinc/cp-kafka", "wurstmeister/kafka",
       "apache/kafka")
_known("nats", (4222,), "nats")
_known("consul", (8500,), "consul", "hashicorp/consul")
_known("vault", (8200,), "vault", "hashicorp/vault")
_known("mssql", (1433,), "mssql/server")
_known("clickhouse", (8123, 9000), "clickhouse/clickhouse-server", "yandex/clickhouse-server")
_known("couchdb", (5984,), "couchdb")
_known("neo4j", (7474, 7687), "neo4j")
_known("influxdb", (8086,), "influxdb")
_known("mailhog", (1025, 8025), "mailhog/mailhog")
_known("ddagent", (8126,), "datadog/agent")
_known("dynamodb", (8000,), "amazon/dynamodb-local")

# URL schemes → service kind (for URLs that name no port: the service's default one).
_SCHEMES = {
    "postgres": "postgres", "postgresql": "postgres", "pgsql": "postgres", "postgis": "postgres",
    "mysql": "mysql", "mysql2": "mysql", "mariadb": "mysql", "redis": "redis", "rediss": "redis",
    "mongodb": "mongo", "amqp": "rabbitmq", "memcached": "memcached", "cassandra": "cassandra",
}
# Prefixes of `<PREFIX>_HOST`-style variables → service kind. `DB_`/`DATABASE_` mean the one
# database service of the job, whichever it is.
_HOST_VARS = {
    "PG": "postgres", "POSTGRES": "postgres", "POSTGRESQL": "postgres", "MYSQL": "mysql",
    "MARIADB": "mysql", "REDIS": "redis", "MONGO": "mongo", "MONGODB": "mongo",
    "MEMCACHED": "memcached", "RABBITMQ": "rabbitmq", "AMQP": "rabbitmq",
    "ELASTICSEARCH": "elasticsearch", "ES": "elasticsearch", "OPENSEARCH": "elasticsearch",
    "CASSANDRA": "cassandra", "DB": "db", "DATABASE": "db",
}
_DATABASES = ("postgres", "mysql", "mongo", "mssql", "yugabyte", "cassandra")
_HOST_VAR = re.compile(r"([A-Z][A-Z0-9]*?)_?(?:HOST|HOSTNAME|SERVER)")
# Client tools whose `-h`/`--host` option names the server → service kind.
_TOOLS = {
    "psql": "postgres", "pg_isready": "postgres", "createdb": "postgres", "dropdb": "postgres",
    "pg_dump": "postgres", "pg_restore": "postgres", "createuser": "postgres",
    "mysql": "mysql", "mysqladmin": "mysql", "mysqldump": "mysql", "mariadb": "mysql",
    "redis-cli": "redis", "mongo": "mongo", "mongosh": "mongo",
}
_SHELLS = {"sh", "bash", "ash", "dash", "zsh"}
_LOCAL = r"(?:localhost|127\.0\.0\.1)"
_HOST_PORT = re.compile(rf"(?<![\w.-]){_LOCAL}:(\d{{1,5}})(?![\d])")
_URL_NO_PORT = re.compile(rf"\b([a-z][a-z0-9+]*)://([^\s/@'\"]*@)?{_LOCAL}(?=[/?'\"\s]|$)")
_TOOL_HOST = re.compile(
    rf"(?<![\w/-])({'|'.join(re.escape(t) for t in sorted(_TOOLS, key=len, reverse=True))})"
    rf"\b([^\n;&|]*?(?:-h\s*|--host[= ]))({_LOCAL})\b"
)
# A service's port given in its own settings (MYSQL_TCP_PORT=3307, `command: -p 5434`).
_PORT_ENV = re.compile(r"(?:^|_)(?:TCP_)?PORT(?:_NUMBER)?$")
_PORT_ARG = re.compile(r"(?:^|\s)(?:-p\s*|--port[= ]|-c\s+port=)(\d{1,5})\b")


@dataclass(frozen=True)
class Service:
    image: ir.DockerImage
    host: str  # hostname / GitHub label / GitLab alias
    kind: str | None  # known service kind, None for unknown images
    ports: tuple[int, ...]  # what it listens on (known defaults, adjusted by its settings)


def image_repo(image: str) -> str:
    """`docker.io/library/postgres:16@sha256:…` → `postgres`; registry and tag dropped."""
    ref = image.split("@", 1)[0]
    parts = ref.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]
    if parts and parts[0] == "library":
        parts = parts[1:]
    last = parts[-1].split(":", 1)[0] if parts else ""
    return "/".join([*parts[:-1], last])


def known_service(image: str) -> tuple[str, tuple[int, ...]] | None:
    repo = image_repo(image)
    if repo in _KNOWN:
        return _KNOWN[repo]
    if repo.startswith("selenium/"):
        return ("selenium", (4444,))
    # `someorg/postgres` is most likely a postgres too.
    return _KNOWN.get(repo.rsplit("/", 1)[-1])


def _ports(img: ir.DockerImage, defaults: tuple[int, ...]) -> tuple[int, ...]:
    own: list[int] = []
    for k, v in img.environment:
        if _PORT_ENV.search(k) and v.strip().isdigit():
            own.append(int(v))
    for m in _PORT_ARG.finditer(" " + " ".join(img.command)):
        own.append(int(m.group(1)))
    # A configured port replaces the main (first) default port.
    if own:
        return tuple(dict.fromkeys([*own, *defaults[1:]]))
    return defaults


def services(ex: ir.Executor) -> list[Service]:
    """The job's secondary images with unique hostnames (`name`, else the image's base name)."""
    out: list[Service] = []
    used: set[str] = set()
    for img in ex.images[1:]:
        base = service_hostname(img)
        host, i = base, 2
        while host in used:
            host, i = f"{base}-{i}", i + 1
        used.add(host)
        known = known_service(img.image)
        kind, ports = (known[0], _ports(img, known[1])) if known else (None, _ports(img, ()))
        out.append(Service(img, host, kind, ports))
    return out


@dataclass(frozen=True)
class Rewrite:
    span: object  # Span | None of the step, image or job whose text changed
    where: str  # "step 'Run tests'", "job environment DATABASE_URL"...
    changes: tuple[str, ...]  # "`localhost:5432` → `postgres:5432`"


class _Rewriter:
    def __init__(self, svcs: list[Service]) -> None:
        by_port: dict[int, list[str]] = {}
        by_kind: dict[str, list[str]] = {}
        for s in svcs:
            for p in s.ports:
                by_port.setdefault(p, []).append(s.host)
            if s.kind:
                by_kind.setdefault(s.kind, []).append(s.host)
        self.port_host = {p: hs[0] for p, hs in by_port.items() if len(hs) == 1}
        self.kind_host = {k: hs[0] for k, hs in by_kind.items() if len(hs) == 1}
        dbs = [h for k in _DATABASES for h in by_kind.get(k, [])]
        if len(dbs) == 1:
            self.kind_host["db"] = dbs[0]

    def text(self, s: str, changes: list[str]) -> str:
        def port(m: re.Match[str]) -> str:
            host = self.port_host.get(int(m.group(1)))
            if host is None:
                return m.group(0)
            new = f"{host}:{m.group(1)}"
            changes.append(f"`{m.group(0)}` → `{new}`")
            return new

        def url(m: re.Match[str]) -> str:
            host = self.kind_host.get(_SCHEMES.get(m.group(1), ""))
            if host is None:
                return m.group(0)
            new = f"{m.group(1)}://{m.group(2) or ''}{host}"
            changes.append(f"`{m.group(0)}` → `{new}`")
            return new

        def tool(m: re.Match[str]) -> str:
            host = self.kind_host.get(_TOOLS[m.group(1)])
            if host is None:
                return m.group(0)
            changes.append(f"`{m.group(1)} … {m.group(3)}` → `{m.group(1)} … {host}`")
            return f"{m.group(1)}{m.group(2)}{host}"

        s = _HOST_PORT.sub(port, s)
        s = _URL_NO_PORT.sub(url, s)
        return _TOOL_HOST.sub(tool, s)

    def env(self, env: ir.Env, changes: list[str]) -> ir.Env:
        out = []
        for k, v in env:
            new = self.text(v, changes)
            m = _HOST_VAR.fullmatch(k)
            if new in ("localhost", "127.0.0.1") and m:
                host = self.kind_host.get(_HOST_VARS.get(m.group(1), ""))
                if host is not None:
                    changes.append(f"`{k}={new}` → `{k}={host}`")
                    new = host
            out.append((k, new))
        return tuple(out)


def rewrite_localhost(job: ir.Job) -> tuple[ir.Job, list[Rewrite]]:
    """The job with `localhost` uses that mean a service pointed at that service's host."""
    ex = job.executor
    if ex.kind is not ir.ExecutorKind.DOCKER or len(ex.images) < 2:
        return job, []
    rw = _Rewriter(services(ex))
    rewrites: list[Rewrite] = []

    def env(e: ir.Env, span: object, where: str) -> ir.Env:
        changes: list[str] = []
        out = rw.env(e, changes)
        if changes:
            rewrites.append(Rewrite(span, where, tuple(changes)))
        return out

    job_env = env(job.environment, job.span, "job `environment`")
    images = list(ex.images)
    images[0] = dataclasses.replace(
        images[0], environment=env(images[0].environment, images[0].span,
                                   "primary image `environment`"))
    steps: list[ir.Step] = []
    for step in job.steps:
        if isinstance(step, ir.Run):
            changes: list[str] = []
            command = rw.text(step.command, changes)
            step_env = rw.env(step.environment, changes)
            if changes:
                rewrites.append(Rewrite(step.span, f"step {step.name!r}", tuple(changes)))
                step = dataclasses.replace(step, command=command, environment=step_env)
        steps.append(step)
    if not rewrites:
        return job, []
    new_ex = dataclasses.replace(ex, images=tuple(images))
    return dataclasses.replace(job, executor=new_ex, environment=job_env,
                               steps=tuple(steps)), rewrites


def report_services(diags: Diagnostics, job: ir.Job, svcs: list[Service],
                    rewrites: list[Rewrite], platform: str, *, published: bool = False) -> None:
    """Say where each service is reachable and what was rewritten (codes in diagnostics.md).

    `published`: the job runs on the VM and services publish their known ports on localhost.
    """
    if published:
        for s in svcs:
            if not s.ports:
                diags.warning(
                    "service-unknown-port",
                    f"service image `{s.image.image}` has no known port, so none is published:"
                    f" add its `ports:` on {platform} for it to be reachable on `localhost`",
                    s.image.span,
                )
        return
    for rw in rewrites:
        diags.warning(
            "service-rewrite",
            f"{rw.where}: {', '.join(dict.fromkeys(rw.changes))} (on CircleCI services share"
            f" `localhost`; on {platform} each service is its own host)",
            rw.span,  # type: ignore[arg-type]
        )
    known = [s for s in svcs if s.ports]
    if known:
        where = ", ".join(f"`{s.host}:{s.ports[0]}`" for s in known)
        diags.warning(
            "service-hostname",
            f"job {job.name!r}: on {platform} its services are reachable as {where}, not on"
            " `localhost`; uses in this config are rewritten, but files of the repository"
            " (database settings, test fixtures) that connect to `localhost` must use these"
            " hosts",
            known[0].image.span,
        )
    for s in svcs:
        if not s.ports:
            diags.warning(
                "service-unknown-port",
                f"service image `{s.image.image}` has no known port: on {platform} it is"
                f" reachable as `{s.host}`, not `localhost`, and `localhost` uses meant for it"
                " are not rewritten; point its clients at that host",
                s.image.span,
            )


def entrypoint_script(img: ir.DockerImage, log: str) -> str | None:
    """A background start of the primary image's own `entrypoint`/`command`, or None.

    CircleCI runs them as the primary container's main process and runs the steps beside it;
    GitHub and GitLab start the job container with their own command, so it is started first.
    """
    args = list(img.entrypoint) + list(img.command)
    # A bare shell (`entrypoint: [/bin/sh, -c]`, no command) has nothing to start: it only
    # asks for steps to run in a shell, which they do.
    if not args or (not img.command and args[0].rsplit("/", 1)[-1] in _SHELLS):
        return None
    return (f"nohup {shlex.join(args)} > {log} 2>&1 &\n"
            f'echo "started the image\'s entrypoint in the background; output in {log}"\n')


def secret_reference(value: str) -> tuple[str, str | None]:
    """An `auth` value: `$NAME` / `${NAME}` → (`${{ secrets.NAME }}`, NAME); else literal."""
    m = re.fullmatch(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", value.strip())
    if m:
        return f"${{{{ secrets.{m.group(1)} }}}}", m.group(1)
    return value, None


def docker_run_args(svc: Service) -> tuple[str, ...]:
    """What follows `docker run -d --network host` to start a service as CircleCI would."""
    img = svc.image
    words: list[str] = []
    for k, v in img.environment:
        words += ["-e", f"{k}={v}"]
    if img.entrypoint:
        words += ["--entrypoint", img.entrypoint[0]]
    if img.user:
        words += ["--user", img.user]
    return (*words, img.image, *img.entrypoint[1:], *img.command)


def local_services(job: ir.Job) -> tuple[tuple[str, ...], ...]:
    """make/shell: each service as (host, docker run arguments...)."""
    if job.executor.kind is not ir.ExecutorKind.DOCKER:
        return ()
    return tuple((s.host, *docker_run_args(s)) for s in services(job.executor))


def report_local_services(diags: Diagnostics, job: ir.Job) -> None:
    """make/shell run jobs on this host: services start only with CICOMPILE_SERVICES=1."""
    svcs = services(job.executor) if job.executor.kind is ir.ExecutorKind.DOCKER else []
    if not svcs:
        return
    # `--network host` gives what CircleCI gives: the service listens on localhost.
    commands = [shlex.join(["docker", "run", "-d", "--rm", "--name", s.host, "--network", "host",
                            *docker_run_args(s)]) for s in svcs]
    diags.warning(
        "local-services",
        f"job {job.name!r}: the make and shell targets run jobs on this host and start its"
        " service containers only with CICOMPILE_SERVICES=1 (with docker, on the host network,"
        " so they listen on localhost as on CircleCI); otherwise start them first: "
        + "; ".join(f"`{c}`" for c in commands),
        svcs[0].image.span,
    )
