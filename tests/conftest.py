"""Test settings: no network, a private model cache, small thread counts; the `api` fixture."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Never reach for the hub from tests (and fail fast instead of retrying a closed network).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


SERVER = Path(__file__).resolve().parent / "servers" / "fake_chat_api.py"


def start_server(tmp_path, *flags):
    """A local OpenAI-compatible server (tests/servers/fake_chat_api.py) in its own process:
    (the process, its base URL, the file its requests' headers are logged to)."""
    port_file = tmp_path / "port"
    proc = subprocess.Popen([sys.executable, str(SERVER), str(port_file), *flags])
    deadline = time.time() + 30
    while not port_file.exists():
        assert proc.poll() is None and time.time() < deadline, "the fake API did not start"
        time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port_file.read_text()}/v1", Path(str(port_file) + ".log")


@pytest.fixture
def api(tmp_path, request):
    """(base URL, header log) of a fake chat API started with the test's params as its flags."""
    proc, url, log = start_server(tmp_path, *getattr(request, "param", ()))
    yield url, log
    proc.kill()
    proc.wait()
