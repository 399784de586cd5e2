"""Token ids and sizes for the tests, derived from the default tokenizer (never hard-coded)."""

from __future__ import annotations

from gym_textgen.models import load_tokenizer

TOKENIZER = load_tokenizer("default")
V = len(TOKENIZER)  # the default env's action space size
EOS = TOKENIZER.eos_token_id
#: ordinary one-token words: actions that write real text
WORDS = [TOKENIZER.encode(w)[0] for w in (" great", " film", " story", " music")]
WORD = WORDS[0]
