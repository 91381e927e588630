"""The page in headless Chromium against a real stack: two influxd shards, a day of
simulated prices written by the ingester's writer, the router on uvicorn.

The oracle of what the chart holds is the router's own ``GET /{pair}`` answer; the page
exposes what uPlot holds as ``pageState.chartPoints()``. Screenshots go to the test
artifacts dir; ``UPDATE_DOC_SCREENSHOT=1`` also writes the README's docs/img/page.png.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pandas as pd
import pytest
from playwright.sync_api import Browser, expect

from federation.core.clock import now_ms
from federation.core.shardmap import ShardMap
from federation.core.timefmt import iso_time
from federation.router.app import create_app
from federation.router.settings import RouterSettings
from federation.tools.localcluster import LocalCluster
from ingest.simulated import SimulatedMarket
from ingest.writer import ShardWriter
from tests.browser import Tab, chromium, uvicorn_thread
from tests.integration.conftest import clients_for, make_cluster, shard_map_for

pytestmark = pytest.mark.integration

DOC_SCREENSHOT = Path(__file__).parents[2] / "docs" / "img" / "page.png"
SERIES = 60
OFFSET_MS = 30_000  # points half a minute off the minute; see settled()


@dataclass
class Stack:
    local: LocalCluster
    shard_map: ShardMap
    url: str
    market: SimulatedMarket


async def write(shard_map: ShardMap, frames: Iterator[pd.DataFrame]) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        writer = ShardWriter(shard_map, await clients_for(shard_map, http))
        for frame in frames:
            report = await writer.write(frame.assign(time=frame["time"] - OFFSET_MS))
            assert not report.failed


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("page")
    with make_cluster(root / "cluster", 2) as local:
        shard_map = shard_map_for(local)
        end = now_ms() // 60_000 * 60_000
        market = SimulatedMarket(SERIES)
        asyncio.run(write(shard_map, market.history(end - 86_400_000, end + 1)))
        # The hot cache off: the page is checked against the shards' answer as it is now
        # (new points, a stopped shard), where the cache's would be up to a refresh old.
        settings = RouterSettings(
            shard_timeout=2.0,
            rank_refresh_s=60,
            hot_cache_bytes=0,
            spool_dir=str(root / "spool"),
            alerts={"db_url": str(root / "alerts.sqlite3")},
        )
        with uvicorn_thread(create_app(shard_map, settings)) as url:
            wait_for_rank_table(url)
            yield Stack(local, shard_map, url, market)


def wait_for_rank_table(url: str) -> None:
    for _ in range(300):
        if "rank_as_of" in httpx.get(f"{url}/btcusd", timeout=30).json():
            return
        time.sleep(0.2)
    raise RuntimeError("the router never built its rank table")


def wait_until_ready(url: str) -> None:
    for _ in range(150):
        if httpx.get(f"{url}/ready", timeout=30).status_code == 200:
            return
        time.sleep(0.2)
    raise RuntimeError("a shard did not come back")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def tab(browser: Browser) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    yield Tab(context.new_page()).watch()
    context.close()


def settled() -> None:
    """Wait, if need be, until no point is within 5 s of a window's edge, so that the
    page's answer and the test's, a moment apart, cover the same points."""
    second = (time.time() * 1000 - (60_000 - OFFSET_MS)) % 60_000 / 1000
    if second > 55 or second < 5:
        time.sleep((65 - second) % 60)


def drawn(tab: Tab, path: str) -> dict[str, Any]:
    """Open ``path`` and wait for the page's answer to be drawn; its state."""
    tab.page.goto(path)
    tab.page.wait_for_function("document.body.dataset.state === 'drawn'")
    state: dict[str, Any] = tab.page.evaluate(
        "({view: pageState.view, pair: pageState.pair, window: pageState.window})"
    )
    return state


def chart_points(tab: Tab) -> list[list[Any]]:
    """What uPlot holds, as [ISO time, exchange, price] in time then exchange order."""
    points: list[list[Any]] = tab.page.evaluate("pageState.chartPoints()")
    return [[iso_time(t), exchange, price] for t, exchange, price in points]


def api_points(stack: Stack, pair: str, duration: str) -> list[list[Any]]:
    """The router's answer, from a request of the test's own, in the same shape."""
    body = httpx.get(f"{stack.url}/{pair}", params={"duration": duration}, timeout=30).json()
    return [[p["time"], p["exchange"], p["price"]] for p in body["prices"]]


def query_of(tab: Tab) -> dict[str, list[str]]:
    return parse_qs(urlsplit(tab.page.url).query)


@pytest.mark.parametrize(
    ("pair", "window"), [("btcusd", "-24h"), ("ethusd", "-1h")], ids=["btcusd-24h", "ethusd-1h"]
)
def test_page_chart_holds_the_pair_answer(stack: Stack, tab: Tab, pair: str, window: str) -> None:
    settled()
    drawn(tab, f"{stack.url}/?pair={pair}&window={window}")
    assert chart_points(tab) == api_points(stack, pair, window)
    assert tab.page.locator("#rank").inner_text().split("/")[1].isdigit()
    path = tab.screenshot(f"pair-{pair}{window}")
    if pair == "btcusd" and os.environ.get("UPDATE_DOC_SCREENSHOT"):
        shutil.copyfile(path, DOC_SCREENSHOT)
    assert tab.errors == []


def test_page_first_load_asks_for_the_pair_once(stack: Stack, tab: Tab) -> None:
    """The head starts the pair's request and the script takes it over."""
    asked: list[str] = []
    tab.page.on("request", lambda r: asked.append(urlsplit(r.url).path))
    drawn(tab, f"{stack.url}/?pair=ethusd&window=-6h")
    assert asked.count("/ethusd") == 1
    assert tab.page.evaluate("pageState.answer.pair") == "ethusd"


def test_page_switches_pair_and_window_in_the_url(stack: Stack, tab: Tab) -> None:
    drawn(tab, f"{stack.url}/?pair=btcusd&window=-24h")
    tab.page.get_by_label("Pair", exact=True).fill("ethusd")
    tab.page.get_by_label("Pair", exact=True).press("Enter")
    tab.page.wait_for_function("pageState.answer && pageState.answer.pair === 'ethusd'")
    settled()
    tab.page.get_by_role("button", name="1h", exact=True).click()
    tab.page.wait_for_function("pageState.answer.duration === '-1h'")
    assert query_of(tab) == {"view": ["pair"], "pair": ["ethusd"], "window": ["-1h"]}
    assert chart_points(tab) == api_points(stack, "ethusd", "-1h")
    assert tab.errors == []


def test_page_back_returns_to_the_previous_window(stack: Stack, tab: Tab) -> None:
    drawn(tab, f"{stack.url}/?pair=btcusd&window=-24h")
    tab.page.get_by_role("button", name="6h").click()
    tab.page.wait_for_function("pageState.answer.duration === '-6h'")
    tab.page.go_back()
    tab.page.wait_for_function("pageState.answer.duration === '-24h'")
    assert tab.page.get_by_role("button", name="24h").get_attribute("aria-pressed") == "true"
    assert tab.errors == []


def test_page_updates_without_a_reload(stack: Stack, tab: Tab) -> None:
    drawn(tab, f"{stack.url}/?pair=btcusd&window=-1h&refresh=1")
    tab.page.evaluate("window.sameDocument = true")
    fresh = now_ms()
    tick = stack.market.snapshot(fresh + OFFSET_MS)  # the next tick of every series
    # Playwright's sync API holds this thread's event loop: the write runs in another.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, write(stack.shard_map, iter([tick]))).result()
    tab.page.wait_for_function(f"pageState.chartPoints().some(p => p[0] === {fresh})")
    assert tab.page.evaluate("window.sameDocument") is True


def test_page_shows_a_stopped_shard_down_and_the_answer_partial(stack: Stack, tab: Tab) -> None:
    stopped = stack.shard_map.shards[1].name
    pairs = SimulatedMarket(SERIES).universe["pair"]
    pair = next(p for p in pairs if stack.shard_map.owners(p) == [stopped])
    stack.local.stop_shard(stopped)
    try:
        drawn(tab, f"{stack.url}/?view=shards")
        row = tab.page.locator(f"#shards tr[data-shard='{stopped}']")
        assert row.get_attribute("data-up") == "false"
        assert "down" in row.inner_text()
        tab.screenshot("shards-one-down")
        drawn(tab, f"{stack.url}/?pair={pair}&window=-1h")
        assert stopped in tab.page.locator("#partial").inner_text()
        tab.screenshot("pair-partial")
    finally:
        stack.local.start_shard(stopped)
        wait_until_ready(stack.url)  # the router reaches it again before the next test
    assert tab.errors == []


def test_page_shows_an_api_error_as_a_message(stack: Stack, tab: Tab) -> None:
    tab.page.goto(f"{stack.url}/?pair=nopeusd")
    tab.page.wait_for_function("document.body.dataset.state === 'error'")
    assert "'nopeusd' is not known" in tab.page.locator("#message").inner_text()
    assert all("404" in error for error in tab.errors)  # the browser logs the failed load


def test_page_alerts_send_the_key_and_create_then_delete(stack: Stack, tab: Tab) -> None:
    drawn(tab, f"{stack.url}/?view=alerts")
    page = tab.page
    page.get_by_label("API key").fill("k-test")
    page.get_by_role("button", name="Use key").click()
    page.get_by_label("Deliver to").select_option("email")
    page.get_by_label("Address").fill("watcher@example.com")
    with page.expect_request(lambda r: r.method == "POST") as posted:
        page.get_by_role("button", name="Subscribe").click()
    assert posted.value.headers["authorization"] == "Bearer k-test"
    row = page.locator("#subscriptions tbody tr", has_text="watcher@example.com")
    row.get_by_role("button", name="Events").click()
    expect(page.locator("#events")).to_contain_text("No alert yet.")
    tab.screenshot("alerts")
    row.get_by_role("button", name="Delete").click()
    expect(page.locator("#subscriptions")).to_contain_text("No subscriptions.")
    assert tab.errors == []


def test_page_fits_a_phone_width(stack: Stack, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    tab = Tab(context.new_page()).watch()
    drawn(tab, f"{stack.url}/?pair=btcusd&window=-6h")
    overflow = tab.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    tab.screenshot("pair-phone")
    context.close()
    assert overflow <= 0
    assert tab.errors == []
