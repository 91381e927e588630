"""The page's routes: the HTML, its assets from the package (nothing from elsewhere), the
vendored chart library with its license. What the page does is tested in a real browser
(tests/integration/test_page_live.py)."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from federation.router.page import STATIC, UPLOT_VERSION
from tests.unit.test_router import fake_shards, router


class _Assets(HTMLParser):
    """Every address the HTML loads or links to (src, href)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]


def page_assets() -> list[str]:
    parser = _Assets()
    parser.feed((STATIC / "index.html").read_text())
    return [u for u in parser.urls if urlsplit(u).path.startswith("/static/")]


async def test_page_index_is_html_revalidated_on_each_load() -> None:
    async with router(fake_shards()) as client:
        response = await client.get("/", params={"pair": "btcusd", "window": "-1h"})
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"
    assert "<title>Crypto price federation</title>" in response.text


def test_page_loads_nothing_from_another_host() -> None:
    parser = _Assets()
    parser.feed((STATIC / "index.html").read_text())
    assert [u for u in parser.urls if urlsplit(u).netloc] == []


@pytest.mark.parametrize("path", page_assets(), ids=lambda p: p.rsplit("/", 1)[-1])
async def test_page_assets_are_served_by_the_router(path: str) -> None:
    async with router(fake_shards()) as client:
        response = await client.get(path)
    assert response.status_code == 200
    assert response.content == (STATIC / path.removeprefix("/static/")).read_bytes()


async def test_page_missing_asset_is_a_json_404() -> None:
    async with router(fake_shards()) as client:
        response = await client.get("/static/nope.js")
    assert (response.status_code, response.json()["code"]) == (404, "http_error")


def test_page_chart_library_is_the_pinned_uplot_with_its_license() -> None:
    vendor = STATIC / "vendor" / "uplot"
    header = (vendor / "uPlot.iife.min.js").read_text().splitlines()[0]
    assert header == f"/*! https://github.com/leeoniya/uPlot (v{UPLOT_VERSION}) */"
    assert (vendor / "LICENSE").read_text().startswith("The MIT License (MIT)")
