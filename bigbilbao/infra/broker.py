"""Embedded single-node KRaft Kafka broker on loopback, started from Maven jars, plus topic admin."""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from bigbilbao.config.settings import Settings
from bigbilbao.errors import BrokerError
from bigbilbao.infra import jvm

log = logging.getLogger(__name__)

LOG4J = Path(__file__).resolve().parents[1] / "resources" / "broker-log4j2.properties"
SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}{sasl_listener}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}{sasl_listener}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT{sasl_map}
log.dirs={data_dir}
num.partitions={partitions}
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=-1
log.segment.bytes=268435456
"""
# The SCRAM listener: credentials live in the cluster metadata (created by StorageTool format --add-scram),
# so this file holds no secret.
SASL_PROPERTIES = """\
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_plaintext.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule \
required;
"""
SASL_MECHANISM = "SCRAM-SHA-512"


@dataclass(frozen=True)
class BrokerInfo:
    """What `broker status` reports and other processes use to reach a running embedded broker."""

    pid: int
    port: int
    controller_port: int
    home: str
    log_file: str
    sasl_port: int | None = None

    @property
    def bootstrap(self) -> str:
        """Bootstrap address for clients."""
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap(self) -> str | None:
        """Bootstrap address of the SASL_PLAINTEXT (SCRAM-SHA-512) listener, when it is open."""
        return f"127.0.0.1:{self.sasl_port}" if self.sasl_port else None


def broker_home(settings: Settings) -> Path:
    """The embedded broker's own folder under the lakehouse."""
    return settings.lakehouse_path / "_broker"


def status(settings: Settings) -> BrokerInfo | None:
    """The running embedded broker for this lakehouse, or None."""
    state = broker_home(settings) / "broker.json"
    if not state.is_file():
        return None
    info = BrokerInfo(**json.loads(state.read_text()))
    if _alive(info.pid) and _port_open(info.port):
        return info
    return None


def start(settings: Settings) -> tuple[BrokerInfo, bool]:
    """Start the broker unless one already runs; returns (info, started_now)."""
    running = status(settings)
    if running:
        return running, False
    home = broker_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    java = jvm.require_java()
    jars = jvm.jar_dir(settings.jars_path, "kafka")
    jvm.ensure_jars(settings.jars_path, "kafka")
    config, port, controller_port, sasl_port = _write_config(settings, home)
    classpath = f"{jars}{os.sep}*"
    _format_storage(java, classpath, config, home, _scram_user(settings) if sasl_port else None)
    log_file = home / "broker.log"
    cmd = [java, f"-Xmx{settings.broker.heap}", "-Xms64m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
           f"-Dlog4j2.configurationFile={LOG4J}", "-cp", classpath, "kafka.Kafka", str(config)]
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=home)
    info = BrokerInfo(proc.pid, port, controller_port, str(home), str(log_file), sasl_port)
    _wait_ready(info, proc, settings.broker.start_timeout_s)
    (home / "broker.json").write_text(json.dumps(asdict(info)))
    log.info("embedded Kafka broker started on %s (pid %d, log %s)", info.bootstrap, info.pid, log_file)
    return info, True


def stop(settings: Settings, timeout_s: float = 30.0) -> bool:
    """Stop the embedded broker cleanly (SIGTERM, then SIGKILL after the timeout); False if none ran."""
    state = broker_home(settings) / "broker.json"
    if not state.is_file():
        return False
    info = BrokerInfo(**json.loads(state.read_text()))
    stopped = False
    if _alive(info.pid):
        os.kill(info.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _alive(info.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(info.pid):
            log.warning("broker pid %d ignored SIGTERM for %.0f s; killing it", info.pid, timeout_s)
            os.kill(info.pid, signal.SIGKILL)
        stopped = True
    state.unlink(missing_ok=True)
    return stopped


def _write_config(settings: Settings, home: Path) -> tuple[Path, int, int, int | None]:
    """Write server.properties (owner-only); later starts keep the same ports, since KRaft records them."""
    config = home / "server.properties"
    ports = home / "ports.json"
    saved = json.loads(ports.read_text()) if ports.is_file() else []
    port = saved[0] if saved else settings.broker.port or _free_port()
    controller_port = saved[1] if saved else _free_port(port)
    sasl_port = None
    if settings.broker.sasl_port is not None:
        sasl_port = saved[2] if len(saved) > 2 else settings.broker.sasl_port or _free_port(port, controller_port)
    chosen = [p for p in (port, controller_port, sasl_port) if p is not None]
    if chosen != saved:
        ports.write_text(json.dumps(chosen))
    for p in chosen:
        if _port_open(p):
            msg = f"Port {p} of the embedded broker in {home} is taken by another process; stop it or delete {ports}."
            raise BrokerError(msg)
    sasl = f",SASL_PLAINTEXT://127.0.0.1:{sasl_port}" if sasl_port else ""
    text = SERVER_PROPERTIES.format(port=port, controller_port=controller_port, data_dir=home / "data",
                                    partitions=settings.kafka.partitions, sasl_listener=sasl,
                                    sasl_map=",SASL_PLAINTEXT:SASL_PLAINTEXT" if sasl_port else "")
    config.touch(mode=0o600)
    config.chmod(0o600)
    config.write_text(text + (SASL_PROPERTIES if sasl_port else ""))
    return config, port, controller_port, sasl_port


def _scram_user(settings: Settings) -> tuple[str, str]:
    """(name, password) of the SCRAM user the SASL listener accepts; the password only from the environment."""
    name = settings.broker.sasl_password_env
    password = settings.broker_sasl_password()
    if not password:
        msg = (f"broker.sasl_port opens a SASL listener, whose password must be in the environment variable {name}; "
               f"set it (e.g. export {name}=$(openssl rand -hex 16)) or set broker.sasl_port to null.")
        raise BrokerError(msg)
    return settings.broker.sasl_username, password


def new_cluster_id() -> str:
    """A random KRaft cluster id (URL-safe base64 of a UUID) that does not start with '-'.

    StorageTool's argument parser would read an id like '-x3F...' after `-t` as an option and fail.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _format_storage(java: str, classpath: str, config: Path, home: Path, scram: tuple[str, str] | None) -> None:
    """Format the KRaft storage directory the first time only, creating the SCRAM user when one is given."""
    if (home / "data" / "meta.properties").is_file():
        return
    cluster_id = new_cluster_id()
    cmd = [java, "-Xmx256m", f"-Dlog4j2.configurationFile={LOG4J}", "-cp", classpath,
           "kafka.tools.StorageTool", "format", "--standalone", "-t", cluster_id, "-c", str(config)]
    if scram:
        cmd += ["--add-scram", f"{SASL_MECHANISM}=[name={scram[0]},password={scram[1]}]"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        if scram:
            detail = [detail[0].replace(scram[1], "***")]
        msg = f"Formatting the embedded broker's storage in {home} failed: {detail[0]}"
        raise BrokerError(msg)
    if scram:
        log.info("embedded broker: SCRAM user %s created for the SASL listener", scram[0])


def _wait_ready(info: BrokerInfo, proc: subprocess.Popen, timeout_s: float) -> None:
    """Wait until the broker answers metadata requests, or fail with the log's last line."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            msg = (f"The embedded Kafka broker exited with code {proc.returncode}; "
                   f"see {info.log_file}: {_last_error(info)}")
            raise BrokerError(msg)
        if _port_open(info.port) and _answers(info.bootstrap):
            return
        time.sleep(0.5)
    proc.kill()
    msg = f"The embedded Kafka broker did not become ready within {timeout_s:.0f} s; see {info.log_file}."
    raise BrokerError(msg)


def _answers(bootstrap: str) -> bool:
    """True when the broker serves metadata."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000, client_id="bigbilbao-probe")
    except (KafkaError, OSError):
        return False
    try:
        admin.list_topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def _last_error(info: BrokerInfo) -> str:
    lines = Path(info.log_file).read_text(errors="replace").splitlines()
    errors = [ln for ln in lines if "ERROR" in ln or "Exception" in ln]
    return (errors or lines or ["(empty log)"])[-1][:300]


def _free_port(*exclude: int) -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in exclude:
            return port


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
