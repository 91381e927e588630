"""``python -m alerts receive``: a webhook receiver to watch alerts arrive (a demo, and
the reference for checking signatures; see docs/alerts.md).

It prints each alert as one JSON line, says whether its signature checks out (with
``--secret``), and prints an event id it has already seen once only (at-least-once
delivery may repeat one).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from alerts.signing import HEADER, verify


def make_handler(secret: str | None) -> type[BaseHTTPRequestHandler]:
    seen: set[str] = set()
    lock = threading.Lock()  # requests arrive on several threads

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            event_id = self.headers.get("X-Alert-Event-Id", "")
            signed = "unchecked"
            if secret is not None:
                signed = "ok" if verify(secret, body, self.headers.get(HEADER, "")) else "BAD"
            if signed == "BAD":
                self.send_response(401)
            else:
                self.send_response(204)
                with lock:
                    if event_id not in seen:  # a repeat is acknowledged, not shown again
                        seen.add(event_id)
                        line = json.dumps({"signature": signed, **json.loads(body)})
                        sys.stdout.write(line + "\n")
                        sys.stdout.flush()
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Receiver


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="alerts", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    receive = commands.add_parser("receive", help="print the alerts POSTed to this port")
    receive.add_argument("--host", default="127.0.0.1")
    receive.add_argument("--port", type=int, default=9000)
    receive.add_argument("--secret", help="the subscription's secret, to check signatures")
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(args.secret))
    print(f"receiving alerts on http://{args.host}:{args.port}/ (Ctrl-C stops)", file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
