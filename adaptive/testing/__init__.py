"""Test servers, for tests, benchmarks and scripts (not imported by ``import adaptive``; import the modules):

    from adaptive.testing.fake_openai import FakeOpenAIServer             # an OpenAI-compatible server, stdlib only
    from adaptive.testing.transformers_serve import start_transformers_serve  # `transformers serve` on a model
    from adaptive.testing.vllm_server import ensure_vllm_venv, start_vllm     # a real vLLM (CPU build) on a model
"""
