"""Big Bilbao: city-intelligence stream processor (Kafka -> Spark -> Delta -> balanced scorecard)."""

from collections.abc import Callable
from typing import Any

__version__ = "0.1.0"


def _unpack_shipped_zip() -> None:
    """Imported from a zip (spark-submit --py-files): unpack it once, so packaged resources are plain files."""
    import hashlib
    import os
    import tempfile
    import zipfile
    from pathlib import Path

    archive = getattr(globals().get("__loader__"), "archive", None)  # set by zipimport only
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


def lazy_exports(package: str,
                 exports: dict[str, str]) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """`__all__`, `__getattr__` and `__dir__` for a subpackage that re-exports its modules' public names.

    Names load on first use (PEP 562), so importing one module of a package never imports the others, and a
    pure caller of a mixed package never starts pyspark by accident. `exports` maps a name to its module.
    """
    import importlib

    def __getattr__(name: str) -> Any:  # noqa: N807 - PEP 562 module attribute hook
        if name in exports:
            return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        if name in set(exports.values()):  # a submodule not imported yet
            return importlib.import_module(f"{package}.{name}")
        msg = f"module {package!r} has no attribute {name!r}"
        raise AttributeError(msg)

    def __dir__() -> list[str]:  # noqa: N807 - PEP 562 module dir hook
        return sorted({*exports, *exports.values()})

    return sorted(exports), __getattr__, __dir__


_unpack_shipped_zip()
