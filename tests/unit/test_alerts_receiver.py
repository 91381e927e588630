"""The demo receiver (``python -m alerts receive``) over real HTTP on loopback."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import httpx
import pytest

from alerts.__main__ import make_handler
from alerts.signing import HEADER, signature

BODY = b'{"event_id": "e1", "value": 350.0}'


@pytest.fixture
def url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler("s3cret"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


def post(url: str, secret: str) -> int:
    headers = {HEADER: signature(secret, BODY, int(time.time())), "X-Alert-Event-Id": "e1"}
    return httpx.post(url, content=BODY, headers=headers).status_code


def test_receiver_prints_a_signed_alert_once(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert [post(url, "s3cret"), post(url, "s3cret")] == [204, 204]
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line) for line in lines] == [{"signature": "ok", **json.loads(BODY)}]


def test_receiver_refuses_a_forged_alert(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert post(url, "guessed") == 401
    assert capsys.readouterr().out == ""
