"""Outbound requests to URLs that outsiders chose (webhook subscriptions) reach only the public internet.

A URL is acceptable when it is http or https, carries no credentials, and its host resolves only
to public addresses: nothing private, loopback, link-local (the cloud metadata service at
169.254.169.254 among them), multicast, reserved or unspecified, also not when written as an
IPv4-mapped or IPv4-compatible IPv6 address or as a name such as localhost. The operator may
allow-list names, addresses or CIDR networks (settings.webhook_allowed_hosts) for receivers on
the inside.

`check_url` vets a URL when it is registered. `guarded_client` is the HTTP client that delivers
to such URLs: it checks the addresses again at the moment it connects and connects to the very
address it checked, so a name that resolves elsewhere by then (DNS rebinding) gets nowhere; it
follows no redirects and ignores proxy variables of the environment.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# host, port → the addresses the host resolves to.
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

ALLOWED_SCHEMES = frozenset({"http", "https"})
# The machine itself, whatever a resolver says (RFC 6761 reserves localhost and every name under it).
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
# IPv6 forms that carry an IPv4 address in their last 32 bits and reach it: IPv4-compatible
# (deprecated) and the NAT64 well-known prefix. IPv4-mapped and 6to4 have their own properties.
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class UnsafeUrl(ValueError):
    """A URL this service will not send requests to; the message names the problem."""


@dataclass(frozen=True)
class AllowList:
    """Hosts that may be reached although they are not public: exact names, and networks of addresses."""

    names: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        """From settings: each entry a host name, an address or a CIDR network ("10.1.0.0/16")."""
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in (entry.strip() for entry in entries):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                if "/" in entry:
                    raise ValueError(f"webhook allow-list entry {entry!r} is not a CIDR network") from None
                names.add(_normal_name(entry))
        return cls(frozenset(names), tuple(networks))

    def allows_name(self, host: str) -> bool:
        return _normal_name(host) in self.names

    def allows_address(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)


def _normal_name(host: str) -> str:
    return host.strip().rstrip(".").lower()


def address_problem(address: IPAddress) -> str | None:
    """Why `address` is not a public internet address (e.g. "a loopback address"), or None when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            if address in _IPV4_COMPATIBLE:
                return address_problem(embedded) or "a deprecated IPv4-compatible address"
            return address_problem(embedded)
    checks = (
        (address.is_unspecified, "an unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private address"),
        # What remains: shared (carrier-grade NAT), documentation and other special-purpose ranges.
        (not address.is_global, "not a public address"),
    )
    return next((problem for failed, problem in checks if failed), None)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if (address in _IPV4_COMPATIBLE and not (address.is_unspecified or address.is_loopback)) or address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_loopback_name(host: str) -> bool:
    name = _normal_name(host)
    return name in _LOOPBACK_NAMES or name.endswith(".localhost")


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """The addresses the operating system resolves `host` to, in its order of preference."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        # An IPv6 sockaddr may carry a zone ("fe80::1%eth0"); the zone does not change the class.
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


async def public_addresses(
    host: str, port: int, allowed: AllowList, resolver: Resolver = system_resolver
) -> list[IPAddress]:
    """The addresses `host` resolves to, when every one of them may be reached; UnsafeUrl otherwise."""
    host = host.strip("[]")
    literal = _literal_address(host)
    named = literal is None
    if named and is_loopback_name(host) and not allowed.allows_name(host):
        raise UnsafeUrl(
            f"host {host} is a name of this machine; only public hosts, or those allow-listed, may be called"
        )
    try:
        addresses = [literal] if literal is not None else await resolver(host, port)
    except OSError as error:
        raise UnsafeUrl(f"host {host} does not resolve: {error}") from error
    if not addresses:
        raise UnsafeUrl(f"host {host} does not resolve to any address")
    if named and allowed.allows_name(host):
        return addresses
    for address in addresses:
        problem = address_problem(address)
        if problem is not None and not allowed.allows_address(address):
            where = f"host {host} resolves to {address}," if named else f"host {host} is"
            raise UnsafeUrl(f"{where} {problem}; only public addresses, or those allow-listed, may be called")
    return addresses


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


async def check_url(url: str, allowed: AllowList, resolver: Resolver = system_resolver) -> None:
    """Vet a URL an outsider wants requests sent to; UnsafeUrl names the problem."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        raise UnsafeUrl(f"not a valid URL: {error}") from error
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise UnsafeUrl(f"scheme {parsed.scheme or '(none)'!r} is not allowed; use http or https")
    if parsed.userinfo:
        raise UnsafeUrl("credentials in the URL are not allowed; the delivery is signed instead")
    if not parsed.host:
        raise UnsafeUrl("the URL has no host")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if not 0 < port < 65536:
        raise UnsafeUrl(f"port {port} does not exist")
    await public_addresses(parsed.host, port, allowed, resolver)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses `public_addresses` accepts, and to exactly those it checked."""

    def __init__(self, allowed: AllowList, resolver: Resolver = system_resolver) -> None:
        self._allowed = allowed
        self._resolver = resolver
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await public_addresses(host, port, self._allowed, self._resolver)
        except UnsafeUrl as refused:
            raise httpcore.ConnectError(str(refused)) from refused
        except TimeoutError as error:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from error
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(str(address), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not reachable through webhooks")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, backend: GuardedBackend, limits: httpx.Limits) -> None:
        ssl_context = httpx.create_ssl_context(trust_env=False)
        super().__init__(verify=ssl_context, limits=limits, trust_env=False)
        # httpx (0.28) takes no network backend, so its connection pool is built again around ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


def guarded_client(
    allowed: AllowList,
    *,
    timeout_seconds: float,
    max_connections: int,
    headers: Sequence[tuple[str, str]] = (),
    resolver: Resolver = system_resolver,
) -> httpx.AsyncClient:
    """A pooled client for requests to outsiders' URLs: public addresses only, no redirects, no proxies."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return httpx.AsyncClient(
        transport=_GuardedTransport(GuardedBackend(allowed, resolver), limits),
        timeout=httpx.Timeout(timeout_seconds),
        follow_redirects=False,
        trust_env=False,
        headers=list(headers),
    )
