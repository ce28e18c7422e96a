"""A program that is not the reference service: HTTP only, health at ``GET /healthz``.

It listens on ``AEGIS_HTTP_BIND`` and answers ``/healthz`` with the status given as its first
argument (default 200) and what the harness told it (its NATS URL, its database), so that a test
can see both the contract and the wiring.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATUS = int(sys.argv[1]) if len(sys.argv) > 1 else 200


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(
            {
                "path": self.path,
                "nats_url": os.environ.get("AEGIS_NATS_URL"),
                "database_url": os.environ.get("AEGIS_DATABASE_URL"),
                "extra": os.environ.get("HTTP_APP_EXTRA"),
            }
        ).encode()
        self.send_response(STATUS if self.path == "/healthz" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        print(format % args, flush=True)


def main() -> None:
    host, _, port = os.environ["AEGIS_HTTP_BIND"].rpartition(":")
    server = ThreadingHTTPServer((host, int(port)), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"http_app listening on {host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
