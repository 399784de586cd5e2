"""A local OpenAI-compatible chat-completions server for the judge's tests.

    python tests/servers/fake_chat_api.py PORT_FILE [--fail-first N] [--key KEY]

Listens on a free port (written to PORT_FILE), answers POST /v1/chat/completions with a rating:
10 when the user message's "Response:" line contains "great", else 1. The first N requests get
HTTP 503; a request without "Authorization: Bearer KEY" (when --key is given) gets 401. Every
request's headers are appended to PORT_FILE + ".log" as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

lock = threading.Lock()
seen = {"n": 0}
args = argparse.Namespace(port_file=Path("port"), fail_first=0, key="")


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):  # quiet
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with lock:
            seen["n"] += 1
            n = seen["n"]
            with Path(str(args.port_file) + ".log").open("a") as f:
                f.write(json.dumps(dict(self.headers)) + "\n")
        if self.path != "/v1/chat/completions":
            return self._send(404, {"error": "not found"})
        if n <= args.fail_first:
            return self._send(503, {"error": "busy"})
        if args.key and self.headers.get("Authorization") != f"Bearer {args.key}":
            return self._send(401, {"error": "bad key"})
        user = body["messages"][-1]["content"]
        response = next(line for line in user.splitlines() if line.startswith("Response:"))
        rating = "10" if "great" in response else "1"
        self._send(200, {"choices": [{"message": {"role": "assistant", "content": rating}}]})

    def _send(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("port_file", type=Path)
    p.add_argument("--fail-first", type=int, default=0)
    p.add_argument("--key", default="")
    p.parse_args(namespace=args)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tmp = args.port_file.with_suffix(".tmp")
    tmp.write_text(str(server.server_address[1]))
    tmp.replace(args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
