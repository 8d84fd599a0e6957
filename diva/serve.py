"""Serve any registry assistant as an OpenAI-compatible chat-completions endpoint.

    python -m diva serve --assistant cascade-mini [--host 127.0.0.1 --port 8000 --api-key KEY]

(or the key in $DIVA_API_KEY instead of --api-key).

`GET /v1/models` lists the one served model; `POST /v1/chat/completions` answers the whole
conversation: system, user and assistant messages go through the LLM's chat template, and a user
message's `input_audio` part (base64 wav/mp3/flac/ogg/...; an `audio_url` data: URL works too) is
speech, its text parts the prompt placed before it (DiVA hears earlier clips as virtual tokens, a
cascade as transcripts). A request that is one user message is answered as `python -m diva ask`
answers. `temperature` (default 0: greedy), `top_p`, `seed`, `max_tokens` /
`max_completion_tokens`, `stop` and vLLM's `top_k`, `min_tokens`, `repetition_penalty` are
honoured; `n` > 1 is refused. `"stream": true` answers with server-sent events. Concurrent
requests are decoded together (diva.batching); a client that goes away stops its generation.
When the assistant reads speech as text (a cascade's transcript, DiVA's bridge reading), the
response (or the stream's last choice chunk) says what it heard: `"diva": {"heard": "..."}`, a
field OpenAI clients ignore.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import threading
import time
import uuid

from fastapi import FastAPI, Header, Request as HttpRequest
from jinja2 import TemplateError
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from diva.assistants.base import Request, VoiceAssistant
from diva.batching import Batcher, ShuttingDown
from diva.errors import UNAVAILABLE, ArgumentParser, UsageError, fail
from diva.jobs import Job
from diva.reply import Reply
from diva.serve_request import (BadRequest, BodyTooLarge, ChatCall, authorized, parse_chat, read_body,
                                validation_message)

MAX_BODY_BYTES = 25 * 2**20   # a few clips of 30 s, base64


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def error_response(status: int, message: str, kind: str = "invalid_request_error", **headers) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status,
                        headers=headers or None)


class Channel:
    """A job's events, handed from the decoding thread to the request's event loop."""

    def __init__(self):
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue = asyncio.Queue()

    def put(self, kind: str, payload) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody listens any more
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (kind, payload))

    async def get(self):
        return await self.queue.get()


class JobEventStream(StreamingResponse):
    """Server-sent events whose job is cancelled however the response ends: finished, the client
    gone (Starlette cancels the stream when it hears the disconnect), or the server stopping."""

    def __init__(self, events, job: Job):
        super().__init__(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        self.job = job

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.job.cancel()


def make_job(call: ChatCall, assistant: VoiceAssistant, listener) -> Job:
    """One user message is a single question (as `ask` answers it); anything more a conversation."""
    if any(t.audio is not None for t in call.turns) and not assistant.accepts_audio:
        raise BadRequest(f"{assistant.name} reads text only: send the transcript as text")
    if len(call.turns) > 1:
        return Job(turns=call.turns, options=call.options, streamed=call.stream, listener=listener)
    turn = call.turns[0]
    if turn.audio is None and not assistant.accepts_text:
        raise BadRequest(f"{assistant.name} answers audio only: send an input_audio part")
    request = Request(audio=turn.audio, prompt=turn.text or None) if turn.audio is not None \
        else Request(transcript=turn.text)
    return Job(request, call.options, streamed=call.stream, listener=listener)


def finish_reason(reply: Reply, max_tokens: int) -> str:
    return "length" if reply.n_tokens >= max_tokens else "stop"


def heard_field(reply: Reply) -> dict:
    """The extension field that says what the assistant heard (empty when it did not read text)."""
    return {"diva": {"heard": reply.transcript}} if reply.transcript is not None else {}


def usage(reply: Reply) -> dict:
    return {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.n_tokens,
            "total_tokens": reply.prompt_tokens + reply.n_tokens}


def build_app(assistant: VoiceAssistant, api_key: str | None = None, *, max_body_bytes: int = MAX_BODY_BYTES,
              batch_window_s: float = 0.02, max_batch: int = 8) -> FastAPI:
    """A FastAPI app serving `assistant` under its registry name; `app.state.batcher` decodes."""
    batcher = Batcher(assistant, batch_window_s, max_batch)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        batcher.stop()

    app = FastAPI(title=f"diva serve: {assistant.name}", lifespan=lifespan)
    app.state.batcher = batcher
    started = int(time.time())

    @app.exception_handler(RequestValidationError)
    async def invalid(request, error: RequestValidationError):
        return error_response(400, validation_message(error))

    @app.get("/v1/models")
    def models(authorization: str | None = Header(default=None)):
        if not authorized(authorization, api_key):
            return error_response(401, "invalid or missing API key", "authentication_error")
        return {"object": "list", "data": [{"id": assistant.name, "object": "model", "created": started,
                                            "owned_by": "diva"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: HttpRequest):
        if not authorized(request.headers.get("authorization"), api_key):
            return error_response(401, "invalid or missing API key", "authentication_error")
        if batcher.stopping:
            return error_response(503, "the server is shutting down", "server_error")
        try:
            raw = await read_body(request, max_body_bytes)
            call = await run_in_threadpool(parse_chat, raw, assistant.name)  # decodes audio: off the loop
            channel = Channel()
            job = make_job(call, assistant, channel.put)
        except BodyTooLarge as error:
            return error_response(413, str(error), Connection="close")
        except BadRequest as error:
            return error_response(400, str(error))
        except LookupError as error:
            return error_response(404, str(error), "not_found_error")
        batcher.submit(job)
        completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        max_tokens = call.options.max_new_tokens

        def chunk(delta: dict, finish: str | None = None, **extra) -> str:
            body = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                    "model": assistant.name, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                    **extra}
            return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

        async def events():
            yield chunk({"role": "assistant", "content": ""})
            while True:
                kind, payload = await channel.get()
                if kind == "text":
                    yield chunk({"content": payload})
                    continue
                if kind == "error" or batcher.stopping:  # headers are sent: report in-band, as OpenAI does
                    message = str(payload) if kind == "error" else "the server is shutting down"
                    yield f"data: {json.dumps({'error': {'message': message, 'type': 'server_error'}})}\n\n"
                    return
                break
            yield chunk({}, finish_reason(payload, max_tokens), **heard_field(payload))
            if call.include_usage:
                body = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                        "model": assistant.name, "choices": [], "usage": usage(payload)}
                yield f"data: {json.dumps(body)}\n\n"
            yield "data: [DONE]\n\n"

        if call.stream:
            return JobEventStream(events(), job)
        try:
            reply = await wait_reply(job, channel, request)
        except ShuttingDown as error:
            return error_response(503, str(error), "server_error")
        except (ValueError, TemplateError) as error:  # what was sent cannot be answered (e.g. audio
            return error_response(400, str(error))     # a backend cannot hear, turns its template refuses)
        except Exception as error:  # noqa: BLE001 - an OpenAI-shaped 500 with the reason
            return error_response(500, f"{type(error).__name__}: {error}", "server_error")
        if reply is None:  # the client went away; nobody reads this
            return error_response(499, "client closed the request")
        if batcher.stopping:
            return error_response(503, "the server is shutting down", "server_error")
        return {"id": completion_id, "object": "chat.completion", "created": created, "model": assistant.name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                             "finish_reason": finish_reason(reply, max_tokens)}],
                "usage": usage(reply), **heard_field(reply)}

    return app


async def wait_reply(job: Job, channel: Channel, request: HttpRequest, poll_s: float = 0.25) -> Reply | None:
    """The job's reply; None (and the job cancelled) when the client disconnects first."""
    try:
        while True:
            try:
                kind, payload = await asyncio.wait_for(channel.get(), poll_s)
            except asyncio.TimeoutError:
                if await request.is_disconnected():
                    return None
                continue
            if kind == "error":
                raise payload
            if kind == "done":
                return payload
    finally:
        job.cancel()  # a no-op once it is done


def watch_parent(pid: int, every_s: float = 1.0) -> None:
    """SIGTERM this process (a clean shutdown) once `pid` is no longer its parent: the program
    that started it has ended, even by kill -9."""
    def watch() -> None:
        while os.getppid() == pid:
            time.sleep(every_s)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="watch-parent").start()


def serve(app: FastAPI, host: str, port: int) -> None:
    """uvicorn, where the first SIGTERM or Ctrl-C also ends every generation at its next token, so
    open streams close and the process exits (status 0) without a second signal."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            app.state.batcher.stop()
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            self.should_exit = True

    Server(uvicorn.Config(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=10)).run()


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m diva serve", description=__doc__.split("\n")[0])
    parser.add_argument("--assistant", required=True, help="registry name (see `python -m diva list`)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--api-key", default=os.environ.get("DIVA_API_KEY") or None,
                        help="require `Authorization: Bearer KEY` (default: $DIVA_API_KEY, which keeps the key "
                             "out of process listings)")
    parser.add_argument("--max-body-mb", type=float, default=MAX_BODY_BYTES / 2**20,
                        help="refuse larger request bodies with 413 (default 25)")
    parser.add_argument("--batch-window-ms", type=float, default=20.0,
                        help="how long concurrent requests are gathered into one batch (default 20)")
    parser.add_argument("--max-batch", type=int, default=8, help="most requests decoded together (default 8)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for decoding (default: torch's own, one per core)")
    parser.add_argument("--parent-pid", type=int, default=None,
                        help="exit when this process ends (a server started by another program, e.g. the arena)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            return fail(UsageError(f"--threads must be >= 1, not {args.threads}"))
        import torch
        torch.set_num_threads(args.threads)
    if args.parent_pid is not None:
        watch_parent(args.parent_pid)

    from diva.assistants import AssistantNotAvailable, load_assistant
    try:
        assistant = load_assistant(args.assistant)
    except UsageError as error:
        return fail(error)
    except AssistantNotAvailable as error:
        return fail(error, UNAVAILABLE)

    print(f"serving {assistant.name} at http://{args.host}:{args.port}/v1", flush=True)
    app = build_app(assistant, args.api_key, max_body_bytes=int(args.max_body_mb * 2**20),
                    batch_window_s=args.batch_window_ms / 1000, max_batch=args.max_batch)
    serve(app, args.host, args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
