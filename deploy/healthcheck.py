"""Container HEALTHCHECK for the reference service: exit 0 when its HTTP probe answers 200.

Probes ``AEGIS_HEALTHCHECK_PATH`` (default ``/readiness``: NATS connected and, with a database,
migrations at head) on the port of ``AEGIS_HTTP_BIND``; a wildcard bind address is probed on
loopback. Standard library only, so it adds nothing to the image.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def probe_url(bind: str, path: str) -> str:
    host, _, port = bind.strip().rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "*"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}{path}"


def main() -> int:
    url = probe_url(
        os.environ.get("AEGIS_HTTP_BIND", "127.0.0.1:8080"),
        os.environ.get("AEGIS_HEALTHCHECK_PATH", "/readiness"),
    )
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 0 if response.status == 200 else 1
    except urllib.error.HTTPError as exc:
        print(f"{url}: HTTP {exc.code}: {exc.read(300).decode(errors='replace')}", file=sys.stderr)
    except OSError as exc:
        print(f"{url}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
