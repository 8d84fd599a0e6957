"""Every malformed part of a chat-completions request is a 400 that names the field (never a 500,
never an echo of the input), an oversized body a 413 before it is read, also without an API key;
audio data: URLs in the usual media types are heard. Served by a tiny random DiVA in-process."""
from __future__ import annotations

import base64
import io
import shutil
import subprocess

import httpx
import numpy as np
import openai
import pytest
import soundfile as sf

from serve_helpers import raw_request, tiny_server

CAP = 2**18


@pytest.fixture(scope="module")
def served():
    with tiny_server(max_body_bytes=CAP) as (url, port):
        yield url, port


@pytest.fixture(scope="module")
def client(served):
    return openai.OpenAI(base_url=served[0], api_key="none", max_retries=0, timeout=120)


def wav_bytes() -> bytes:
    t = np.arange(16000) / 16000
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000, format="WAV")
    return buf.getvalue()


WAV = base64.b64encode(wav_bytes()).decode()
GOOD_AUDIO = {"type": "input_audio", "input_audio": {"data": WAV, "format": "wav"}}


def user(*parts):
    return [{"role": "user", "content": list(parts)}]


MALFORMED_PARTS = {
    "input_audio as a string": ({"type": "input_audio", "input_audio": WAV}, "input_audio must be an object"),
    "format as a number": ({"type": "input_audio", "input_audio": {"data": WAV, "format": 3}}, "format must be"),
    "unknown format": ({"type": "input_audio", "input_audio": {"data": WAV, "format": "exe"}}, "format must be"),
    "data not base64": ({"type": "input_audio", "input_audio": {"data": "%%%", "format": "wav"}}, "not valid base64"),
    "audio_url as a string": ({"type": "audio_url", "audio_url": f"data:audio/wav;base64,{WAV}"},
                              "audio_url must be an object"),
    "audio_url not data:": ({"type": "audio_url", "audio_url": {"url": "https://example.com/a.wav"}},
                            "base64 data: URL"),
    "audio_url media type": ({"type": "audio_url", "audio_url": {"url": f"data:image/png;base64,{WAV}"}},
                             "media type"),
    "text as a number": ({"type": "text", "text": 5}, "text must be a string"),
    "unknown part": ({"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}, "type must be"),
}


@pytest.mark.parametrize("part, message", MALFORMED_PARTS.values(), ids=MALFORMED_PARTS.keys())
def test_each_malformed_content_part_is_a_400(client, part, message):
    with pytest.raises(openai.BadRequestError, match=message):
        client.chat.completions.create(model="tiny", messages=user(part), max_tokens=2)


MALFORMED_REQUESTS = {
    "max_tokens 0": (dict(max_tokens=0), "max_tokens"),
    "max_tokens negative": (dict(max_tokens=-5), "max_tokens"),
    "max_completion_tokens 0": (dict(max_completion_tokens=0), "max_tokens"),
    "n 2": (dict(n=2), "n must be 1"),
    "temperature 3": (dict(temperature=3), "temperature"),
    "top_p 0": (dict(top_p=0), "top_p"),
    "five stops": (dict(stop=["a", "b", "c", "d", "e"]), "stop must be"),
    "tool role": (dict(messages=[{"role": "tool", "content": "x"}]), "role must be"),
    "no messages": (dict(messages=[]), "messages"),
    "assistant last": (dict(messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]),
                       "last message"),
    "audio from the assistant": (dict(messages=[{"role": "assistant", "content": [GOOD_AUDIO]},
                                                {"role": "user", "content": "hi"}]), "only user messages"),
    "content a number": (dict(messages=[{"role": "user", "content": 3}]), "content must be"),
    "min over max": (dict(max_tokens=4, extra_body={"min_tokens": 9}), "min_new_tokens"),
}


@pytest.mark.parametrize("changes, message", MALFORMED_REQUESTS.values(), ids=MALFORMED_REQUESTS.keys())
def test_each_malformed_request_is_a_400(client, changes, message):
    request = {"model": "tiny", "messages": user(GOOD_AUDIO), "max_tokens": 2} | changes
    with pytest.raises(openai.BadRequestError, match=message):
        client.chat.completions.create(**request)


def test_bodies_that_are_no_request_are_400s_without_an_echo(served):
    url = served[0] + "/chat/completions"
    for body in (b"{not json", b"[1, 2]", b'{"model": "tiny", "messages": "' + b"x" * 100_000 + b'"}',
                 b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": "'
                 + b"9" * 50_000 + b'x"}'):
        response = httpx.post(url, content=body, timeout=60)
        assert response.status_code == 400, response.text[:300]
        assert len(response.content) < 1000 and "xxxx" not in response.text


def test_an_oversized_body_is_a_413_without_a_key(served):
    port = served[1]
    assert raw_request(port, {"Content-Length": str(100 * CAP)}) == 413
    assert raw_request(port, {"Transfer-Encoding": "chunked"}, chunks=[b"x" * 2**16] * 5) == 413


def mp3_base64() -> str | None:
    if shutil.which("ffmpeg") is None:
        return None
    done = subprocess.run(["ffmpeg", "-v", "error", "-f", "wav", "-i", "pipe:0", "-f", "mp3", "pipe:1"],
                          input=wav_bytes(), capture_output=True)
    return base64.b64encode(done.stdout).decode() if done.returncode == 0 and done.stdout else None


@pytest.mark.parametrize("media_type", ["audio/x-wav", "audio/wave", "audio/wav", "audio/mpeg"])
def test_audio_data_urls_are_heard(client, media_type):
    data = mp3_base64() if media_type == "audio/mpeg" else WAV
    if data is None:
        pytest.skip("ffmpeg is needed to make an mp3")
    url = {"url": f"data:{media_type};base64,{data}"}
    reply = client.chat.completions.create(model="tiny", max_tokens=3, messages=user(
        {"type": "text", "text": "Hello"}, {"type": "audio_url", "audio_url": url}))
    assert reply.usage.completion_tokens >= 1 and reply.usage.prompt_tokens > 8


def test_the_remote_assistant_sends_the_options_this_server_reads():
    import json

    from diva.assistants.base import Request
    from diva.assistants.remote import RemoteAssistant
    from diva.generation import GenerationOptions
    from diva.serve_request import parse_chat
    remote = RemoteAssistant("tiny", "http://127.0.0.1:9/v1")
    for options in (GenerationOptions(max_new_tokens=7),
                    GenerationOptions(max_new_tokens=9, min_new_tokens=2, temperature=0.7, top_p=0.8, top_k=20,
                                      seed=5, repetition_penalty=1.1, stop=("Paris", "\n\n"))):
        body = remote._body(Request(transcript="What is the capital of France?"), options, stream=False)
        assert parse_chat(json.dumps(body).encode(), "tiny").options == options
