"""Serve any registry assistant as an OpenAI-compatible chat-completions endpoint.

    python -m diva serve --assistant cascade-mini [--host 127.0.0.1 --port 8000 --api-key KEY]

`GET /v1/models` lists the one served model; `POST /v1/chat/completions` answers the last user
message: its `input_audio` part (base64 wav/mp3/flac/ogg; an `audio_url` data: URL works too) is
the speech, its text parts are the prompt placed before it. A message with no audio is a
transcript for the text modality. `"stream": true` answers with server-sent events, as OpenAI
and vLLM do. Single-turn: earlier messages are ignored.
"""
from __future__ import annotations

import base64
import binascii
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterator

from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict

from diva.assistants.base import DEFAULT_MAX_NEW_TOKENS, Request, VoiceAssistant
from diva.audio import AudioError, load_audio
from diva.errors import UNAVAILABLE, ArgumentParser, UsageError, fail

MAX_TOKENS_LIMIT = 2048
AUDIO_FORMATS = {"wav", "mp3", "flac", "ogg", "webm", "m4a"}


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # temperature, top_p, ... are accepted and ignored
    model: str
    messages: list[dict]
    stream: bool = False
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stream_options: dict | None = None


class BadRequest(ValueError):
    """A request we refuse with HTTP 400 and a message."""


def error_response(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status)


def decode_audio(b64: str, fmt: str):
    """Base64 audio bytes -> 16 kHz samples, via a temporary file so ffmpeg can read any format."""
    fmt = (fmt or "wav").lower()
    if fmt not in AUDIO_FORMATS:
        raise BadRequest(f"unsupported audio format {fmt!r}; use one of {sorted(AUDIO_FORMATS)}")
    try:
        data = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise BadRequest("input_audio.data is not valid base64") from None
    with tempfile.NamedTemporaryFile(suffix=f".{fmt}") as f:
        f.write(data)
        f.flush()
        try:
            return load_audio(f.name, long_audio="truncate")
        except AudioError as error:
            raise BadRequest(f"bad audio: {str(error).replace(Path(f.name).name, 'input_audio')}") from None


def parse_message(messages: list[dict]) -> Request:
    """The last user message as a Request: (audio, prompt) or, without audio, a transcript."""
    users = [m for m in messages if m.get("role") == "user"]
    if not users:
        raise BadRequest("messages must contain a user message")
    content = users[-1].get("content")
    parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
    if not isinstance(parts, list):
        raise BadRequest("message content must be a string or a list of parts")
    texts, audios = [], []
    for part in parts:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            texts.append(str(part.get("text", "")))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            audios.append(decode_audio(audio.get("data", ""), audio.get("format", "wav")))
        elif kind == "audio_url":
            url = str((part.get("audio_url") or {}).get("url", ""))
            if not url.startswith("data:") or ";base64," not in url:
                raise BadRequest("audio_url must be a base64 data: URL (this server fetches nothing)")
            head, b64 = url.split(";base64,", 1)
            audios.append(decode_audio(b64, head.split("/")[-1]))
        else:
            raise BadRequest(f"unsupported content part type {kind!r}")
    if len(audios) > 1:
        raise BadRequest("send one audio clip per request")
    text = "\n".join(t for t in texts if t.strip()) or None
    if audios:
        return Request(audio=audios[0], prompt=text)
    if text is None:
        raise BadRequest("the user message has neither audio nor text")
    return Request(transcript=text)


def build_app(assistant: VoiceAssistant, api_key: str | None = None) -> FastAPI:
    """A FastAPI app serving `assistant` under its registry name."""
    app = FastAPI(title=f"diva serve: {assistant.name}")
    started = int(time.time())

    def check(body: ChatRequest, authorization: str | None) -> tuple[Request, int]:
        if api_key and authorization != f"Bearer {api_key}":
            raise PermissionError("invalid or missing API key")
        if body.model != assistant.name:
            raise LookupError(f"model {body.model!r} is not served here; this server serves {assistant.name!r}")
        max_tokens = body.max_completion_tokens or body.max_tokens or DEFAULT_MAX_NEW_TOKENS
        if not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
            raise BadRequest(f"max_tokens must be between 1 and {MAX_TOKENS_LIMIT}")
        request = parse_message(body.messages)
        if request.transcript is not None and not assistant.accepts_text:
            raise BadRequest(f"{assistant.name} answers audio only: send an input_audio part")
        if request.audio is not None and not assistant.accepts_audio:
            raise BadRequest(f"{assistant.name} reads text only: send the transcript as text")
        return request, max_tokens

    @app.get("/v1/models")
    def models(authorization: str | None = Header(default=None)):
        if api_key and authorization != f"Bearer {api_key}":
            return error_response(401, "invalid or missing API key", "authentication_error")
        return {"object": "list", "data": [{"id": assistant.name, "object": "model", "created": started,
                                            "owned_by": "diva"}]}

    @app.post("/v1/chat/completions")
    def chat(body: ChatRequest, authorization: str | None = Header(default=None)):
        try:
            request, max_tokens = check(body, authorization)
        except PermissionError as error:
            return error_response(401, str(error), "authentication_error")
        except LookupError as error:
            return error_response(404, str(error), "not_found_error")
        except BadRequest as error:
            return error_response(400, str(error))
        completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if body.stream:
            usage = bool((body.stream_options or {}).get("include_usage"))
            events = stream_events(assistant, request, max_tokens, completion_id, created, usage)
            return StreamingResponse(events, media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        stream = assistant.stream(request.audio, request.prompt, transcript=request.transcript,
                                  max_new_tokens=max_tokens)
        stream.text()
        reply = stream.reply
        return {"id": completion_id, "object": "chat.completion", "created": created, "model": assistant.name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                             "finish_reason": finish_reason(reply.n_tokens, max_tokens)}],
                "usage": usage_dict(reply.n_tokens)}

    return app


def finish_reason(n_tokens: int, max_tokens: int) -> str:
    return "length" if n_tokens >= max_tokens else "stop"


def usage_dict(n_tokens: int) -> dict:
    return {"prompt_tokens": 0, "completion_tokens": n_tokens, "total_tokens": n_tokens}


def stream_events(assistant: VoiceAssistant, request: Request, max_tokens: int, completion_id: str,
                  created: int, include_usage: bool) -> Iterator[str]:
    """Server-sent events: a role chunk, one chunk per text delta, a finish chunk, [DONE]."""
    def chunk(delta: dict, finish: str | None = None, **extra) -> str:
        body = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                "model": assistant.name, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return f"data: {json.dumps(body | extra, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    try:
        stream = assistant.stream(request.audio, request.prompt, transcript=request.transcript,
                                  max_new_tokens=max_tokens)
        for delta in stream:
            yield chunk({"content": delta})
    except Exception as error:  # headers are sent: report in-band, as OpenAI does
        yield f"data: {json.dumps({'error': {'message': str(error), 'type': 'server_error'}})}\n\n"
        return
    reply = stream.reply
    yield chunk({}, finish_reason(reply.n_tokens, max_tokens))
    if include_usage:
        body = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                "model": assistant.name, "choices": [], "usage": usage_dict(reply.n_tokens)}
        yield f"data: {json.dumps(body)}\n\n"
    yield "data: [DONE]\n\n"


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m diva serve", description=__doc__.split("\n")[0])
    parser.add_argument("--assistant", required=True, help="registry name (see `python -m diva list`)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--api-key", default=None, help="require `Authorization: Bearer KEY`")
    args = parser.parse_args(argv)

    from diva.assistants import AssistantNotAvailable, load_assistant
    try:
        assistant = load_assistant(args.assistant)
    except UsageError as error:
        return fail(error)
    except AssistantNotAvailable as error:
        return fail(error, UNAVAILABLE)

    import uvicorn
    print(f"serving {assistant.name} at http://{args.host}:{args.port}/v1", flush=True)
    uvicorn.run(build_app(assistant, args.api_key), host=args.host, port=args.port, log_level="info")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
