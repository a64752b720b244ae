"""Boundary files from wherever they are: local paths, http(s) URLs (with Shapefile sidecars) and zip archives."""

from __future__ import annotations

import logging
import shutil
import tempfile
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bigbilbao.errors import BoundaryError

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 120
SHAPEFILE_SIDECARS = (".shx", ".dbf", ".prj", ".cpg")


def source_label(path_or_url: str | Path) -> str:
    """Record URLs as given and files by absolute path, for lineage."""
    text = str(path_or_url)
    return text if is_url(text) else str(Path(text).expanduser().resolve())


def is_url(text: str) -> bool:
    """True for http(s) addresses, which are downloaded; anything else is a local path."""
    return urllib.parse.urlparse(text).scheme in ("http", "https")


@contextmanager
def local_file(path_or_url: str) -> Iterator[Path]:
    """Yield a readable local GeoJSON/Shapefile: download URLs, unpack .zip archives, clean up afterwards."""
    scratch = Path(tempfile.mkdtemp(prefix="bigbilbao-boundaries-"))
    try:
        path = _download(path_or_url, scratch) if is_url(path_or_url) else Path(path_or_url).expanduser()
        if not path.is_file():
            message = f"boundary file {str(path)!r} does not exist; check the path"
            raise BoundaryError(message)
        if path.suffix.lower() == ".zip":
            path = _unzip(path, scratch / "unzipped")
        yield path
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _download(url: str, folder: Path) -> Path:
    """Fetch a URL (and, for a .shp, its sidecar files) into `folder` with urllib."""
    name = Path(urllib.parse.urlparse(url).path).name or "boundaries.geojson"
    target = folder / name
    _fetch(url, target, required=True)
    if target.suffix.lower() == ".shp":
        for suffix in SHAPEFILE_SIDECARS:
            sidecar_url = url[: -len(".shp")] + suffix
            _fetch(sidecar_url, target.with_suffix(suffix), required=suffix in (".shx", ".dbf"))
    return target


def _fetch(url: str, target: Path, required: bool) -> None:
    """Download one file; a missing optional sidecar (.prj, .cpg) is not an error."""
    log.info("downloading %s", url)
    try:
        with (urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response,  # noqa: S310 - http(s) only
              target.open("wb") as out):
            shutil.copyfileobj(response, out)
    except OSError as exc:
        target.unlink(missing_ok=True)
        if required:
            message = f"could not download {url}: {exc}"
            raise BoundaryError(message) from exc


def _unzip(archive: Path, folder: Path) -> Path:
    """Extract an archive and return its one boundary file (.shp preferred over GeoJSON)."""
    try:
        with zipfile.ZipFile(archive) as handle:
            handle.extractall(folder)
    except (OSError, zipfile.BadZipFile) as exc:
        message = f"archive {archive.name!r} cannot be unpacked: {exc}"
        raise BoundaryError(message) from exc
    for suffixes in ((".shp",), (".geojson", ".json")):
        found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in suffixes and "__MACOSX" not in p.parts)
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = [p.name for p in found]
            message = f"archive {archive.name!r} holds several layers ({names}); unpack it and pass one"
            raise BoundaryError(message)
    message = f"archive {archive.name!r} holds no Shapefile or GeoJSON"
    raise BoundaryError(message)
