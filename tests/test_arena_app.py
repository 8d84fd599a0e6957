"""`python -m demo.app`, started as `make demo` starts it (its own process, a throwaway config and
database): every refusal reaches the client through gradio_client with its message."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from arena_helpers import free_port, spoken_question, wait_for_http

ROOT = Path(__file__).resolve().parents[1]
CONFIG = """
db = "sqlite:///{root}/votes.db"
audio_dir = "{root}/audio"
max_new_tokens = 4
[limits]
max_prompt_chars = 50
[[models]]
name = "cascade-mini"
[[models]]
name = "diva-mini"
"""


@pytest.fixture(scope="module")
def app_url(prepared_assets, tmp_path_factory):
    root = tmp_path_factory.mktemp("arena-app")
    config = root / "arena.toml"
    config.write_text(CONFIG.format(root=root))
    port, log = free_port(), root / "server.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "demo.app", "--config", str(config), "--port", str(port)],
                                   cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/config", 240, process)
        assert (root / "votes.db").is_file()  # the config's own database is made on first start
        yield f"http://127.0.0.1:{port}/"
    except Exception:
        print(log.read_text()[-3000:])
        raise
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def question(tmp_path_factory) -> Path:
    return spoken_question(tmp_path_factory.mktemp("audio") / "question.wav")


def refusal(call) -> str:
    """The message of the error the server answers `call` with."""
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError) as caught:
        call()
    return caught.value.message


def test_every_refusal_arrives_with_its_message(app_url, question, tmp_path):
    from gradio_client import Client, handle_file
    client = Client(app_url, verbose=False)

    def battle(path, prompt=""):
        return client.predict(handle_file(str(path)), prompt, api_name="/battle")

    long_clip = tmp_path / "long.wav"
    seconds = np.arange(31 * 16_000) / 16_000
    sf.write(long_clip, (0.3 * np.sin(2 * np.pi * 220 * seconds)).astype(np.float32), 16_000)
    assert "31.0 s long; the limit is 30 s" in refusal(lambda: battle(long_clip))
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("this is not audio")
    assert "That audio cannot be used" in refusal(lambda: battle(not_audio))
    assert "The instruction has 51 characters; the limit is 50" in refusal(lambda: battle(question, "x" * 51))
    assert "no finished battle" in refusal(lambda: client.predict("", api_name="/vote_tie"))

    for _ in range(3):  # a vote while both models answer; again should the battle win the race
        job = client.submit(handle_file(str(question)), "", api_name="/battle")
        deadline = time.monotonic() + 120
        while not job.outputs() and not job.done() and time.monotonic() < deadline:
            time.sleep(0.02)  # until the first update: the battle has started
        try:
            client.predict("", api_name="/vote_tie")
        except Exception as error:
            assert "no finished battle" in getattr(error, "message", ""), error
            break
    else:
        pytest.fail("every battle finished before a vote could arrive")
    assert "Both answered" in job.result(timeout=120)[6]
    client.predict("clearer", api_name="/vote_model_a")
    assert "already voted" in refusal(lambda: client.predict("", api_name="/vote_model_b"))
