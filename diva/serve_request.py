"""What `diva serve` accepts: the request body read under a size cap, checked field by field.

Every refusal is a `BadRequest` (HTTP 400) or `BodyTooLarge` (413) whose message names the field
and never repeats what was sent. `parse_chat` turns a chat-completions body into a `ChatCall`: the
whole message history as diva.chat Turns (audio decoded to 16 kHz) and the decoding options.
"""
from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from diva.audio import AudioError, load_audio
from diva.chat import Turn
from diva.generation import DEFAULT_MAX_NEW_TOKENS, GenerationOptions

MAX_TOKENS_LIMIT = 2048
MAX_STOP_STRINGS = 4
AUDIO_FORMATS = {"wav", "mp3", "flac", "ogg", "webm", "m4a"}
AUDIO_MEDIA_TYPES = {"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "audio/mpeg", "audio/mp3",
                     "audio/flac", "audio/x-flac", "audio/ogg", "audio/webm", "audio/mp4", "audio/m4a",
                     "audio/x-m4a"}
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


class BadRequest(ValueError):
    """A request refused with HTTP 400 and a message."""


class BodyTooLarge(ValueError):
    """A request body over the server's cap (HTTP 413)."""


def authorized(authorization: str | None, api_key: str | None) -> bool:
    """`Authorization: Bearer KEY`, compared in constant time; anything goes without a key."""
    if not api_key:
        return True
    return hmac.compare_digest((authorization or "").encode(), f"Bearer {api_key}".encode())


async def read_body(request, limit: int) -> bytes:
    """The body, refused as soon as it is known to exceed `limit` bytes: by its Content-Length
    before anything is read, or while a chunked body streams in."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise BadRequest("Content-Length is not a number")
        if int(declared) > limit:
            raise BodyTooLarge(f"the request body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class ChatRequest(BaseModel):
    """OpenAI's chat-completions fields this server reads (others are ignored), plus vLLM's
    sampling extras top_k, min_tokens and repetition_penalty."""
    model_config = ConfigDict(extra="ignore")
    model: str
    messages: list[dict] = Field(min_length=1)
    stream: bool = False
    stream_options: dict | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int | None = None
    top_k: int | None = Field(None, ge=-1)
    min_tokens: int | None = Field(None, ge=0)
    repetition_penalty: float | None = Field(None, gt=0)
    presence_penalty: float | None = None
    frequency_penalty: float | None = None


@dataclass
class ChatCall:
    model: str
    turns: list[Turn]
    options: GenerationOptions
    stream: bool
    include_usage: bool


def validation_message(error) -> str:
    """Pydantic's (or FastAPI's) errors as `field: what is wrong`, without the input they were about."""
    parts = []
    for e in error.errors()[:5]:
        where = ".".join(str(p) for p in e["loc"]) or "body"
        parts.append(f"{where}: {e['msg']}"[:200])
    return "; ".join(parts)


def parse_chat(raw: bytes, served: str | None = None) -> ChatCall:
    """The body -> a ChatCall; LookupError when it asks for another model than `served`."""
    try:
        body = ChatRequest.model_validate_json(raw or b"{}")
    except ValidationError as error:
        if any(e["type"] == "json_invalid" for e in error.errors()):
            raise BadRequest("the request body is not valid JSON") from None
        raise BadRequest(validation_message(error)) from None
    if served is not None and body.model != served:
        raise LookupError(f"model {body.model[:100]!r} is not served here; this server serves {served!r}")
    return ChatCall(model=body.model, turns=parse_messages(body.messages), options=parse_options(body),
                    stream=body.stream, include_usage=bool((body.stream_options or {}).get("include_usage")))


def parse_options(body: ChatRequest) -> GenerationOptions:
    if body.n not in (None, 1):
        raise BadRequest("n must be 1: this server returns one choice per request")
    if body.presence_penalty or body.frequency_penalty:
        raise BadRequest("presence_penalty and frequency_penalty are not supported (use repetition_penalty)")
    max_tokens = next((v for v in (body.max_completion_tokens, body.max_tokens) if v is not None),
                      DEFAULT_MAX_NEW_TOKENS)
    if not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
        raise BadRequest(f"max_tokens (max_completion_tokens) must be between 1 and {MAX_TOKENS_LIMIT}")
    stop = [body.stop] if isinstance(body.stop, str) else body.stop or []
    if len(stop) > MAX_STOP_STRINGS or not all(0 < len(s) <= 200 for s in stop):
        raise BadRequest(f"stop must be up to {MAX_STOP_STRINGS} non-empty strings of at most 200 characters")
    try:
        return GenerationOptions(
            max_new_tokens=max_tokens, min_new_tokens=body.min_tokens or 0,
            temperature=body.temperature or 0.0, top_p=body.top_p or 1.0, top_k=max(body.top_k or 0, 0),
            seed=body.seed, repetition_penalty=body.repetition_penalty or 1.0, stop=tuple(stop))
    except ValueError as error:
        raise BadRequest(str(error)) from None


def parse_messages(messages: list[dict]) -> list[Turn]:
    turns = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        role = ROLES.get(message.get("role")) if isinstance(message.get("role"), str) else None
        if role is None:
            raise BadRequest(f"{where}.role must be one of {sorted(ROLES)}")
        texts, audios = parse_content(message.get("content"), where, role)
        if audios and role != "user":
            raise BadRequest(f"{where}: only user messages can hold audio")
        if len(audios) > 1:
            raise BadRequest(f"{where}: send one audio clip per message")
        turns.append(Turn(role, "\n".join(t for t in texts if t.strip()), audios[0] if audios else None))
    if turns[-1].role != "user":
        raise BadRequest("the last message must be the user's")
    if turns[-1].audio is None and not turns[-1].text:
        raise BadRequest("the last user message has neither audio nor text")
    return turns


def parse_content(content, where: str, role: str) -> tuple[list[str], list]:
    if content is None and role == "assistant":
        return [], []
    if isinstance(content, str):
        return [content], []
    if not isinstance(content, list):
        raise BadRequest(f"{where}.content must be a string or a list of content parts")
    texts, audios = [], []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise BadRequest(f"{at}.text must be a string")
            texts.append(part["text"])
        elif kind == "input_audio":
            audios.append(input_audio(part.get("input_audio"), at))
        elif kind == "audio_url":
            audios.append(audio_url(part.get("audio_url"), at))
        else:
            raise BadRequest(f"{at}.type must be text, input_audio or audio_url")
    return texts, audios


def input_audio(value, at: str):
    if not isinstance(value, dict) or not isinstance(value.get("data"), str):
        raise BadRequest(f"{at}.input_audio must be an object with data (base64 audio) and format")
    fmt = value.get("format", "wav")
    if not isinstance(fmt, str) or fmt.lower() not in AUDIO_FORMATS:
        raise BadRequest(f"{at}.input_audio.format must be one of {sorted(AUDIO_FORMATS)}")
    return decode_audio(value["data"], f"{at}.input_audio")


def audio_url(value, at: str):
    url = value.get("url") if isinstance(value, dict) else None
    if not isinstance(url, str):
        raise BadRequest(f"{at}.audio_url must be an object with a url (a base64 data: URL)")
    head, sep, data = url.partition(";base64,")
    if not url.startswith("data:") or not sep:
        raise BadRequest(f"{at}.audio_url.url must be a base64 data: URL (this server fetches nothing)")
    if head[5:].lower() not in AUDIO_MEDIA_TYPES:
        raise BadRequest(f"{at}.audio_url.url: the media type must be one of {sorted(AUDIO_MEDIA_TYPES)}")
    return decode_audio(data, f"{at}.audio_url")


def decode_audio(b64: str, at: str):
    """Base64 audio file bytes -> 16 kHz samples (the format is read from the bytes themselves)."""
    try:
        data = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{at}: the data is not valid base64") from None
    try:
        return load_audio(data, long_audio="truncate")
    except AudioError as error:
        raise BadRequest(f"{at}: bad audio: {str(error).replace('(bytes)', 'the clip')}") from None
