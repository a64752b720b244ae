"""Java checks and JVM jar resolution: Maven (honouring the user's settings.xml) or Spark's own Ivy."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from bigbilbao.errors import DependencyError, JavaError

log = logging.getLogger(__name__)

RESOURCES = Path(__file__).resolve().parents[1] / "resources"
BUNDLES = {"spark": RESOURCES / "spark-pom.xml", "kafka": RESOURCES / "kafka-pom.xml"}
MIN_JAVA = 17
_JAR_NAME = re.compile(r"^(?P<artifact>.+?)-(?P<version>\d[\w.\-]*)\.jar$")


def java_executable() -> str:
    """Path of the java binary: $JAVA_HOME/bin/java when JAVA_HOME is set, else java on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = Path(home) / "bin" / "java"
        if not candidate.is_file():
            msg = (f"JAVA_HOME is {home}, but {candidate} does not exist; "
                   f"point JAVA_HOME at a Java {MIN_JAVA}+ installation or unset it.")
            raise JavaError(msg)
        return str(candidate)
    found = shutil.which("java")
    if not found:
        msg = (f"Java was not found; install Java {MIN_JAVA} or newer "
               "(e.g. `apt-get install openjdk-17-jre-headless`) or set JAVA_HOME.")
        raise JavaError(msg)
    return found


def java_version(java: str | None = None) -> int:
    """Major version of the Java that Spark and the broker will use."""
    java = java or java_executable()
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60, check=False)
    except OSError as exc:
        msg = f"Java at {java} could not be started ({exc}); install Java {MIN_JAVA}+ or fix JAVA_HOME."
        raise JavaError(msg) from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        msg = f"Could not read the version of Java at {java}; install Java {MIN_JAVA}+ or fix JAVA_HOME."
        raise JavaError(msg)
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def require_java() -> str:
    """Fail with one sentence unless Java 17+ is available; return the java binary."""
    java = java_executable()
    major = java_version(java)
    if major < MIN_JAVA:
        msg = (f"Java {major} found at {java}, but Spark 4 and Kafka 4 need Java {MIN_JAVA} or newer; "
               "install it and set JAVA_HOME.")
        raise JavaError(msg)
    return java


def jar_dir(jars_root: Path, bundle: str) -> Path:
    """Folder holding one resolved bundle of jars."""
    return jars_root / bundle


def ensure_jars(jars_root: Path, bundle: str, quiet: bool = False) -> list[Path]:
    """Resolve a bundle once (later calls reuse the cache) and return its jars."""
    if bundle not in BUNDLES:
        msg = f"Unknown jar bundle '{bundle}'; expected one of {sorted(BUNDLES)}."
        raise DependencyError(msg)
    target = jar_dir(jars_root, bundle)
    stamp = target / ".resolved"
    pom = BUNDLES[bundle]
    if stamp.is_file() and stamp.read_text() == pom.read_text():
        return sorted(target.glob("*.jar"))
    require_java()
    if not quiet:
        print(f"Resolving {bundle} jars into {target} (once; cached afterwards)...", file=sys.stderr, flush=True)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    if shutil.which("mvn"):
        _resolve_with_maven(pom, partial)
    else:
        _resolve_with_ivy(pom, partial)
    (partial / ".resolved").write_text(pom.read_text())
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return sorted(target.glob("*.jar"))


def _resolve_with_maven(pom: Path, out: Path) -> None:
    """mvn dependency:copy-dependencies; mirrors, proxies and credentials come from ~/.m2/settings.xml."""
    cmd = ["mvn", "-B", "-q", "-f", str(pom), "dependency:copy-dependencies",
           f"-DoutputDirectory={out}", "-DincludeScope=runtime"]
    _run_resolver(cmd, "Maven")


def _resolve_with_ivy(pom: Path, out: Path) -> None:
    """Fallback without Maven: the Apache Ivy jar that pyspark ships, one dependency at a time."""
    ivy = next((Path(__import__("pyspark").__file__).parent / "jars").glob("ivy-*.jar"), None)
    if ivy is None:
        msg = "Neither Maven (mvn) nor pyspark's Ivy jar is available to resolve JVM jars; install Maven."
        raise DependencyError(msg)
    for group, artifact, version in _pom_dependencies(pom):
        cmd = [require_java(), "-jar", str(ivy), "-m2compatible", "-dependency", group, artifact, version,
               "-confs", "default", "-retrieve", f"{out}/[artifact]-[revision](-[classifier]).[ext]"]
        settings = os.environ.get("BIGBILBAO_IVY_SETTINGS")
        if settings:
            cmd[3:3] = ["-settings", settings]
        _run_resolver(cmd, "Ivy")


def _pom_dependencies(pom: Path) -> list[tuple[str, str, str]]:
    """(groupId, artifactId, version) of each dependency declared in a bundle's pom."""
    text = pom.read_text()
    blocks = re.findall(r"<dependency>(.*?)</dependency>", text, flags=re.S)
    return [tuple(re.search(f"<{tag}>(.*?)</{tag}>", b).group(1).strip()  # type: ignore[misc]
                  for tag in ("groupId", "artifactId", "version")) for b in blocks]


def _run_resolver(cmd: list[str], tool: str) -> None:
    """Run a resolver and turn its failure into one sentence with the fix."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        msg = f"{tool} could not resolve the JVM jars ({exc}); check your network or Maven mirror settings."
        raise DependencyError(msg) from exc
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "ERROR" in ln or "FAILED" in ln]
        first = lines[0].replace("[ERROR]", "").strip()[:300] if lines else f"exit code {proc.returncode}"
        msg = (f"{tool} could not download the JVM jars ({first}); check the network, or configure a mirror "
               "or proxy in ~/.m2/settings.xml, then run the command again.")
        raise DependencyError(msg)


def spark_extra_jars(jars_root: Path) -> list[Path]:
    """Jars Spark needs beyond pyspark's own, skipping artifacts pyspark already ships."""
    import pyspark

    shipped = {_artifact(p.name) for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    return [p for p in ensure_jars(jars_root, "spark") if _artifact(p.name) not in shipped]


def _artifact(filename: str) -> str:
    """Artifact name of a jar file name without its version."""
    match = _JAR_NAME.match(filename)
    return match.group("artifact") if match else filename
