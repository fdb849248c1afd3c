import os

import pytest

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def hf_backend():
    """The embedded model on CPU, loaded once per test session (converted once into the user cache)."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    from adaptive.backends.hf import HFBackend

    return HFBackend.from_pretrained(None, device="cpu")


@pytest.fixture
def totals_delta(hf_backend):
    """Snapshot of the backend's running totals; call it to get what was spent since."""
    import dataclasses

    before = dataclasses.replace(hf_backend.totals)

    def delta():
        now = hf_backend.totals
        return {f: getattr(now, f) - getattr(before, f)
                for f in ("prompt_tokens", "generated_tokens", "samples", "forward_passes", "model_calls")}

    return delta


# Inputs tried by the fuzz tests (tests/test_fuzz.py), reported at the end of the run.
FUZZ_INPUTS: dict[str, int] = {}


@pytest.fixture(scope="session")
def fuzz_inputs():
    return FUZZ_INPUTS


# --- a real vLLM server, for the tests marked `vllm` ---------------------------------------------------
#
# One server per session, on the embedded model in float32 (its logprobs then match the HF backend's), with
# --enable-prompt-tokens-details (cached prompt tokens in usage). The tests run last, so the server runs only
# while they do. vLLM is installed into the user cache on first use (about 3 min); a machine that cannot
# install it skips them, and the reason is printed in the run's summary, as are the install and start times.

VLLM_MODEL = "smollm2-135m-instruct"
# thinking_token_budget (test_vllm.py): start/end strings only. No --reasoning-parser: vLLM's <think> parsers
# need the markers as single vocabulary tokens, and SmolLM2 splits them ("<", "think", ">"). Requests
# without the field are untouched (vLLM keeps budget state only for requests that set it).
VLLM_REASONING = '{"reasoning_start_str": "<think>", "reasoning_end_str": "</think>"}'
VLLM_REPORT: dict = {}


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.get_closest_marker("vllm") is not None)  # stable: vLLM tests last


@pytest.fixture(scope="session")
def vllm_server():
    import time

    from adaptive.testing import vllm_server as V

    t0 = time.monotonic()
    VLLM_REPORT["installed_before"] = V.installed() is not None
    try:
        venv = V.ensure_vllm_venv()
    except V.UnavailableError as e:
        VLLM_REPORT["skipped"] = str(e)
        pytest.skip(f"vLLM cannot be installed here: {e}")
    VLLM_REPORT["install_s"] = time.monotonic() - t0
    server = V.start_vllm(V.embedded_model_dir(), venv=venv, served_model_name=VLLM_MODEL,
                          extra_args=["--enable-prompt-tokens-details", "--reasoning-config", VLLM_REASONING])
    # (a failure to start is an error, not a skip)
    try:
        VLLM_REPORT["start_s"] = server.startup_s
        t1 = time.monotonic()
        # The first request is slow (warm-up): spend it here, not in a test's timing.
        V.http_json(server.base_url + "/chat/completions", timeout=300, data={
            "model": server.model, "max_tokens": 2, "logprobs": True, "top_logprobs": 5,
            "messages": [{"role": "user", "content": "Hi"}]})
        VLLM_REPORT["warmup_s"] = time.monotonic() - t1
        VLLM_REPORT["rss_mib"] = server.rss_bytes() >> 20
        t2 = time.monotonic()
        yield server
        VLLM_REPORT["tests_s"] = time.monotonic() - t2
    finally:
        t3 = time.monotonic()
        server.stop()
        VLLM_REPORT["stop_s"] = time.monotonic() - t3
        VLLM_REPORT["total_s"] = time.monotonic() - t0


def pytest_terminal_summary(terminalreporter):
    if FUZZ_INPUTS:
        parts = ", ".join(f"{k} {v}" for k, v in sorted(FUZZ_INPUTS.items()))
        terminalreporter.write_line(f"fuzz: {sum(FUZZ_INPUTS.values())} inputs tried ({parts})")
    r = VLLM_REPORT
    if not r:
        return
    if "skipped" in r:
        terminalreporter.write_line(f"vLLM tests SKIPPED: {r['skipped']}", yellow=True, bold=True)
        return
    install = "already installed" if r.get("installed_before") else f"installed in {r.get('install_s', 0):.0f} s"
    terminalreporter.write_line(
        f"vLLM: {install}; started in {r.get('start_s', 0):.0f} s (+{r.get('warmup_s', 0):.0f} s first request, "
        f"{r.get('rss_mib', 0)} MiB); tests {r.get('tests_s', 0):.0f} s; stopped in {r.get('stop_s', 0):.1f} s; "
        f"{r.get('total_s', 0):.0f} s in all", bold=True)
