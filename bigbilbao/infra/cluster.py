"""A Spark standalone cluster from the installed pyspark (master + workers on one host), and spark-submit helpers.

    python -m bigbilbao.infra.cluster start --workers 2          # prints the master URL, runs until Ctrl-C
    python -m bigbilbao.infra.cluster package dist/bigbilbao.zip  # the package for spark-submit --py-files
    python -m bigbilbao.infra.cluster jars                        # the jars for spark-submit --jars
    python -m bigbilbao.infra.cluster submit jobs/silver.py   # run a job on spark.master with the zip shipped
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bigbilbao.config.settings import Settings, load_settings
from bigbilbao.errors import BigBilbaoError, PipelineError

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parents[1]
MASTER_URL = re.compile(r"Starting Spark master at (spark://\S+)")
WORKER_READY = "Successfully registered with master"
LOG4J = PACKAGE_DIR / "resources" / "spark-log4j2.properties"


def spark_home() -> Path:
    """The Spark distribution inside the installed pyspark package (bin/spark-submit, bin/spark-class)."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def package_zip(target: Path) -> Path:
    """Zip the bigbilbao package (code and resources) for `spark-submit --py-files`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for folder, dirs, files in os.walk(PACKAGE_DIR, followlinks=True):  # resources/schemas is a symlink
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                path = Path(folder) / name
                if path.suffix != ".pyc":
                    archive.write(path, Path("bigbilbao") / path.relative_to(PACKAGE_DIR))
    return target


def submit_jars(settings: Settings) -> list[Path]:
    """The jars a job needs beyond pyspark's (Delta, the Kafka source), resolved into jvm.jars_dir if missing."""
    from bigbilbao.infra import jvm

    return jvm.spark_extra_jars(settings.jars_path)


@dataclass
class StandaloneCluster:
    """A running master and its workers; `stop()` ends every daemon and the executors they launched."""

    master_url: str
    workdir: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM each daemon's process group, then SIGKILL whatever is left."""
        for proc in reversed(self.processes):
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in reversed(self.processes):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("Spark daemon %d did not stop in time; killing it", proc.pid)
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
        self.processes.clear()


def daemon_env(host: str, heap: str) -> dict[str, str]:
    """Environment of the daemons: loopback (or the given host) and a small heap."""
    env = dict(os.environ)
    env.update(SPARK_LOCAL_IP=host, SPARK_DAEMON_MEMORY=heap, SPARK_HOME=str(spark_home()))
    env.pop("PYSPARK_GATEWAY_PORT", None)
    return env


def start_cluster(workdir: Path, workers: int = 2, cores: int = 1, memory: str = "1g", host: str = "127.0.0.1",
                  heap: str = "256m", timeout_s: float = 120.0) -> StandaloneCluster:
    """Start a master on a free port and `workers` workers, and wait until every worker has registered."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = daemon_env(host, heap)
    master_log = workdir / "master.log"
    master = _daemon(["org.apache.spark.deploy.master.Master", "--host", host, "--port", "0",
                      "--webui-port", "0"], master_log, env)
    cluster = StandaloneCluster(master_url="", workdir=workdir, processes=[master])
    try:
        cluster.master_url = _wait_for(master, master_log, MASTER_URL, timeout_s).group(1)
        for i in range(workers):
            logfile = workdir / f"worker-{i}.log"
            worker = _daemon(["org.apache.spark.deploy.worker.Worker", "--host", host, "--port", "0",
                              "--webui-port", "0", "--cores", str(cores), "--memory", memory,
                              "--work-dir", str(workdir / f"worker-{i}"), cluster.master_url], logfile, env)
            cluster.processes.append(worker)
            _wait_for(worker, logfile, re.compile(WORKER_READY), timeout_s)
    except BaseException:
        cluster.stop()
        raise
    log.info("Spark standalone cluster at %s with %d workers (%d cores, %s each)", cluster.master_url, workers,
             cores, memory)
    return cluster


@contextlib.contextmanager
def standalone_cluster(workdir: Path, **options: object) -> Iterator[StandaloneCluster]:
    """A cluster for the duration of the block, stopped even when the block fails."""
    cluster = start_cluster(workdir, **options)  # type: ignore[arg-type]
    try:
        yield cluster
    finally:
        cluster.stop()


def submit_argv(master_url: str, job: Path, py_files: Sequence[Path], jars: Sequence[Path],
                job_args: Sequence[str] = (), conf: Mapping[str, str] | None = None,
                driver_memory: str = "1g") -> list[str]:
    """The spark-submit command line of one job (client mode: the jars must be on the driver at launch)."""
    argv = [str(spark_home() / "bin" / "spark-submit"), "--master", master_url, "--deploy-mode", "client",
            "--driver-memory", driver_memory, "--driver-java-options", f"-Dlog4j2.configurationFile={LOG4J}",
            "--jars", ",".join(str(j) for j in jars), "--py-files", ",".join(str(p) for p in py_files)]
    for key, value in (conf or {}).items():
        argv += ["--conf", f"{key}={value}"]
    return [*argv, str(job), *job_args]


def _daemon(args: list[str], logfile: Path, env: Mapping[str, str]) -> subprocess.Popen:
    """One Spark daemon through spark-class, in its own process group, logging to a file."""
    with logfile.open("wb") as out:
        return subprocess.Popen([str(spark_home() / "bin" / "spark-class"), *args], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=dict(env),
                                start_new_session=True)


def _wait_for(proc: subprocess.Popen, logfile: Path, pattern: re.Pattern[str], timeout_s: float) -> re.Match[str]:
    """Poll a daemon's log until the pattern appears; fail if the daemon exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        match = pattern.search(logfile.read_text(errors="replace"))
        if match:
            return match
        if proc.poll() is not None:
            msg = f"Spark daemon exited with code {proc.returncode} before it was ready; see {logfile}."
            raise PipelineError(msg)
        time.sleep(0.3)
    msg = f"Spark daemon was not ready after {timeout_s:.0f} s; see {logfile}."
    raise PipelineError(msg)


def _signal_group(proc: subprocess.Popen, sig: signal.Signals) -> None:
    """Signal the process group started for one daemon (the daemon and the executors it launched)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _interrupt(_signum: int, _frame: object) -> None:
    """SIGTERM stops the foreground cluster like Ctrl-C."""
    raise KeyboardInterrupt


def _serve(args: argparse.Namespace) -> int:
    """Run a cluster in the foreground until Ctrl-C or SIGTERM."""
    signal.signal(signal.SIGTERM, _interrupt)
    with standalone_cluster(Path(args.dir).resolve(), workers=args.workers, cores=args.cores,
                            memory=args.memory, host=args.host) as cluster:
        print(cluster.master_url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while all(p.poll() is None for p in cluster.processes):
                time.sleep(1)
    return 0


def _submit(args: argparse.Namespace) -> int:
    """Become the job's Python driver with the package zip shipped to executors (spark-submit's --py-files).

    The driver stays the parent of Spark's JVM (as with `python jobs/x.py`), so SIGTERM reaches the
    job's handler and stops it after the current micro-batch; spark-submit itself would stop the JVM first.
    """
    settings = load_settings(args.config)
    package = package_zip(Path(tempfile.mkdtemp(prefix="bigbilbao-submit-")) / "bigbilbao.zip")
    env = {**os.environ, "PYSPARK_SUBMIT_ARGS": f"--py-files {shlex.quote(str(package))} pyspark-shell"}
    argv = [sys.executable, args.job, *(["--config", args.config] if args.config else []), *args.job_args]
    log.info("submitting %s to %s with %s", args.job, settings.spark.master, package)
    os.execve(argv[0], argv, env)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bigbilbao.infra.cluster start|package|jars|submit`."""
    parser = argparse.ArgumentParser(prog="python -m bigbilbao.infra.cluster", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="run a local standalone cluster until Ctrl-C; prints the master URL")
    start.add_argument("--workers", type=int, default=2)
    start.add_argument("--cores", type=int, default=1, help="cores per worker")
    start.add_argument("--memory", default="1g", help="memory per worker for executors")
    start.add_argument("--host", default="127.0.0.1")
    start.add_argument("--dir", default=".bigbilbao/cluster", help="logs and worker folders")
    package = sub.add_parser("package", help="zip the bigbilbao package for --py-files")
    package.add_argument("target", nargs="?", default="dist/bigbilbao.zip")
    jars = sub.add_parser("jars", help="print the comma-separated jars for spark-submit --jars")
    jars.add_argument("--config", metavar="FILE", help="settings YAML (jvm.jars_dir)")
    job = sub.add_parser("submit", help="run a job on spark.master with the package zip shipped to executors")
    job.add_argument("--config", metavar="FILE", help="settings YAML, also passed to the job")
    job.add_argument("job", help="e.g. jobs/silver.py")
    job.add_argument("job_args", nargs=argparse.REMAINDER, help="arguments of the job, e.g. --until-idle")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "package":
            print(package_zip(Path(args.target)))
            return 0
        if args.command == "jars":
            print(",".join(str(j) for j in submit_jars(load_settings(args.config))))
            return 0
        if args.command == "submit":
            return _submit(args)
        return _serve(args)
    except BigBilbaoError as exc:
        print(f"cluster: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
