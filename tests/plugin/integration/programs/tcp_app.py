"""A program that is not the reference service: a TCP echo server on ``AEGIS_HTTP_PORT``.

With ``--no-listen`` it prints its ready line and never listens (a start that must fail on a TCP
health contract).
"""

from __future__ import annotations

import os
import signal
import socketserver
import sys
import time


class Echo(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(line)


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if "--no-listen" in sys.argv:
        print("TCP-APP READY (not listening)", flush=True)
        while True:
            time.sleep(3600)
    port = int(os.environ["AEGIS_HTTP_PORT"])
    server = socketserver.ThreadingTCPServer(("127.0.0.1", port), Echo)
    print(f"TCP-APP READY on {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
