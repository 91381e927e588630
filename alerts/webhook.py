"""One webhook delivery: a signed JSON POST to the subscriber's URL, to an address the
:class:`~alerts.netguard.NetworkGuard` checked, within a hard deadline.

The request goes to the checked IP itself (the URL's host kept in ``Host`` and, for
https, in the TLS server name, so certificates are verified against the name), no
redirect is followed, no proxy from the environment is used, and the answer's body is
never read: only a 2xx status counts as delivered.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from alerts.errors import DeliveryFailed, TargetRefused
from alerts.netguard import NetworkGuard
from alerts.signing import HEADER, signature
from federation import __version__

USER_AGENT = f"crypto-federation-alerts/{__version__}"


def new_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        trust_env=False,
        follow_redirects=False,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
    )


async def post(
    http: httpx.AsyncClient,
    guard: NetworkGuard,
    url: str,
    body: bytes,
    *,
    secret: str,
    event_id: str,
    subscription_id: str,
    attempt: int,
    timeout_s: float,
) -> int:
    """POST ``body`` to ``url``; returns the status, raises DeliveryFailed otherwise."""
    try:
        target = httpx.URL(url)
        # The ASCII form of the name (punycode for an internationalised one) is what DNS,
        # the Host header and the TLS server name take.
        host = target.raw_host.decode("ascii")
        port = target.port or (443 if target.scheme == "https" else 80)
        async with asyncio.timeout(timeout_s):
            address = (await guard.resolve(host, port))[0]
            headers = {
                "Host": _host_header(host, target.port),
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "X-Alert-Event-Id": event_id,
                "X-Alert-Subscription-Id": subscription_id,
                "X-Alert-Attempt": str(attempt),
                HEADER: signature(secret, body, int(time.time())),
            }
            extensions = {"sni_hostname": host} if target.scheme == "https" else {}
            pinned = target.copy_with(host=address)
            async with http.stream(
                "POST",
                pinned,
                content=body,
                headers=headers,
                extensions=extensions,
                timeout=timeout_s,
            ) as response:
                status = response.status_code
    except (TargetRefused, httpx.InvalidURL) as exc:
        raise DeliveryFailed(str(exc)) from None
    except TimeoutError:
        raise DeliveryFailed(f"no answer within {timeout_s:g}s") from None
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None
    if not 200 <= status < 300:
        raise DeliveryFailed(f"answered {status}")
    return status


def _host_header(host: str, port: int | None) -> str:
    host = f"[{host}]" if ":" in host else host
    return host if port is None else f"{host}:{port}"
