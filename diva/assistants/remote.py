"""An assistant behind an OpenAI-compatible chat-completions endpoint that accepts audio.

This is how vLLM serves Qwen2-Audio or Ultravox, and how `python -m diva serve` serves any
registry assistant. The user turn holds the optional text prompt, then the audio as an
`input_audio` part (base64 16 kHz wav). Streaming reads the server-sent events.

    RemoteAssistant("qwen2-audio", base_url="http://127.0.0.1:8000/v1",
                    model="Qwen/Qwen2-Audio-7B-Instruct").stream(audio).text()
"""
from __future__ import annotations

import base64
import json
from typing import Iterator

import httpx

from diva.assistants.base import ReplyStream, Request, VoiceAssistant
from diva.audio import SAMPLE_RATE, load_audio
from diva.generation import GenerationOptions
from diva.reply import Reply, TokenClock


class RemoteError(RuntimeError):
    """The endpoint failed or answered something that is not a chat completion."""


def audio_part(audio) -> dict:
    """An `input_audio` content part: the clip as 16 kHz mono 16-bit wav, base64."""
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, load_audio(audio), SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return {"type": "input_audio",
            "input_audio": {"data": base64.b64encode(buf.getvalue()).decode("ascii"), "format": "wav"}}


def user_content(request: Request) -> list[dict]:
    """The prompt (if any) before the audio, as DiVA reads them; a transcript is sent as text."""
    parts = [{"type": "text", "text": request.prompt}] if request.prompt else []
    if request.transcript is not None:
        parts.append({"type": "text", "text": request.transcript})
    else:
        parts.append(audio_part(request.audio))
    return parts


class RemoteAssistant(VoiceAssistant):
    def __init__(self, name: str, base_url: str, model: str | None = None, api_key: str | None = None,
                 timeout_s: float = 120.0, temperature: float = 0.0):
        super().__init__()
        self.name = name
        self.model = model or name
        self.temperature = temperature
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=base_url.rstrip("/"), headers=headers,
                                    timeout=httpx.Timeout(timeout_s, connect=10.0))
        self._lock = _NoLock()  # the server queues requests; parallel calls are fine here

    def _body(self, request: Request, options: GenerationOptions, stream: bool) -> dict:
        """The options as OpenAI's fields (top_k, min_tokens and repetition_penalty as vLLM's
        extras, sent only when set); greedy options use the temperature given at construction."""
        body = {"model": self.model, "stream": stream, "max_tokens": options.max_new_tokens,
                "temperature": options.temperature if options.sampling else self.temperature,
                "messages": [{"role": "user", "content": user_content(request)}]}
        changed = options.changed()
        for ours, theirs in (("top_p", "top_p"), ("seed", "seed"), ("top_k", "top_k"),
                             ("min_new_tokens", "min_tokens"), ("repetition_penalty", "repetition_penalty")):
            if ours in changed:
                body[theirs] = changed[ours]
        if options.stop:
            body["stop"] = list(options.stop)
        return body

    def _post(self, body: dict) -> dict:
        response = self._client.post("/chat/completions", json=body)
        if response.status_code != 200:
            raise RemoteError(f"{self.name}: HTTP {response.status_code}: {response.text[:300]}")
        return response.json()

    def _generate(self, requests: list[Request], options: GenerationOptions) -> list[Reply]:
        replies = []
        for request in requests:
            clock = TokenClock()
            data = self._post(self._body(request, options, stream=False))
            try:
                text = data["choices"][0]["message"]["content"] or ""
            except (KeyError, IndexError, TypeError):
                raise RemoteError(f"{self.name}: not a chat completion: {str(data)[:300]}") from None
            clock.tick()
            n = (data.get("usage") or {}).get("completion_tokens")
            reply = clock.finish(text, n_tokens=n)
            reply.transcript = heard(data)
            reply.ttft_s = None  # a non-streaming call cannot see its first token
            replies.append(reply)
        return replies

    def _stream(self, request: Request, options: GenerationOptions) -> ReplyStream:
        clock = TokenClock()
        usage: dict = {}
        said: list[str] = []

        def deltas() -> Iterator[str]:
            body = self._body(request, options, stream=True)
            with self._client.stream("POST", "/chat/completions", json=body) as response:
                if response.status_code != 200:
                    raise RemoteError(f"{self.name}: HTTP {response.status_code}: "
                                      f"{response.read().decode(errors='replace')[:300]}")
                for event in sse_events(response.iter_lines()):
                    if event.get("usage"):
                        usage.update(event["usage"])
                    if heard(event) is not None:
                        said.append(heard(event))
                    for choice in event.get("choices") or []:
                        text = (choice.get("delta") or {}).get("content")
                        if text:
                            clock.tick()
                            yield text

        def finish(text: str) -> Reply:
            reply = clock.finish(text, n_tokens=usage.get("completion_tokens"))
            reply.transcript = said[-1] if said else None
            return reply

        return ReplyStream(deltas(), finish)

    def close(self) -> None:
        self._client.close()


def heard(payload: dict) -> str | None:
    """What the server says its assistant heard (`python -m diva serve`'s extension field)."""
    extension = payload.get("diva")
    return extension.get("heard") if isinstance(extension, dict) else None


def sse_events(lines: Iterator[str]) -> Iterator[dict]:
    """JSON payloads of `data:` lines until `data: [DONE]`; an `error` payload raises."""
    for line in lines:
        if not line.startswith("data:"):
            continue  # blank separators, comments, `event:` lines
        payload = line[5:].strip()
        if payload == "[DONE]":
            return
        event = json.loads(payload)
        if "error" in event:
            raise RemoteError(str(event["error"].get("message", event["error"])))
        yield event


class _NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
