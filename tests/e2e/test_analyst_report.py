"""`bigbilbao report` in a real headless browser, and the analysts' commands' help and error messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bigbilbao.report import svg as report_svg
from bigbilbao.scorecard import view as scorecard_view
from tests.browser import colours, ensure_chromium, screenshot
from tests.demo_lake import DemoLake, demo_lake, run_cli  # noqa: F401 - the shared session fixture

DISTRICTS = ("Deusto", "Uribarri", "Otxarkoaga-Txurdinaga", "Begoña", "Ibaiondo", "Abando", "Errekalde",
             "Basurtu-Zorrotza")


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium, installed by the test set-up when missing."""
    return ensure_chromium()


@pytest.mark.parametrize("command", [["report"], ["catalog"]])
def test_analyst_commands_have_help(command: list[str]) -> None:
    proc = run_cli(*command, "--help", timeout=60)
    assert proc.returncode == 0 and "usage: bigbilbao" in proc.stdout


def test_report_without_a_lakehouse_is_one_sentence(tmp_path: Path) -> None:
    config = tmp_path / "bigbilbao.yaml"
    config.write_text(f"lakehouse: {{path: '{tmp_path / 'empty'}'}}\nfeeds: [{{name: noise}}]\n")
    for command in (["report", "--out", str(tmp_path / "out")], ["catalog"]):
        proc = run_cli(*command, "--config", str(config), timeout=60)
        assert proc.returncode == 2, proc.stderr
        message = proc.stderr.strip().splitlines()[-1]
        assert message.startswith("bigbilbao: error: ") and "Traceback" not in proc.stderr
        assert "run the pipeline first" in message or "bigbilbao run" in message


def test_score_bands_and_sparkline() -> None:
    assert [scorecard_view.score_status(s) for s in (100, 75, 74.9, 50, 10, None)] == \
        ["green", "green", "amber", "amber", "red", "no_data"]
    line = report_svg.sparkline([1.0, None, 3.0, 2.0])
    points = re.search(r'points="([^"]+)"', line).group(1).split()
    assert len(points) == 3, "a gap is skipped"
    assert "<polyline" not in report_svg.sparkline([None, None])


@pytest.mark.integration
def test_report_renders_in_a_real_browser(demo_lake: DemoLake, chromium: str, tmp_path: Path) -> None:
    out = tmp_path / "report"
    proc = run_cli("report", "--out", str(out), "--config", str(demo_lake.config), timeout=120)
    assert proc.returncode == 0, proc.stderr
    page = (out / "index.html").read_text(encoding="utf-8")
    assert all(name in page for name in DISTRICTS), [n for n in DISTRICTS if n not in page]
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|@import|url\(""", page), "no external resources"
    assert "http://" not in page and "https://" not in page
    assert page.count('class="district"') == 8 and "Data freshness" in page
    assert page.count("<polyline") + page.count('class="spark"') > 0 and "exceedances used / allowed" in page
    overall = scorecard_view.scores(demo_lake.lakehouse, period="month")
    overall = overall[(overall["area_level"] == "district") & (overall["perspective"] == "overall")]
    fills = dict(re.findall(r'class="district" data-code="([^"]+)" d="[^"]*" fill="(#[0-9a-f]{6})"', page))
    expected = {code: report_svg.colour(status) for code, status in zip(overall["area_code"], overall["status"])}
    assert len(fills) == 8 and all(fills[code] == colour for code, colour in expected.items())
    png = tmp_path / "report.png"
    shot = screenshot(chromium, out / "index.html", png)
    assert shot.returncode == 0 and png.is_file(), shot.stderr[-2000:]
    counts = colours(png)
    background, most = max(counts.items(), key=lambda kv: kv[1])
    assert sum(counts.values()) - most > 0.2 * sum(counts.values()), "the screenshot is (nearly) blank"
    status_colours = {bytes.fromhex(c[1:]) for s, c in report_svg.STATUS_COLOURS.items() if s}
    assert sum(counts.get(c, 0) for c in status_colours) > 500, "the district map should be painted"
