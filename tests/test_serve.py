"""`python -m diva serve --assistant cascade-mini` driven by the official `openai` client (streaming and
not), plus the RemoteAssistant that the arena uses for remote backends, against the same server."""
from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import openai
import pytest

from arena_helpers import free_port, spoken_question, wait_for_http
from diva.assistants.remote import RemoteAssistant, RemoteError

REPO = Path(__file__).resolve().parents[1]
API_KEY = "test-key"


@pytest.fixture(scope="module")
def server(prepared_assets, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "diva", "serve", "--assistant", "cascade-mini",
                                    "--port", str(port), "--api-key", API_KEY],
                                   cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy())
    try:
        wait_for_http(f"http://127.0.0.1:{port}/v1/models", 300, process)
        yield f"http://127.0.0.1:{port}/v1"
    except Exception:
        print(log.read_text()[-3000:])
        raise
    finally:
        process.terminate()
        process.wait(30)


@pytest.fixture(scope="module")
def question(tmp_path_factory) -> Path:
    return spoken_question(tmp_path_factory.mktemp("audio") / "question.wav")


def audio_message(path: Path, prompt: str | None = None) -> list[dict]:
    parts = [{"type": "text", "text": prompt}] if prompt else []
    parts.append({"type": "input_audio",
                  "input_audio": {"data": base64.b64encode(path.read_bytes()).decode(), "format": "wav"}})
    return [{"role": "user", "content": parts}]


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server, api_key=API_KEY, max_retries=0, timeout=300)


def test_models_lists_the_served_assistant(client):
    assert [m.id for m in client.models.list()] == ["cascade-mini"]


def test_openai_client_non_streaming_and_streaming_agree(client, question):
    messages = audio_message(question)
    whole = client.chat.completions.create(model="cascade-mini", messages=messages, max_tokens=24)
    text = whole.choices[0].message.content
    assert "paris" in text.lower()
    assert whole.choices[0].finish_reason in ("stop", "length") and whole.usage.completion_tokens > 0

    chunks = list(client.chat.completions.create(model="cascade-mini", messages=messages, max_tokens=24,
                                                 stream=True, stream_options={"include_usage": True}))
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(deltas) > 1, "streamed as several deltas"
    assert "".join(deltas) == text  # greedy decoding: the same answer either way
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_text_only_message_is_the_transcript(client):
    reply = client.chat.completions.create(model="cascade-mini", max_tokens=16,
                                           messages=[{"role": "user", "content": "What is the capital of France?"}])
    assert "paris" in reply.choices[0].message.content.lower()


def test_errors_are_openai_shaped(client, server, tmp_path):
    bogus = tmp_path / "bogus.wav"
    bogus.write_bytes(b"not audio at all")
    with pytest.raises(openai.BadRequestError, match="bad audio"):
        client.chat.completions.create(model="cascade-mini", messages=audio_message(bogus))
    with pytest.raises(openai.NotFoundError, match="not served here"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server, api_key="wrong", max_retries=0).models.list()


def test_remote_assistant_streams_from_the_server(server, question):
    remote = RemoteAssistant("cascade-remote", server, model="cascade-mini", api_key=API_KEY)
    stream = remote.stream(str(question), "Answer in one short sentence.", max_new_tokens=24)
    deltas = list(stream)
    assert len(deltas) > 1 and "paris" in stream.reply.text.lower()
    assert 0 < stream.reply.ttft_s <= stream.reply.total_s and stream.reply.n_tokens > 0
    assert remote.generate([str(question)], ["Answer in one short sentence."], max_new_tokens=24) == [stream.reply.text]
    with pytest.raises(RemoteError, match="401"):
        list(RemoteAssistant("x", server, model="cascade-mini", api_key="wrong").stream(str(question)))
