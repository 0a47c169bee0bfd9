"""`agentkd serve`: a distilled student behind an OpenAI-compatible chat endpoint.

An author's own LangChain or LangGraph app then uses the student like any hosted model::

    agentkd serve --student runs/sft --port 8000
    ChatOpenAI(model="student", base_url="http://127.0.0.1:8000/v1", api_key="none")

and agentkd itself can use it wherever it takes ``openai:MODEL`` (a teacher for ``collect``, the
cascade's teacher, a student in ``eval``) with ``OPENAI_BASE_URL`` set. The routes are the subset
clients call: ``GET /v1/models`` and ``POST /v1/chat/completions`` (``n``, ``temperature``,
``top_p``, ``max_tokens``/``max_completion_tokens``, ``stop``; no streaming, no tools). Requests that
arrive together are generated as one batch, the way an inference server batches its clients.
Errors use OpenAI's error body, so clients raise their usual exceptions (a wrong key →
``AuthenticationError``).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agentkd.errors import AgentKDError


class RequestError(AgentKDError):
    """A chat request the server cannot answer; ``status`` is its HTTP status."""

    def __init__(self, message: str, status: int = 400, code: str | None = None):
        super().__init__(message)
        self.status, self.code = status, code


def error_response(message: str, status: int, code: str | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": code}}, status)


def _text(content: Any) -> str:
    """Message content as text: a string, or OpenAI's list of parts (text parts only)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"]
        if len(parts) == len(content):
            return "".join(parts)
    raise RequestError("message content must be a string or a list of text parts")


@dataclass(frozen=True)
class ChatRequest:
    conversation: list[dict[str, str]]
    n: int
    max_tokens: int
    temperature: float
    top_p: float
    stop: tuple[str, ...]

    @classmethod
    def parse(cls, body: Any, default_max_tokens: int) -> ChatRequest:
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
            raise RequestError("the request needs a non-empty 'messages' list")
        if body.get("stream"):
            raise RequestError("streaming is not supported by agentkd serve; send stream=false")
        conversation = []
        for message in body["messages"]:
            if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant"):
                raise RequestError("each message needs a role of system, user or assistant")
            conversation.append({"role": message["role"], "content": _text(message.get("content", ""))})
        stop = body.get("stop") or ()
        stop = (stop,) if isinstance(stop, str) else tuple(stop)
        try:
            max_tokens = int(body.get("max_completion_tokens") or body.get("max_tokens") or default_max_tokens)
            n, temperature = int(body.get("n") or 1), float(body.get("temperature") or 0.0)
            top_p = float(body.get("top_p") if body.get("top_p") is not None else 1.0)
        except (TypeError, ValueError) as exc:
            raise RequestError(f"bad sampling parameter: {exc}") from None
        if not 1 <= n <= 64 or max_tokens < 1 or temperature < 0 or not 0 < top_p <= 1:
            raise RequestError("need 1 <= n <= 64, max_tokens >= 1, temperature >= 0 and 0 < top_p <= 1")
        return cls(conversation, n, max_tokens, temperature, top_p, stop)


class Batcher:
    """Gathers the requests that arrive within ``max_wait_s`` into one ``generate`` call per sampling setting."""

    def __init__(self, generator: Any, max_batch: int = 32, max_wait_s: float = 0.01):
        self.generator, self.max_batch, self.max_wait_s = generator, max_batch, max_wait_s
        self.queue: asyncio.Queue[tuple[ChatRequest, asyncio.Future]] = asyncio.Queue()
        self.batches: list[int] = []  # conversations per generate call, for tests and logs

    async def submit(self, request: ChatRequest) -> list[Any]:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((request, future))
        return await future

    async def run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            deadline = time.monotonic() + self.max_wait_s
            while sum(r.n for r, _ in batch) < self.max_batch and (left := deadline - time.monotonic()) > 0:
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), left))
                except TimeoutError:
                    break
            groups: dict[tuple, list[tuple[ChatRequest, asyncio.Future]]] = {}
            for request, future in batch:
                key = (request.max_tokens, request.temperature, request.top_p)
                groups.setdefault(key, []).append((request, future))
            for (max_tokens, temperature, top_p), items in groups.items():
                conversations = [r.conversation for r, _ in items for _ in range(r.n)]
                continued = [c[-1]["role"] == "assistant" for c in conversations]  # prefill: continue it
                self.batches.append(len(conversations))
                try:
                    results = await asyncio.to_thread(self.generator.generate, conversations, max_tokens,
                                                      temperature, top_p, continued)
                except Exception as exc:  # noqa: BLE001 - a failed generation fails its requests, not the server
                    for _, future in items:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                start = 0
                for request, future in items:
                    if not future.done():
                        future.set_result(results[start : start + request.n])
                    start += request.n


def _cut(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    cut = min((i for s in stop if s and (i := text.find(s)) >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def completion(request: ChatRequest, results: list[Any], model: str) -> dict[str, Any]:
    """The OpenAI ``chat.completion`` body for one request's samples."""
    choices = []
    for index, result in enumerate(results):
        text, stopped = _cut(result.text, request.stop)
        finish = "stop" if stopped or result.finish_reason != "length" else "length"
        choices.append({"index": index, "message": {"role": "assistant", "content": text}, "finish_reason": finish,
                        "logprobs": None})
    prompt_tokens = results[0].prompt_tokens if results else 0
    completion_tokens = sum(result.completion_tokens for result in results)
    return {
        "id": f"chatcmpl-{secrets.token_hex(12)}", "object": "chat.completion", "created": int(time.time()),
        "model": model, "choices": choices,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def build_app(generator: Any, *, model_name: str = "student", api_key: str | None = None, max_batch: int = 32,
              max_tokens: int = 256) -> Starlette:
    """The Starlette app serving ``generator`` (an :class:`~agentkd.policies.hf.HFGenerator`) as ``model_name``."""
    batcher = Batcher(generator, max_batch=max_batch)

    def authorised(request: Request) -> bool:
        return api_key is None or secrets.compare_digest(request.headers.get("authorization", ""), f"Bearer {api_key}")

    async def models(request: Request) -> JSONResponse:
        if not authorised(request):
            return error_response("Incorrect API key provided", 401, "invalid_api_key")
        return JSONResponse({"object": "list", "data": [
            {"id": model_name, "object": "model", "created": 0, "owned_by": "agentkd"}]})

    async def chat(request: Request) -> JSONResponse:
        if not authorised(request):
            return error_response("Incorrect API key provided", 401, "invalid_api_key")
        try:
            body = await request.json()
        except ValueError:
            return error_response("the request body is not JSON", 400)
        if isinstance(body, dict) and body.get("model") not in (None, model_name):
            return error_response(f"The model {body.get('model')!r} does not exist; this server serves "
                                  f"{model_name!r}", 404, "model_not_found")
        try:
            parsed = ChatRequest.parse(body, max_tokens)
        except RequestError as exc:
            return error_response(str(exc), exc.status, exc.code)
        try:
            results = await batcher.submit(parsed)
        except Exception as exc:  # noqa: BLE001 - the client gets a 500 with the reason, the server goes on
            return error_response(f"generation failed: {type(exc).__name__}: {exc}", 500)
        return JSONResponse(completion(parsed, results, model_name))

    async def lifespan(app: Starlette):
        worker = asyncio.create_task(batcher.run())
        yield
        worker.cancel()

    app = Starlette(routes=[Route("/v1/models", models), Route("/v1/chat/completions", chat, methods=["POST"])],
                    lifespan=lifespan)
    app.state.batcher = batcher
    return app
