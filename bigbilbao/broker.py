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

from bigbilbao import jvm
from bigbilbao.errors import BrokerError
from bigbilbao.settings import Settings

log = logging.getLogger(__name__)

LOG4J = Path(__file__).parent / "resources" / "broker-log4j2.properties"
SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
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


@dataclass(frozen=True)
class BrokerInfo:
    """What `broker status` reports and other processes use to reach a running embedded broker."""

    pid: int
    port: int
    controller_port: int
    home: str
    log_file: str

    @property
    def bootstrap(self) -> str:
        """Bootstrap address for clients."""
        return f"127.0.0.1:{self.port}"


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
    config, port, controller_port = _write_config(settings, home)
    classpath = f"{jars}{os.sep}*"
    _format_storage(java, classpath, config, home)
    log_file = home / "broker.log"
    cmd = [java, f"-Xmx{settings.broker.heap}", "-Xms64m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
           f"-Dlog4j2.configurationFile={LOG4J}", "-cp", classpath, "kafka.Kafka", str(config)]
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=home)
    info = BrokerInfo(proc.pid, port, controller_port, str(home), str(log_file))
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


def _write_config(settings: Settings, home: Path) -> tuple[Path, int, int]:
    """Write server.properties once; later starts keep the same ports, since KRaft records them."""
    config = home / "server.properties"
    ports = home / "ports.json"
    if ports.is_file():
        port, controller_port = json.loads(ports.read_text())
    else:
        port = settings.broker.port or _free_port()
        controller_port = _free_port(exclude=port)
        ports.write_text(json.dumps([port, controller_port]))
    for p in (port, controller_port):
        if _port_open(p):
            msg = f"Port {p} of the embedded broker in {home} is taken by another process; stop it or delete {ports}."
            raise BrokerError(msg)
    config.write_text(SERVER_PROPERTIES.format(port=port, controller_port=controller_port,
                                               data_dir=home / "data", partitions=settings.kafka.partitions))
    return config, port, controller_port


def _format_storage(java: str, classpath: str, config: Path, home: Path) -> None:
    """Format the KRaft storage directory the first time only."""
    if (home / "data" / "meta.properties").is_file():
        return
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    cmd = [java, "-Xmx256m", f"-Dlog4j2.configurationFile={LOG4J}", "-cp", classpath,
           "kafka.tools.StorageTool", "format", "--standalone", "-t", cluster_id, "-c", str(config)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        msg = f"Formatting the embedded broker's storage in {home} failed: {detail[0]}"
        raise BrokerError(msg)


def _wait_ready(info: BrokerInfo, proc: subprocess.Popen, timeout_s: float) -> None:
    """Wait until the broker answers metadata requests, or fail with the log's last line."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            msg = f"The embedded Kafka broker exited with code {proc.returncode}; see {info.log_file}: {_last_error(info)}"
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


def _free_port(exclude: int = 0) -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port != exclude:
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
