"""Where webhooks may go: never to private, loopback, link-local or otherwise non-public
addresses unless ``ALERTS_ALLOW_NETWORKS`` permits them.

A webhook URL is user input that this service will POST to: without the guard anyone
could make it probe the operator's internal network (SSRF). Names are resolved and every
address checked, both when a subscription is made (a quick 400) and before each delivery
(the binding check: DNS may have changed); the delivery then connects to the checked
address, so a second lookup cannot swap it (DNS rebinding).

Addresses that carry or reach an IPv4 address through a translation are refused
whatever they embed (NAT64 ``64:ff9b::/96`` and ``64:ff9b:1::/48``, 6to4 ``2002::/16``,
Teredo ``2001::/32``, IPv4-compatible ``::/96``), and an IPv4-mapped one is judged by
the IPv4 address it maps. A refusal names the host as given and never the address a
name resolved to (that would make the API an oracle of the internal DNS).

Names are resolved on a small thread pool of their own (:data:`RESOLVER_THREADS`), not
the event loop's default executor that the shard clients' look-ups share: a slow
webhook DNS server can hold only these threads. Another resolver may be given: one
answering from a table can give a name any address, and another one later, as a
rebinding attacker's DNS would.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import idna

from alerts.errors import TargetRefused
from alerts.settings import Network

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the host's addresses as text; raises OSError when the name does not resolve.
Resolver = Callable[[str, int], Awaitable[list[str]]]


RESOLVER_THREADS = 4
_resolver_pool = ThreadPoolExecutor(RESOLVER_THREADS, thread_name_prefix="webhook-dns")

# Prefixes that translate to or tunnel IPv4: where they lead cannot be judged here.
TRANSLATED = tuple(
    ipaddress.IPv6Network(net)
    for net in ("64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32", "::/96")
)


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the operating system's resolver gives for ``host``, asked on the
    webhook resolver's own threads."""
    loop = asyncio.get_running_loop()
    lookup = functools.partial(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    infos = await loop.run_in_executor(_resolver_pool, lookup)
    return [str(info[4][0]) for info in infos]


def ascii_host(host: str) -> str:
    """An internationalised name in its ASCII (punycode) form, as DNS, ``Host`` and TLS
    want it (IDNA 2008 with UTS 46 mapping, as httpx parses URLs)."""
    if host.isascii():
        return host
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError:
        raise TargetRefused(f"{host!r} is not a valid internationalised name") from None


class NetworkGuard:
    def __init__(
        self,
        allow: Iterable[Network] = (),
        *,
        resolver: Resolver = system_resolver,
        resolve_timeout_s: float = 5.0,
    ) -> None:
        self.allow = tuple(allow)
        self.resolver = resolver
        self.resolve_timeout_s = resolve_timeout_s

    def permits(self, address: IPAddress) -> bool:
        if any(address in net for net in self.allow):
            return True
        if isinstance(address, ipaddress.IPv6Address):
            if address.ipv4_mapped is not None:
                return self.permits(address.ipv4_mapped)
            if any(address in net for net in TRANSLATED):
                return False
        return address.is_global and not address.is_multicast

    def check(self, address: IPAddress, host: str = "the address") -> None:
        """Raise TargetRefused naming ``host`` as given (never the address it resolved to)."""
        if not self.permits(address):
            raise TargetRefused(
                f"{host} is not an allowed target: webhooks may not reach private, loopback,"
                " link-local, reserved or translated (NAT64, 6to4, Teredo) addresses unless"
                " ALERTS_ALLOW_NETWORKS lists their network"
            )

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses of ``host``, every one of them permitted (else TargetRefused)."""
        try:
            literal = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        if literal is not None:
            self.check(literal, host)
            return [str(literal)]
        name = ascii_host(host)
        try:
            found = await asyncio.wait_for(self.resolver(name, port), self.resolve_timeout_s)
        except (OSError, UnicodeError, TimeoutError):
            raise TargetRefused(f"{host} does not resolve") from None
        addresses = list(dict.fromkeys(found))
        if not addresses:
            raise TargetRefused(f"{host} does not resolve")
        for address in addresses:
            self.check(ipaddress.ip_address(address.split("%", 1)[0]), host)
        return addresses
