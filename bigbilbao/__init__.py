"""Big Bilbao: city-intelligence stream processor (Kafka -> Spark -> Delta -> balanced scorecard)."""

__version__ = "0.1.0"


def _unpack_shipped_zip() -> None:
    """Imported from a zip (spark-submit --py-files): unpack it once, so packaged resources are plain files."""
    import hashlib
    import os
    import tempfile
    import zipfile
    from pathlib import Path

    archive = getattr(__loader__, "archive", None)  # set by zipimport only
    if archive is None or Path(__file__).parent.is_dir():
        return
    digest = hashlib.sha256(Path(archive).read_bytes()).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / f"bigbilbao-{digest}"
    if not (target / "bigbilbao" / "__init__.py").is_file():
        partial = Path(tempfile.mkdtemp(prefix="bigbilbao-unpack-"))
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(partial, [n for n in zipped.namelist() if n.startswith("bigbilbao/")])
        try:
            os.rename(partial, target)
        except OSError:  # another process unpacked the same zip first
            import shutil

            shutil.rmtree(partial, ignore_errors=True)
    __path__[:] = [str(target / "bigbilbao")]


_unpack_shipped_zip()
