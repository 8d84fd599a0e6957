"""`python -m diva serve --assistant cascade-mini` driven by the official `openai` client (streaming and
not, sampling, stop strings, conversations, dropped streams, shutdown), plus the RemoteAssistant that
the arena uses for remote backends, against the same server. Malformed requests go to a server on a
tiny random DiVA started in-process (serve_helpers)."""
from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from arena_helpers import free_port, spoken_question, wait_for_http
from diva.assistants.remote import RemoteAssistant, RemoteError
from serve_helpers import raw_request

REPO = Path(__file__).resolve().parents[1]
API_KEY = "test-key"
BODY_CAP = 2**20


@pytest.fixture(scope="module")
def served(prepared_assets, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "diva", "serve", "--assistant", "cascade-mini",
                                    "--port", str(port), "--api-key", API_KEY, "--max-body-mb", "1"],
                                   cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy())
    try:
        wait_for_http(f"http://127.0.0.1:{port}/v1/models", 300, process)
        yield process, port
    except Exception:
        print(log.read_text()[-3000:])
        raise
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(30)


@pytest.fixture(scope="module")
def server(served) -> str:
    return f"http://127.0.0.1:{served[1]}/v1"


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


def ask(client, messages, **options) -> str:
    return client.chat.completions.create(model="cascade-mini", messages=messages, **options).choices[0].message.content


def first_words(stream):
    """Read a stream until its first text (decoding is under way); the rest of the chunks."""
    chunks = iter(stream)
    while not next(chunks).choices[0].delta.content:
        pass
    return chunks


def test_models_lists_the_served_assistant(client):
    assert [m.id for m in client.models.list()] == ["cascade-mini"]


def test_openai_client_non_streaming_and_streaming_agree(client, question):
    messages = audio_message(question)
    whole = client.chat.completions.create(model="cascade-mini", messages=messages, max_tokens=24)
    text = whole.choices[0].message.content
    assert "paris" in text.lower()
    assert whole.choices[0].finish_reason in ("stop", "length") and whole.usage.completion_tokens > 0
    assert whole.usage.prompt_tokens > 10  # the chat template around the transcript, counted

    chunks = list(client.chat.completions.create(model="cascade-mini", messages=messages, max_tokens=24,
                                                 stream=True, stream_options={"include_usage": True}))
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(deltas) > 1, "streamed as several deltas"
    assert "".join(deltas) == text  # greedy decoding: the same answer either way
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens


def test_text_only_message_is_the_transcript(client):
    reply = ask(client, [{"role": "user", "content": "What is the capital of France?"}], max_tokens=16)
    assert "paris" in reply.lower()


def test_sampled_replies_with_a_seed_repeat_exactly(client):
    messages = [{"role": "user", "content": "Tell me a fact about cats."}]
    sampled = dict(max_tokens=16, temperature=1.0, top_p=0.9, seed=7)
    first = ask(client, messages, **sampled)
    assert ask(client, messages, **sampled) == first
    assert ask(client, messages, **{**sampled, "seed": 8}) != first


def test_the_second_turn_is_answered_in_context(client, question):
    first = ask(client, audio_message(question), max_tokens=24)
    history = [*audio_message(question), {"role": "assistant", "content": first},
               {"role": "user", "content": "Repeat your last answer."}]
    assert "paris" in ask(client, history, max_tokens=24).lower()
    named = [{"role": "system", "content": "You are a helpful assistant."},
             {"role": "user", "content": "My name is Ada."}, {"role": "assistant", "content": "Nice to meet you, Ada!"},
             {"role": "user", "content": "What is my name?"}]
    assert "Ada" in ask(client, named, max_tokens=24)
    assert "Ada" not in ask(client, named[-1:], max_tokens=24)


def test_stop_cuts_the_reply(client):
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    whole = ask(client, messages, max_tokens=24)
    assert "Paris" in whole
    reply = client.chat.completions.create(model="cascade-mini", messages=messages, max_tokens=24, stop=["Paris"])
    assert reply.choices[0].message.content == whole[:whole.index("Paris")].strip()
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.completion_tokens < len(whole.split()) + 8


def test_dropped_streams_and_requests_stop_their_generation(client):
    plain = [{"role": "user", "content": "What is the capital of France?"}]
    start = time.perf_counter()
    ask(client, plain, max_tokens=12)
    usual = time.perf_counter() - start
    endless = dict(max_tokens=2000, extra_body={"min_tokens": 2000})  # minutes of decoding, unless stopped
    for _ in range(2):  # (a stream that is not stopped keeps the next one waiting past the timeout)
        stream = client.with_options(timeout=60).chat.completions.create(model="cascade-mini", messages=[
            {"role": "user", "content": "Count from one to one thousand."}], stream=True, **endless)
        first_words(stream)
        stream.close()
    with pytest.raises(openai.APITimeoutError):  # a client that stops waiting for a whole reply
        client.with_options(timeout=5).chat.completions.create(
            model="cascade-mini", messages=[{"role": "user", "content": "Count to one thousand."}], **endless)
    start = time.perf_counter()
    ask(client.with_options(timeout=2 * usual + 20), plain, max_tokens=12)
    assert time.perf_counter() - start < 2 * usual + 20


def test_an_oversized_body_is_refused_before_it_is_read(served):
    _, port = served
    auth = {"Authorization": f"Bearer {API_KEY}"}
    assert raw_request(port, {**auth, "Content-Length": str(10 * BODY_CAP)}) == 413  # no byte of it sent
    assert raw_request(port, {**auth, "Transfer-Encoding": "chunked"}, chunks=[b"x" * 2**18] * 5) == 413
    assert raw_request(port, {"Authorization": "Bearer wrong", "Content-Length": str(10 * BODY_CAP)}) == 401


def test_errors_are_openai_shaped(client, server, tmp_path):
    bogus = tmp_path / "bogus.wav"
    bogus.write_bytes(b"not audio at all")
    with pytest.raises(openai.BadRequestError, match="bad audio"):
        client.chat.completions.create(model="cascade-mini", messages=audio_message(bogus))
    with pytest.raises(openai.NotFoundError, match="not served here"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="n must be 1"):
        client.chat.completions.create(model="cascade-mini", messages=[{"role": "user", "content": "hi"}], n=2)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server, api_key="wrong", max_retries=0).models.list()
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server, api_key="wrong", max_retries=0).chat.completions.create(
            model="cascade-mini", messages=[{"role": "user", "content": "hi"}])


def test_remote_assistant_streams_from_the_server(server, question):
    remote = RemoteAssistant("cascade-remote", server, model="cascade-mini", api_key=API_KEY)
    stream = remote.stream(str(question), "Answer in one short sentence.", max_new_tokens=24)
    deltas = list(stream)
    assert len(deltas) > 1 and "paris" in stream.reply.text.lower()
    assert 0 < stream.reply.ttft_s <= stream.reply.total_s and stream.reply.n_tokens > 0
    assert remote.generate([str(question)], ["Answer in one short sentence."], max_new_tokens=24) == [stream.reply.text]
    with pytest.raises(RemoteError, match="401"):
        list(RemoteAssistant("x", server, model="cascade-mini", api_key="wrong").stream(str(question)))


def test_the_first_sigterm_ends_streams_and_the_server(served, client):
    process, _ = served
    stream = client.chat.completions.create(model="cascade-mini", stream=True, max_tokens=2000,
                                            messages=[{"role": "user", "content": "Count to one thousand."}],
                                            extra_body={"min_tokens": 2000})
    chunks = first_words(stream)
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    received = 0
    with pytest.raises((openai.APIError, httpx.HTTPError)):  # an in-band error, or the connection closed
        for _ in chunks:
            received += 1
    assert received < 2000
