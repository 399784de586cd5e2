"""A local OpenAI-compatible chat-completions server for the judge's tests.

    python tests/servers/fake_chat_api.py PORT_FILE [--fail-first N] [--fault KIND] [--key KEY]

Listens on a free port (written to PORT_FILE), answers POST /v1/chat/completions with a rating:
what follows "say " in the user message's "Response:" line when it has one (a judge's reply
as written, e.g. "say 8/10", cut to the request's max_tokens words), else 10 when that line contains "great", else 1. The first N
requests fail with --fault: "503" (HTTP 503, the default), "not-json" (HTTP 200 with an HTML
body, as a proxy's error page) or "cut" (the body ends before its Content-Length: the client's
read raises IncompleteRead). A request without "Authorization: Bearer KEY" (when --key is
given) gets 401. Every request's headers are appended to PORT_FILE + ".log" as JSON lines.

A request whose last message has no "Response:" line is a simulated user's: the answer is
"You said: <that message>", or "Thanks, bye! [DONE]" when it contains "bye"; with --retry-after
S a failing request's 503 carries "Retry-After: S". --delay S waits S seconds before answering.
Hostile answers for the client's limits (every request): --fault trickle sends a valid answer
one byte every 0.2 s, --fault huge a 6 MB one, --fault redirect answers 302 to --redirect-to.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

lock = threading.Lock()
seen = {"n": 0}
args = argparse.Namespace(
    port_file=Path("port"),
    fail_first=0,
    fault="503",
    key="",
    delay=0.0,
    retry_after=None,
    redirect_to="",
)


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
        if args.delay:
            time.sleep(args.delay)
        if self.path != "/v1/chat/completions":
            return self._send(404, {"error": "not found"})
        if args.fault == "redirect":
            self.send_response(302)
            self.send_header("Location", args.redirect_to)
            self.send_header("Content-Length", "0")
            return self.end_headers()
        if args.fault in ("trickle", "huge"):
            said = "x" * (6 * 2**20) if args.fault == "huge" else "ok"
            data = json.dumps({"choices": [{"message": {"content": said}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if args.fault == "huge":
                return self.wfile.write(data)
            for byte in data:  # one byte every 0.2 s: each read is within any socket timeout
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.2)
            return None
        if n <= args.fail_first and args.fault == "503":
            return self._send(503, {"error": "busy"}, retry_after=args.retry_after)
        if n <= args.fail_first and args.fault == "not-json":
            return self._send(200, b"<html><body>Bad gateway, try later</body></html>")
        if args.key and self.headers.get("Authorization") != f"Bearer {args.key}":
            return self._send(401, {"error": "bad key"})
        user = body["messages"][-1]["content"]
        response = next((line for line in user.splitlines() if line.startswith("Response:")), None)
        if response is None:  # a simulated user's request
            said = "Thanks, bye! [DONE]" if "bye" in user else f"You said: {user}"
            return self._send(200, {"choices": [{"message": {"content": said}}]})
        if "say " in response:  # cut at max_tokens, counting words (a word is >= 1 token)
            rating = " ".join(response.split("say ", 1)[1].split(" ")[: body["max_tokens"]])
        else:
            rating = "10" if "great" in response else "1"
        answer = {"choices": [{"message": {"role": "assistant", "content": rating}}]}
        self._send(200, answer, cut=n <= args.fail_first and args.fault == "cut")

    def _send(self, code, obj, cut=False, retry_after=None):
        data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        if retry_after is not None:
            self.send_header("Retry-After", str(retry_after))
        self.send_header("Content-Length", str(len(data) + (10 if cut else 0)))
        self.end_headers()
        self.wfile.write(data)
        if cut:
            self.close_connection = True


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("port_file", type=Path)
    p.add_argument("--fail-first", type=int, default=0)
    p.add_argument(
        "--fault", choices=["503", "not-json", "cut", "trickle", "huge", "redirect"], default="503"
    )
    p.add_argument("--redirect-to", default="")
    p.add_argument("--key", default="")
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--retry-after", type=float, default=None)
    p.parse_args(namespace=args)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tmp = args.port_file.with_suffix(".tmp")
    tmp.write_text(str(server.server_address[1]))
    tmp.replace(args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
