"""The Starlette app: OpenAI-compatible routes in front of one Controller.

    POST /v1/chat/completions, /v1/completions   answer (JSON, or SSE with stream: true)
    GET  /v1/models                              the one served model
    GET  /health                                 liveness and queue (no auth)
    GET  /metrics                                Prometheus text format

Every error is OpenAI's {"error": {"message", "type", "param", "code"}} with its HTTP status; a bug is a 500
naming the request id (also in the `x-request-id` header) while the traceback goes to the server log.
With a bearer key configured (the variable named by ServeSettings.api_key_env), /v1/* and /metrics need
`Authorization: Bearer <key>` (compared in constant time).

Streaming: a request whose plan is one sample with nothing to decide after it streams token by token
(Controller.stream); any other streams its answer once decided. The response starts with the first
message from the worker, so an error before it is a plain HTTP error; a later one is an `error` event.
Every stream ends with `data: [DONE]`, after a usage chunk when `stream_options.include_usage` is set.
"""
from __future__ import annotations

import asyncio
import contextlib
import copy
import hmac
import json
import logging
import os
import re
import threading
import time
import uuid

from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import AdaptiveError, InputError, PlanError
from ..generator import DEFAULT_PLAN
from .admission import LoadGovernor, Overloaded
from .dispatch import Dispatcher, Job, cap_plan
from .metrics import CONTENT_TYPE, ServeMetrics
from .schemas import ApiError, Chunks, ServeRequest, bad, parse_request, response
from .settings import ServeSettings

log = logging.getLogger("adaptive.serve")

# Plan fields that came from an OpenAI field: an error in one names the field the caller sent.
WIRE_NAMES = {"max_new_tokens": "max_tokens", "max_samples": "n", "temperature": "temperature", "top_p": "top_p",
              "seed": "seed"}


def api_error(e: BaseException, request_id: str) -> ApiError:
    """Any exception -> the ApiError the caller gets. Not the caller's fault and not the backend's: a 500
    that names the request id; the traceback goes to the log."""
    if isinstance(e, ApiError):
        return e
    if isinstance(e, Overloaded):
        return ApiError(429, str(e), code="rate_limit_exceeded", headers={"Retry-After": str(e.retry_after_s)})
    if isinstance(e, PlanError):
        return bad(str(e), WIRE_NAMES.get(e.field, f"adaptive.{e.field}"))
    if isinstance(e, InputError) or type(e).__name__ in ("CapabilityError", "UnknownNameError", "ConfigError"):
        return bad(str(e), None)
    if isinstance(e, AdaptiveError):  # the model backend failed (an upstream server after its retries)
        log.error("request %s: backend failed: %s", request_id, e)
        return ApiError(502, f"the model backend failed (request id {request_id}): {_short(e)}",
                        code="backend_error")
    log.error("request %s: internal error", request_id, exc_info=e)
    return ApiError(500, f"internal server error (request id {request_id})", code="internal_error")


def _short(e: BaseException) -> str:
    """What went wrong, without the upstream's address (that stays in the server log)."""
    text = str(e)
    if "last error:" in text:  # the openai backend's message ends with what went wrong
        text = "last error:" + text.split("last error:", 1)[1]
    return re.sub(r"\b\w+://\S+", "<upstream>", text)[:200]


def error_response(err: ApiError, request_id: str) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers={**err.headers, "x-request-id": request_id})


class PromptCounter:
    """Prompt tokens as the backend will see them (chat template included), on a private copy of its
    tokenizer so counting never races the worker threads; without a tokenizer, UTF-8 bytes / 3 (an
    estimate that errs high for English text)."""

    def __init__(self, backend):
        tok = getattr(backend, "tokenizer", None)
        self.tok = copy.deepcopy(tok) if tok is not None else None
        self.chat = self.tok is not None and bool(getattr(self.tok, "chat_template", None))
        self._lock = threading.Lock()

    def __call__(self, prompt, raw: bool) -> int:
        text = prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)
        if self.tok is None:
            return -(-len(text.encode()) // 3)
        with self._lock:
            if not raw and self.chat:
                msgs = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
                text = self.tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
                return len(self.tok(text, add_special_tokens=False).input_ids)
            return len(self.tok(text).input_ids)


def create_app(controller, settings: ServeSettings, *, policies: dict | None = None, extractor: str = "auto",
               api_key: str | None = None) -> Starlette:
    """The app around `controller` (its backend, estimator and latency targets). `policies`: name -> Policy,
    the allow-list a request may pick from (default: {settings.default_policy: the controller's policy}).
    `api_key` overrides the variable named by settings.api_key_env. Worker threads start with the app's
    lifespan and are joined when it ends."""
    from ..answers import extractor_for

    policies = dict(policies or {settings.default_policy: controller.policy})
    if settings.default_policy not in policies:
        raise InputError(f"default policy {settings.default_policy!r} is not among the policies given "
                         f"({', '.join(sorted(policies))})")
    for name, pol in policies.items():
        if pol.needs_estimator and controller.estimator is None:
            raise InputError(f"policy {name!r} needs a difficulty estimate per prompt: give the server an "
                             "estimator (--estimator FILE)")
    key = api_key if api_key is not None else (os.environ.get(settings.api_key_env) if settings.api_key_env else None)
    key = key or None
    extract = extractor_for(extractor)
    governor = LoadGovernor(settings)
    metrics = ServeMetrics(governor)
    count_prompt = PromptCounter(controller.backend)
    thread_safe = controller.backend.settings().get("kind") == "openai"
    state: dict = {}

    # -- helpers -----------------------------------------------------------------------------------
    def check_auth(request: Request) -> None:
        if key is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
            raise ApiError(401, "invalid or missing API key: send 'Authorization: Bearer <key>'", None,
                           "invalid_api_key", headers={"WWW-Authenticate": "Bearer"})

    async def read_json(request: Request):
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > settings.max_body_bytes:
            raise ApiError(413, f"request body of {length} bytes is over the limit of {settings.max_body_bytes}",
                           None, "body_too_large")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > settings.max_body_bytes:
                raise ApiError(413, f"request body is over the limit of {settings.max_body_bytes} bytes", None,
                               "body_too_large")
            chunks.append(chunk)
        try:
            return json.loads(b"".join(chunks) or b"null")
        except (ValueError, UnicodeDecodeError) as e:
            raise bad(f"the request body is not valid JSON: {e}", None, "invalid_json") from None

    def check_plan(req: ServeRequest, policy) -> None:
        """The request's overrides on the policy's plan, before anything is queued (400 on a bad one)."""
        plan = getattr(policy, "plan", None) or getattr(policy, "base_plan", None) \
            or next(iter(getattr(policy, "bin_plans", []) or []), None) or DEFAULT_PLAN
        try:
            cap_plan(plan.override(**req.overrides), settings.max_budget, settings.max_tokens).check_names()
        except PlanError as e:
            raise bad(str(e), WIRE_NAMES.get(e.field, f"adaptive.{e.field}")) from None
        except TypeError as e:  # e.g. a list where a name is expected
            raise bad(f"adaptive: {e}", "adaptive") from None

    def poster(inbox: asyncio.Queue):
        loop = asyncio.get_running_loop()

        def post(msg: tuple) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
                loop.call_soon_threadsafe(inbox.put_nowait, msg)
        return post

    async def next_message(inbox: asyncio.Queue, job: Job, request: Request | None) -> tuple | None:
        """The job's next message; None when the client went away; ApiError(504) past the deadline."""
        left = job.deadline - time.monotonic()
        get = asyncio.ensure_future(inbox.get())
        waits = {get}
        gone = None
        if request is not None:
            gone = asyncio.ensure_future(_disconnected(request))
            waits.add(gone)
        try:
            done, _ = await asyncio.wait(waits, timeout=max(left, 0.0), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in waits:
                if not t.done():
                    t.cancel()
        if get in done:
            return get.result()
        job.cancel()
        if gone is not None and gone in done:
            return None
        raise ApiError(504, f"no answer within the server's time limit of {settings.request_timeout_s:g} s",
                       None, "timeout")

    # -- routes ------------------------------------------------------------------------------------
    async def completions(request: Request, endpoint: str) -> Response:
        rid = uuid.uuid4().hex[:24]
        route = "chat" if endpoint == "chat" else "completions"
        try:
            check_auth(request)
            body = await read_json(request)
            req = parse_request(body, endpoint, model_name=settings.model_name, policies=policies,
                                max_budget=settings.max_budget, max_tokens=settings.max_tokens)
            req.id = rid
            query = controller.query(req.prompt, extract=extract, raw=req.raw)  # its clock starts: arrival
            query.stop = req.stop
            policy = policies[req.policy or settings.default_policy]
            check_plan(req, policy)
            n_prompt = await asyncio.to_thread(count_prompt, req.prompt, req.raw)
            if n_prompt > settings.max_prompt_tokens:
                raise bad(f"the prompt is {n_prompt} tokens; this server's limit is {settings.max_prompt_tokens}",
                          "messages" if endpoint == "chat" else "prompt", "context_length_exceeded")
            governor.admit()
        except Exception as e:
            err = api_error(e, rid)
            metrics.request(route, err.status)
            return error_response(err, rid)
        inbox: asyncio.Queue = asyncio.Queue()
        job = Job(req=req, query=query, policy=policy, post=poster(inbox),
                  deadline=time.monotonic() + settings.request_timeout_s)
        try:
            state["dispatcher"].submit(job)
        except Exception as e:
            governor.dropped(started=False)
            err = api_error(e, rid)
            metrics.request(route, err.status)
            return error_response(err, rid)
        try:
            msg = await next_message(inbox, job, request)
            if msg is None:  # the client left while waiting
                metrics.request(route, 499)
                return Response(status_code=499)
            if msg[0] == "error":
                raise msg[1]
        except asyncio.CancelledError:
            job.cancel()
            raise
        except Exception as e:
            job.cancel()
            err = api_error(e, rid)
            metrics.request(route, err.status)
            return error_response(err, rid)
        if req.stream:
            metrics.request(route, 200)
            return EventSourceResponse(sse(req, job, inbox, msg), sep="\n", ping=15,
                                       headers={"x-request-id": rid, "Cache-Control": "no-cache"})
        _, result, load = msg
        metrics.request(route, 200)
        return JSONResponse(response(result, req, settings.model_name, load), headers={"x-request-id": rid})

    async def sse(req: ServeRequest, job: Job, inbox: asyncio.Queue, msg: tuple):
        chunks = Chunks(req, settings.model_name)
        try:
            first = chunks.first()
            if first is not None:
                yield json.dumps(first)
            while True:
                if msg[0] == "delta":
                    yield json.dumps(chunks.delta(msg[1]))
                elif msg[0] == "done":
                    for c in chunks.last(msg[1], msg[2]):
                        yield json.dumps(c)
                    break
                else:
                    yield json.dumps(api_error(msg[1], req.id).body())
                    break
                try:
                    msg = await next_message(inbox, job, None)
                except ApiError as e:
                    yield json.dumps(e.body())
                    break
            yield "[DONE]"
        finally:
            job.cancel()  # the stream ended or the client left: a live generation stops at its next token

    async def chat(request: Request) -> Response:
        return await completions(request, "chat")

    async def text(request: Request) -> Response:
        return await completions(request, "completions")

    async def models(request: Request) -> Response:
        rid = uuid.uuid4().hex[:24]
        try:
            check_auth(request)
        except ApiError as e:
            metrics.request("models", e.status)
            return error_response(e, rid)
        metrics.request("models", 200)
        return JSONResponse({"object": "list", "data": [{"id": settings.model_name, "object": "model",
                                                         "created": state.get("started", 0), "owned_by": "adaptive"}]})

    async def health(request: Request) -> Response:
        d = state.get("dispatcher")
        ok = d is not None and d.alive
        return JSONResponse({"status": "ok" if ok else "unavailable", "model": settings.model_name,
                             "waiting": governor.waiting, "running": governor.running},
                            status_code=200 if ok else 503)

    async def prometheus(request: Request) -> Response:
        rid = uuid.uuid4().hex[:24]
        try:
            check_auth(request)
        except ApiError as e:
            return error_response(e, rid)
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    async def not_found(request: Request, exc) -> Response:
        status = getattr(exc, "status_code", 404)
        msg = "method not allowed" if status == 405 else f"no route {request.url.path}"
        return error_response(ApiError(status, msg, None, "not_found" if status == 404 else "method_not_allowed"),
                              uuid.uuid4().hex[:24])

    async def crashed(request: Request, exc: Exception) -> Response:
        rid = uuid.uuid4().hex[:24]
        return error_response(api_error(exc, rid), rid)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        def answered(job, result):
            metrics.answered(result)

        state["dispatcher"] = Dispatcher(controller, governor, workers=settings.workers if thread_safe else 1,
                                         max_batch=settings.max_batch, max_samples=settings.max_budget,
                                         max_tokens=settings.max_tokens, on_finished=answered)
        state["started"] = int(time.time())
        log.info("serving %s: %s", settings.model_name, settings.slo.describe())
        try:
            yield
        finally:
            await asyncio.to_thread(state["dispatcher"].close)

    routes = [Route("/v1/chat/completions", chat, methods=["POST"]),
              Route("/v1/completions", text, methods=["POST"]),
              Route("/v1/models", models, methods=["GET"]),
              Route("/health", health, methods=["GET"]),
              Route("/metrics", prometheus, methods=["GET"])]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={404: not_found, 405: not_found, Exception: crashed})
    app.state.governor, app.state.metrics, app.state.settings = governor, metrics, settings
    return app


async def _disconnected(request: Request) -> None:
    """Returns when the client has closed the connection (the body was read already)."""
    while True:
        msg = await request.receive()
        if msg["type"] == "http.disconnect":
            return
