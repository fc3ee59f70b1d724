"""Outbound requests to addresses staff or citizens give: never to this machine or its network.

Sources (feeds, Mastodon and Bluesky servers, Telegram preview mirrors, Jetstream) and
citizens' web-push endpoints name hosts that elshi then contacts. Without a check, anyone who
may add a source could make elshi read its own admin ports, the cloud metadata service or
other machines of the intranet. Every such request goes through this module:

- only http(s) (and ws(s) for Jetstream) addresses, without a user name or password;
- the host is resolved and every address it resolves to must be public: loopback, private,
  link-local, multicast, reserved, unspecified and cloud metadata addresses are refused, for
  IPv4 and IPv6 (IPv4 addresses embedded in IPv6 are checked as IPv4);
- the connection is made to the very address that was checked (no second lookup an attacker's
  DNS could answer differently), and again for every redirect;
- `ELSHI_FETCH_ALLOW_PRIVATE` lists private ranges an operator allows (intranet feeds);
  metadata, unspecified and multicast addresses stay refused whatever it says.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import httpx

from elshi.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: Resolves (host, port) to the IP addresses (as text) a connection could go to.
Resolver = Callable[[str, int], list[str]]

HTTP = ("http", "https")
WEBSOCKET = ("ws", "wss")

#: Instance metadata services of cloud providers; refused even inside an allowed range.
METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.123",  # AWS time sync
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure wire server
        "192.0.0.192",  # Oracle Cloud
    )
)
#: Kinds of address no setting allows.
ALWAYS_REFUSED = frozenset({"cloud metadata", "unspecified", "multicast"})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class Refused(httpx.ConnectError):
    """An address elshi will not contact; the message says which and why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class NotAnAddress(Refused):
    """Not an address of an allowed scheme: a file path, file:, ftp: and the like."""


@dataclass(frozen=True)
class Target:
    """A checked address: scheme, host, port and the IP addresses it may be reached at."""

    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """Return the IPv4 address an IPv6 address carries (mapped, 6to4, NAT64), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def classify(ip: IPAddress | str) -> str | None:
    """Return why an address is not public ("loopback", "private", ...), or None if it is."""
    ip = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    inner = embedded_ipv4(ip)
    if inner is not None:
        return classify(inner)
    if ip in METADATA:
        return "cloud metadata"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "non-public"
    return None


@lru_cache(maxsize=32)
def parse_ranges(text: str) -> tuple[Network, ...]:
    """Parse comma- or space-separated CIDR ranges ("10.20.0.0/16, fd12::/48")."""
    out = []
    for part in text.replace(",", " ").split():
        try:
            out.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not an address range such as 10.0.0.0/8") from None
    return tuple(out)


def refusal(ip: IPAddress | str, allow: Iterable[Network] = ()) -> str | None:
    """Return why elshi may not connect to this address, or None when it may.

    `allow` lists ranges the operator opened (ELSHI_FETCH_ALLOW_PRIVATE); they never open
    cloud metadata, unspecified or multicast addresses.
    """
    ip = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    kind = classify(ip)
    if kind is None:
        return None
    if kind not in ALWAYS_REFUSED:
        plain = embedded_ipv4(ip) or ip
        if any(plain.version == net.version and plain in net for net in allow):
            return None
    return kind


def allowed_ranges(settings: Settings) -> tuple[Network, ...]:
    """Return the private ranges the operator allows (ELSHI_FETCH_ALLOW_PRIVATE)."""
    return parse_ranges(settings.fetch_allow_private)


def resolve_host(host: str, port: int) -> list[str]:
    """Resolve a host name to its addresses with the system resolver, in its order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone
        if address not in seen:
            seen.append(address)
    return seen


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def parse(url: str, schemes: tuple[str, ...] = HTTP) -> tuple[str, str, int]:
    """Return (scheme, host, port) of an address; raise NotAnAddress or Refused if unfit."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise Refused(f"{url!r} is not a valid address: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        wanted = " or ".join(f"{s}://" for s in schemes)
        shown = f"{scheme}:" if len(scheme) > 1 else "a file path"
        raise NotAnAddress(f"{url!r}: only {wanted} addresses are fetched, not {shown}")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise Refused(
            f"{parts.hostname or url}: an address with a user name or password is refused"
        )
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise Refused(f"{url!r} has no host")
    return scheme, host, port or (443 if scheme in ("https", "wss") else 80)


def check_url(
    url: str,
    *,
    settings: Settings,
    schemes: tuple[str, ...] = HTTP,
    resolve: Resolver | None = resolve_host,
) -> Target:
    """Check an address elshi is asked to contact; raise Refused with the reason.

    With `resolve=None` the host name is not looked up (a form check: scheme, credentials,
    literal addresses, localhost); otherwise every address the name resolves to must pass.
    A name that cannot be resolved raises httpx.ConnectError (not Refused).
    """
    scheme, host, port = parse(url, schemes)
    allow = allowed_ranges(settings)
    literal = _literal(host)
    if literal is not None:
        addresses = [str(literal)]
    elif host == "localhost" or host.endswith(".localhost"):
        addresses = ["127.0.0.1"]
    elif resolve is None:
        return Target(scheme, host, port, ())
    else:
        try:
            addresses = resolve(host, port)
        except OSError as exc:
            raise httpx.ConnectError(f"cannot resolve {host}: {exc}") from None
        if not addresses:
            raise httpx.ConnectError(f"cannot resolve {host}: no address")
    for address in addresses:
        kind = refusal(address, allow)
        if kind is not None:
            where = host if literal is not None else f"{host} ({address})"
            raise Refused(
                f"{where} is a {kind} address; elshi fetches from public addresses only "
                "(an operator may allow private ranges with ELSHI_FETCH_ALLOW_PRIVATE)"
            )
    return Target(scheme, host, port, tuple(addresses))


def host_matches(host: str, patterns: Iterable[str]) -> bool:
    """Return True when a host is one of the patterns ("*.example.com" matches subdomains)."""
    host = host.rstrip(".").lower()
    for pattern in patterns:
        pattern = pattern.strip().lower()
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif pattern and host == pattern:
            return True
    return False


def push_hosts(settings: Settings) -> list[str]:
    """Return the push-service host patterns citizens' browsers may subscribe through."""
    return [p for p in settings.push_hosts.replace(",", " ").split() if p]


def check_push_endpoint(
    url: str, *, settings: Settings, resolve: Resolver | None = resolve_host
) -> Target:
    """Check a web-push endpoint: a known push service (ELSHI_PUSH_HOSTS) at a public address."""
    try:
        host = (urlsplit(url.strip()).hostname or "").rstrip(".").lower()
    except ValueError:
        host = ""
    if not host_matches(host, push_hosts(settings)):
        raise Refused(
            f"{host or url!r} is not a known push service (ELSHI_PUSH_HOSTS lists the ones allowed)"
        )
    return check_url(url, settings=settings, resolve=resolve)


class GuardedTransport(httpx.BaseTransport):
    """An HTTP transport that checks each request's address and connects to that address only.

    The host is resolved here, every address checked, and the connection opened to the
    checked address (TLS still verifies the certificate against the host name). Redirects
    arrive here as new requests, so each hop is checked the same way.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        resolve: Resolver = resolve_host,
        schemes: tuple[str, ...] = HTTP,
        **transport_options: Any,
    ) -> None:
        self.settings = settings
        self.resolve = resolve
        self.schemes = schemes
        self.options = transport_options
        self._pools: dict[tuple[str, str, int], httpx.HTTPTransport] = {}
        self._lock = threading.Lock()

    def _pool(self, target: Target) -> httpx.HTTPTransport:
        # One pool per host name: a connection made for one name (its TLS name) is never
        # reused for another name served from the same address.
        key = (target.scheme, target.host, target.port)
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = self._pools[key] = httpx.HTTPTransport(**self.options)
            return pool

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Check the address, then send the request to the checked IP address."""
        target = check_url(
            str(request.url), settings=self.settings, schemes=self.schemes, resolve=self.resolve
        )
        extensions = dict(request.extensions)
        if request.url.scheme == "https":
            extensions["sni_hostname"] = request.url.host
        failure: httpx.ConnectError | None = None
        for address in target.addresses:
            pinned = httpx.Request(
                request.method,
                request.url.copy_with(host=address),
                headers=request.headers,  # the Host header still names the host
                stream=request.stream,
                extensions=extensions,
            )
            try:
                return self._pool(target).handle_request(pinned)
            except httpx.ConnectError as exc:  # nothing was sent: try the next address
                failure = exc
        assert failure is not None
        raise failure

    def close(self) -> None:
        """Close every connection pool."""
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()


def client(
    settings: Settings,
    *,
    resolve: Resolver = resolve_host,
    follow_redirects: bool = True,
    **options: Any,
) -> httpx.Client:
    """Return an httpx client whose every request, and every redirect, is checked.

    Environment proxies are not used: the address connected to must be the one checked.
    """
    return httpx.Client(
        transport=GuardedTransport(settings, resolve=resolve),
        follow_redirects=follow_redirects,
        trust_env=False,
        timeout=options.pop("timeout", settings.http_timeout),
        **options,
    )


def connect_socket(target: Target, timeout: float | None) -> socket.socket:
    """Open a TCP connection to one of a checked target's addresses (for WebSocket clients)."""
    failure: OSError | None = None
    for address in target.addresses:
        try:
            return socket.create_connection((address, target.port), timeout=timeout)
        except OSError as exc:
            failure = exc
    raise failure or OSError(f"cannot connect to {target.host}")
