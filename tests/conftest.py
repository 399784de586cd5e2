"""Test settings: no network, a private model cache, small thread counts."""

import os

# Never reach for the hub from tests (and fail fast instead of retrying a closed network).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
