"""Model resolution before any transformers call: a missing path or an unknown hub id is a one-line error
within seconds (transformers alone retries the hub for about a minute); a cached hub id loads offline."""
import http.server
import os
import socket
import threading
import time

import pytest

from adaptive.backends.hf import hub
from adaptive.backends.hf.loading import load_model
from adaptive.errors import InputError


@pytest.fixture
def online(monkeypatch):
    """Hub access allowed (the suite runs with HF_HUB_OFFLINE=1); the hub is whatever `set` points at."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return lambda url: monkeypatch.setattr(constants, "ENDPOINT", url)


@pytest.fixture
def fake_hub():
    """An HTTP server that knows no model: 404 for everything."""
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(404)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()


def timed(fn):
    t0 = time.perf_counter()
    with pytest.raises(InputError) as e:
        fn()
    return str(e.value), time.perf_counter() - t0


@pytest.mark.parametrize("path", ["./no/such/model", "/no/such/model", "~/no-such-model-dir", "a/b/c", "bad name!"])
def test_a_missing_local_path_says_so(path):
    msg, dt = timed(lambda: load_model(path, device="cpu"))
    assert msg == f"model path {path} does not exist" and dt < 5


def test_an_unknown_hub_id_offline_fails_at_once():
    msg, dt = timed(lambda: load_model("adaptive-test-org/no-such-model-xyz", device="cpu"))
    assert "'adaptive-test-org/no-such-model-xyz' is not a local path" in msg
    assert "not in the local Hugging Face cache" in msg and "HF_HUB_OFFLINE" in msg and dt < 5


def test_an_id_the_hub_does_not_have_fails_after_one_request(online, fake_hub):
    online(fake_hub)
    msg, dt = timed(lambda: load_model("adaptive-test-org/no-such-model-xyz", device="cpu"))
    assert f"the hub ({fake_hub}) has no model 'adaptive-test-org/no-such-model-xyz' (HTTP 404" in msg and dt < 5


def test_an_unreachable_hub_fails_fast(online):
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    online(f"http://127.0.0.1:{port}")
    msg, dt = timed(lambda: load_model("adaptive-test-org/no-such-model-xyz", device="cpu"))
    assert "is unreachable (" in msg and "not in the local Hugging Face cache" in msg and dt < 5


def test_a_hub_that_never_answers_is_given_up_on_at_the_deadline(online, monkeypatch):
    silent = socket.socket()  # accepts connections (backlog) but never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    online(f"http://127.0.0.1:{silent.getsockname()[1]}")
    monkeypatch.setattr(hub, "PROBE_TIMEOUT_S", 0.5)
    try:
        msg, dt = timed(lambda: load_model("adaptive-test-org/no-such-model-xyz", device="cpu"))
    finally:
        silent.close()
    assert "is unreachable" in msg and dt < 3


def test_other_loaders_resolve_the_same_way(tmp_path):
    from adaptive.backends.openai import OpenAIBackend
    from adaptive.verifiers.reward_model import OutcomeRewardModel

    msg, _ = timed(lambda: OutcomeRewardModel(str(tmp_path / "missing-rm"), device="cpu"))
    assert msg == f"verifier 'orm': reward model path {tmp_path / 'missing-rm'} does not exist"
    msg, _ = timed(lambda: OpenAIBackend("http://127.0.0.1:9/v1", "m", tokenizer="./missing-tok"))
    assert msg == "tokenizer path ./missing-tok does not exist"
    msg, _ = timed(lambda: OpenAIBackend("http://127.0.0.1:9/v1", "m", tokenizer="adaptive-test-org/no-such-tok"))
    assert "tokenizer 'adaptive-test-org/no-such-tok' is not a local path" in msg


def test_cli_missing_model_is_one_line_exit_2(capsys):
    from adaptive.cli import main

    assert main(["generate", "hi", "--model", "./no/such/dir"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "adaptive: error: model path ./no/such/dir does not exist"


@pytest.mark.model
def test_a_cached_hub_id_loads_offline_with_its_revision(tmp_path, monkeypatch, online):
    """A hub id in the local HF cache loads from it without touching the network (the hub here is a port
    nobody listens on), and the backend reports the cached commit as the model's revision."""
    from huggingface_hub import constants

    from adaptive.backends.hf import HFBackend
    from adaptive.backends.hf.loading import embedded_model_dir

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--adaptive-test-org--tiny"
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for f in embedded_model_dir().iterdir():
        if not f.name.startswith("adaptive-"):
            os.symlink(f, snap / f.name)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    online("http://127.0.0.1:9")
    monkeypatch.setattr(hub, "probe_hub", lambda *a, **k: pytest.fail("probed the hub for a cached model"))
    src = hub.resolve_model("adaptive-test-org/tiny")
    assert src.where == "cache" and src.kwargs == {"local_files_only": True}
    b = HFBackend.from_pretrained("adaptive-test-org/tiny", device="cpu")
    s = b.settings()
    assert s["model"] == "adaptive-test-org/tiny" and s["revision"] == commit
