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


def pytest_terminal_summary(terminalreporter):
    if FUZZ_INPUTS:
        parts = ", ".join(f"{k} {v}" for k, v in sorted(FUZZ_INPUTS.items()))
        terminalreporter.write_line(f"fuzz: {sum(FUZZ_INPUTS.values())} inputs tried ({parts})")
