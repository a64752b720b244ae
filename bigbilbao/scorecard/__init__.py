"""The balanced scorecard, pure (no Spark): the KPI catalogue (model, checks, loading), exact statistics, data
capture, EU exceedances, reporting periods, population, scoring, and the published tables (store, view, show).

May import: `contracts`, `tables.read`, `config`, `errors`. Works on pandas frames read with delta-rs.
"""

from bigbilbao import lazy_exports

_EXPORTS = {
    "ALL_FEEDS": "kpi_model", "Catalogue": "kpi_model", "Kpi": "kpi_model",
    "DEFAULT_CATALOGUE": "catalogue", "load_catalogue": "catalogue", "parse_catalogue": "catalogue",
    "KPI_COLUMNS": "compute", "Scorecard": "compute", "compute_scorecard": "compute",
    "daily_means": "exceedances", "eaqi_bands": "exceedances", "exceedance_flags": "exceedances",
    "max_daily_8h_means": "exceedances", "rolling_means": "exceedances",
    "required_sources": "inputs",
    "PERIODS": "periods", "Span": "periods", "reporting_periods": "periods",
    "Population": "population", "load_population": "population", "parse_population": "population",
    "OVERALL": "view", "SCORE_BANDS": "view", "history": "view", "score_status": "view", "scorecard": "view",
    "scores": "view",
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
