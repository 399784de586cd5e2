"""One request to an OpenAI-compatible chat-completions endpoint, as the judge and the HTTP
simulated user make it.

The API key is read from the environment variable `api_key_env` at request time: it is never
stored, logged or saved. A request is tried `retries` times, `backoff` seconds before the second
try and doubled for each further one (or the server's `Retry-After` when it sends one, at most
`MAX_RETRY_AFTER` seconds), on a
connection error, a timeout, a 429 or 5xx answer, or a body that is cut short or not JSON; any
other 4xx answer (a bad request or key) fails at once. A failure is `error` (the caller's
exception type) naming `who` and the URL.
"""

from __future__ import annotations

import http.client
import json
import os
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
            with urllib.request.urlopen(request, timeout=timeout) as response:
                answer = json.loads(response.read())
            break
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
        raise error(f"{who}: cannot reach {url} after {retries} tries: {last}")
    try:
        content = answer["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise error(
            f"{who}: {url} answered without choices[0].message.content: {str(answer):.200}"
        ) from None
    if not isinstance(content, str):
        raise error(f"{who}: {url} answered a content that is not text: {content!r:.80}")
    return content


__all__ = ["chat_completion", "check_base_url"]
