"""`HTTPUser`: a simulated user behind any OpenAI-compatible chat-completions endpoint (see
`gym_textgen.interactive.users`)."""

from __future__ import annotations

from collections.abc import Sequence

from gym_textgen.chatapi import chat_completion, check_base_url
from gym_textgen.errors import TextGenTypeError, TextGenValueError
from gym_textgen.interactive.party import Exchange, OtherParty, PartyError, Reply
from gym_textgen.interactive.personas import (
    Check,
    Persona,
    _check_sampling,
    _Ending,
    messages_of,
    persona_of,
)


class HTTPUser(OtherParty):
    """A simulated user behind any OpenAI-compatible chat-completions endpoint (see the module
    and `gym_textgen.chatapi`: the key only from `api_key_env`, timeouts, retries with backoff
    and the server's Retry-After). A failure is a `PartyError` naming the endpoint, and the
    env's step is not applied. Requests for a batch run `concurrency` at a time.
    """

    def __init__(
        self,
        base_url: str,
        api_model: str = "gpt-4o-mini",
        persona: Persona = "You are a user talking with an assistant.",
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float = 0.7,
        max_reply_tokens: int = 64,
        stop: Sequence[str] = ("[DONE]",),
        check: Check | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 1.0,
        concurrency: int = 4,
    ) -> None:
        _check_sampling(temperature, max_reply_tokens)
        if not isinstance(api_model, str) or not api_model:
            raise TextGenTypeError(f"Expects api_model as a non-empty str, got {api_model!r}")
        numbers = (retries, concurrency, timeout, backoff)
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in numbers) or (
            retries < 1 or concurrency < 1 or timeout <= 0 or backoff < 0
        ):
            raise TextGenValueError(
                "Expects retries >= 1, concurrency >= 1, timeout > 0 and backoff >= 0, got "
                f"{retries!r}, {concurrency!r}, {timeout!r}, {backoff!r}"
            )
        self.base_url = check_base_url(base_url)
        self.api_model, self.persona, self.api_key_env = api_model, persona, api_key_env
        self.temperature, self.max_reply_tokens = float(temperature), int(max_reply_tokens)
        self.timeout, self.retries, self.backoff = float(timeout), int(retries), float(backoff)
        self.concurrency = int(concurrency)
        self.ending = _Ending(stop, check)

    def __repr__(self) -> str:
        return f"HTTPUser({self.base_url}, api_model={self.api_model!r})"

    def _ask(self, ex: Exchange) -> Reply:
        body = {
            "model": self.api_model,
            "messages": messages_of(persona_of(self.persona, ex), ex),
            "temperature": self.temperature,
            "max_tokens": self.max_reply_tokens,
            "seed": int(ex.seed),  # honoured by servers that can; same episode, same replies
        }
        text = chat_completion(
            self.base_url, body, api_key_env=self.api_key_env, timeout=self.timeout,
            retries=self.retries, backoff=self.backoff, error=PartyError, who="simulated user",
        )  # fmt: skip
        return self.ending.finish(ex, text)

    def reply(self, exchanges: Sequence[Exchange]) -> list[Reply]:
        from concurrent.futures import ThreadPoolExecutor

        if len(exchanges) <= 1:
            return [self._ask(ex) for ex in exchanges]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._ask, exchanges))
