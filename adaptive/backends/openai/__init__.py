"""The Backend protocol over an OpenAI-compatible HTTP server (vLLM, SGLang, `transformers serve`, ...).

    backend.py       OpenAIBackend: requests -> HTTP jobs (n samples, or split into single calls), results
    wire.py          request bodies (chat, chat with an assistant prefix, completions); streamed chunks -> choices
    http.py          Session: the event-loop thread, httpx client, retries and backoff; SSE lines
    capabilities.py  what the server supports, configured or learned from its 400/422 answers
"""
from .backend import OpenAIBackend
from .http import ServerStats

__all__ = ["OpenAIBackend", "ServerStats"]
