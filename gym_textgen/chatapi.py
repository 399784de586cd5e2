"""One request to an OpenAI-compatible chat-completions endpoint, as the judge and the HTTP
simulated user make it.

The API key is read from the environment variable `api_key_env` at request time: it is never
stored, logged or saved. A request is tried `retries` times, `backoff` seconds before the second
try and doubled for each further one (or the server's `Retry-After` when it sends one, at most
`MAX_RETRY_AFTER` seconds), on a
connection error, a timeout, a 429 or 5xx answer, or a body that is cut short or not JSON; any
other 4xx answer (a bad request or key) fails at once. A failure is `error` (the caller's
exception type) naming `who` and the URL.

`timeout` bounds a whole try: connecting, the headers and the body together (a server that
trickles its answer a byte at a time cannot hold a run past it), and an answer over
`MAX_RESPONSE_BYTES` fails at once. Redirects are never followed: the request carries the API
key, which goes to `base_url`'s server only (a redirect to another host would hand it over, and a
redirected POST comes back as a GET without its body); point `base_url` at the endpoint itself.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from gym_textgen.errors import TextGenValueError


def check_base_url(base_url: str) -> str:
    """`base_url` if it is an http(s) URL, else a clear error."""
    if not str(base_url).startswith(("http://", "https://")):
        raise TextGenValueError(
            f"Expects base_url to start with http:// or https://, got {base_url!r}"
        )
    return str(base_url)


#: the longest wait a server's Retry-After may ask for (longer: this many seconds)
MAX_RETRY_AFTER = 60.0
#: the most bytes an answer may hold (a chat completion is a few kilobytes)
MAX_RESPONSE_BYTES = 4 * 2**20


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Refuse every redirect (see the module): the 3xx answer becomes an `HTTPError`."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str):
        raise urllib.error.HTTPError(
            req.full_url, code, f"{msg}, a redirect to {newurl}, not followed (the API key goes "
            "to base_url's server only: set base_url to the endpoint itself)", headers, fp,
        )  # fmt: skip


_OPENER = urllib.request.build_opener(_NoRedirects())


class _TooLarge(Exception):
    """An answer over `MAX_RESPONSE_BYTES`."""


def _fetch(request: urllib.request.Request, timeout: float) -> bytes:
    """The body of the answer to `request`, within `timeout` seconds in all (connecting, the
    headers, the body) and at most `MAX_RESPONSE_BYTES`; else TimeoutError or `_TooLarge`.

    The request runs in a thread that the caller waits for until the deadline; a thread left
    behind stops at the next piece of the body it receives (or at its socket's own timeout)."""
    finished, abandoned, box = threading.Event(), threading.Event(), {}

    def work() -> None:
        try:
            with _OPENER.open(request, timeout=timeout) as response:
                declared = getattr(response, "length", None) or 0  # its Content-Length
                if declared > MAX_RESPONSE_BYTES:
                    raise _TooLarge(f"an answer over {MAX_RESPONSE_BYTES} bytes")
                chunks, size = [], 0
                while not abandoned.is_set():
                    chunk = response.read1(65536)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > MAX_RESPONSE_BYTES:
                        raise _TooLarge(f"an answer over {MAX_RESPONSE_BYTES} bytes")
                    chunks.append(chunk)
                missing = getattr(response, "length", None)  # of a Content-Length's bytes
                if not abandoned.is_set() and missing:  # the body ended short
                    raise http.client.IncompleteRead(b"".join(chunks), missing)
                box["body"] = b"".join(chunks)
        except BaseException as e:  # handed to the caller's thread
            box["error"] = e
        finally:
            finished.set()

    threading.Thread(target=work, daemon=True, name="chat-completion").start()
    if not finished.wait(timeout):
        abandoned.set()
        raise TimeoutError(f"no whole answer within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["body"]


def _retry_after(e: urllib.error.HTTPError) -> float | None:
    value = e.headers.get("Retry-After") if e.headers is not None else None
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(value))) if value is not None else None
    except ValueError:  # an HTTP date: fall back to the backoff
        return None


def chat_completion(
    base_url: str,
    body: dict[str, Any],
    *,
    api_key_env: str,
    timeout: float,
    retries: int,
    backoff: float,
    error: type[Exception],
    who: str,
) -> str:
    """`choices[0].message.content` of a POST of `body` to `{base_url}/chat/completions`."""
    url = base_url.rstrip("/") + "/chat/completions"
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    key = os.environ.get(api_key_env)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    last, wait = "", None
    for attempt in range(retries):
        if attempt:
            time.sleep(wait if wait is not None else backoff * 2 ** (attempt - 1))
        wait = None
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            answer = json.loads(_fetch(request, timeout))
            break
        except _TooLarge as e:  # a server that floods: trying again won't help
            raise error(f"{who}: {url} sent {e}") from None
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code} {e.reason}"
            if e.code != 429 and e.code < 500:  # a bad request or key: trying again won't help
                raise error(f"{who}: {url} answered {last}") from None
            wait = _retry_after(e)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            last = str(getattr(e, "reason", e))
        except http.client.InvalidURL as e:  # a setting, not a passing fault
            raise error(f"{who}: {url} is not a valid URL: {e}") from None
        except (http.client.HTTPException, ValueError) as e:
            # a body cut short (IncompleteRead) or not JSON (a proxy's error page with status
            # 200): a passing fault, as a 503 is
            last = f"{type(e).__name__}: {e}"
    else:
        outage = error(f"{who}: cannot reach {url} after {retries} tries: {last}")
        outage.transient = True  # type: ignore[attr-defined]  (PartyError's: asking later may cure it)
        raise outage
    try:
        content = answer["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise error(
            f"{who}: {url} answered without choices[0].message.content: {str(answer):.200}"
        ) from None
    if not isinstance(content, str):
        raise error(f"{who}: {url} answered a content that is not text: {content!r:.80}")
    return content


__all__ = ["MAX_RESPONSE_BYTES", "chat_completion", "check_base_url"]
