"""Where webhooks may go: never to private, loopback, link-local or otherwise non-public
addresses unless ``ALERTS_ALLOW_NETWORKS`` permits them.

A webhook URL is user input that this service will POST to: without the guard anyone
could make it probe the operator's internal network (SSRF). Names are resolved and every
address checked, both when a subscription is made (a quick 400) and before each delivery
(the binding check: DNS may have changed); the delivery then connects to the checked
address, so a second lookup cannot swap it (DNS rebinding).

Names are resolved by the event loop's ``getaddrinfo`` unless another resolver is given:
one answering from a table can give a name any address, and another one later, as a
rebinding attacker's DNS would.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable

from alerts.errors import TargetRefused
from alerts.settings import Network

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the host's addresses as text; raises OSError when the name does not resolve.
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the operating system's resolver gives for ``host``."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


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
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in net for net in self.allow):
            return True
        return address.is_global and not address.is_multicast

    def check(self, address: IPAddress) -> None:
        if not self.permits(address):
            raise TargetRefused(
                f"{address} is a private, loopback, link-local or reserved address; "
                "webhooks may not target it unless ALERTS_ALLOW_NETWORKS lists its network"
            )

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses of ``host``, every one of them permitted (else TargetRefused)."""
        try:
            literal = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        if literal is not None:
            self.check(literal)
            return [str(literal)]
        try:
            found = await asyncio.wait_for(self.resolver(host, port), self.resolve_timeout_s)
        except (OSError, TimeoutError) as exc:
            raise TargetRefused(f"{host} does not resolve: {exc}") from None
        addresses = list(dict.fromkeys(found))
        if not addresses:
            raise TargetRefused(f"{host} does not resolve")
        for address in addresses:
            self.check(ipaddress.ip_address(address.split("%", 1)[0]))
        return addresses
