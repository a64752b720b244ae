"""The static HTML scorecard report: its data model, what builds it from the lakehouse, the page and its inline
SVG.

Pure (no Spark). May import: `scorecard`, `spatial`, `tables`, `errors`.
"""

from bigbilbao import lazy_exports

_EXPORTS = {
    "ReportData": "model",
    "collect": "build", "districts": "build", "freshness": "build", "write_report": "build",
    "render_page": "render",
    "STATUS_COLOURS": "svg", "colour": "svg", "district_map": "svg", "sparkline": "svg",
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
