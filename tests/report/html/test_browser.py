"""The report in a real browser (headless Chromium driven by Selenium): it renders with the
network off, makes no request, logs no error, draws every chart, sorts and filters, and shows
the Profile/Estimate numbers it was built from.

Needs Debian's ``chromium`` and ``chromium-driver`` (``make test`` installs them).
"""

import json
import shutil

import pytest

from edgefit.report.html import html_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs chromium and chromium-driver (apt-get install)"),
]


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"):
        opts.add_argument(arg)
    opts.binary_location = CHROMIUM
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
        "offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0})
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page(browser, digits_pair, tmp_path_factory):
    dense, small, _ = digits_pair
    out = tmp_path_factory.mktemp("page") / "report.html"
    res = html_report([dense, small], out, devices=("stm32f746", "jetson_orin_nano"), dataset="digits")
    browser.get_log("performance")  # drop what came before
    browser.get(out.as_uri())
    return res


def test_loads_offline_without_requests_or_errors(browser, page):
    assert browser.execute_script("return document.readyState") == "complete"
    assert browser.title.startswith("edgefit report")
    urls = [json.loads(e["message"])["message"]["params"]["request"]["url"] for e in browser.get_log("performance")
            if json.loads(e["message"])["message"]["method"] == "Network.requestWillBeSent"]
    assert urls and all(u.startswith("file://") for u in urls), urls  # only the page itself
    assert [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")] == []


def test_every_chart_is_drawn(browser, page):
    charts = browser.execute_script("""
        return Array.from(document.querySelectorAll('svg.chart')).map(s => {
            const r = s.getBoundingClientRect();
            return [s.dataset.chart, r.width, r.height, s.querySelectorAll('.pt, .bar').length];
        });""")
    kinds = [c[0] for c in charts]
    assert kinds.count("roofline") == 2 and kinds.count("bars") == 4
    assert all(w > 100 and h > 50 and n > 0 for _, w, h, n in charts), charts
    from edgefit.report.html.svg import plottable

    rooflines = [c for c in charts if c[0] == "roofline"]
    for chart, dev in zip(rooflines, ("stm32f746", "jetson_orin_nano"), strict=True):
        assert chart[3] == sum(plottable(r) for res in page.results for r in res.estimates[dev].layers)


def test_numbers_on_the_page_are_the_profile_and_estimate(browser, page):
    shown = browser.execute_script("""
        const out = {};
        document.querySelectorAll('.metric[data-v]').forEach(m => {
            out[m.dataset.model + '|' + m.dataset.metric] = [m.dataset.v, m.querySelector('.v') ?
                m.querySelector('.v').textContent : ''];
        });
        return out;""")
    for i, res in enumerate(page.results):
        t = res.profile.totals
        assert shown[f"{i}|params"] == [repr(t.params), f"{t.params:,}"]
        assert shown[f"{i}|macs"] == [repr(t.macs), f"{t.macs:,}"]
        assert shown[f"{i}|file_bytes"] == [repr(res.file_bytes), f"{res.file_bytes:,} B"]
        assert shown[f"{i}|accuracy"] == [repr(res.accuracy), f"{100 * res.accuracy:.2f}%"]
        for dev, est in res.estimates.items():
            assert float(shown[f"{i}|seconds@{dev}"][0]) == est.totals.seconds
            assert float(shown[f"{i}|joules@{dev}"][0]) == est.totals.joules


def test_layer_table_sorts_and_filters(browser, page):
    from selenium.webdriver.common.by import By

    def column(i):
        return browser.execute_script(
            f"return Array.from(document.querySelectorAll('#layers-0 tbody tr'))"
            f".filter(r => r.style.display !== 'none').map(r => r.cells[{i}].dataset.v || r.cells[{i}].textContent);")

    macs_header = browser.find_element(By.CSS_SELECTOR, '#layers-0 th[data-col="5"]')
    original = [int(v) for v in column(5)]
    assert original == [r.macs for r in page.results[0].profile.layers]
    macs_header.click()
    assert [int(v) for v in column(5)] == sorted(original)
    assert macs_header.get_attribute("aria-sort") == "ascending"
    macs_header.click()
    assert [int(v) for v in column(5)] == sorted(original, reverse=True)
    browser.find_element(By.CSS_SELECTOR, '#layers-0 th[data-col="0"]').click()
    assert column(0) == sorted(r.name for r in page.results[0].profile.layers)
    box = browser.find_element(By.CSS_SELECTOR, 'input.filter[data-table="layers-0"]')
    box.send_keys("classifier.2")
    assert column(0) == ["classifier.2"]
    box.clear()
    box.send_keys(" ")  # an empty query shows every row again
    assert len(column(0)) == len(page.results[0].profile.layers)


def test_hostile_names_stay_text(browser, tmp_path):
    from torch import nn

    from edgefit.report.html import ReportModel

    net = nn.Sequential()
    net.add_module("<script>alert(1)</script>", nn.Linear(4, 2))
    out = tmp_path / "x.html"
    html_report([ReportModel("<b>m</b>", net, ((1, 4),))], out, devices=("stm32f746",), measure=False)
    browser.get(out.as_uri())  # an alert would make the next call raise
    assert "<script>alert(1)</script>" in browser.find_element("css selector", "#layers-0 tbody").text
    assert browser.find_element("css selector", ".card h3").text == "<b>m</b>"
