"""The real embedded default models behind the assistant interface and the CLI."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from diva.assistants import AssistantNotAvailable, AssistantSpec, load_assistant, register
from diva.voices import synthesize

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "diva" / "samples" / "capital_of_france.wav"


@pytest.fixture(scope="module")
def question():
    return synthesize("What is the capital of France?", "espeak:en-us")


def test_cascade_mini_answers_paris(question):
    cascade = load_assistant("cascade-mini")
    reply = cascade.generate_replies([question], max_new_tokens=24)[0]
    assert "capital of france" in reply.transcript.lower()
    assert "Paris" in reply.text
    assert reply.ttft_s > 0 and reply.n_tokens > 0


def test_text_mini_reads_transcripts_only(question):
    text = load_assistant("text-mini")
    assert "Paris" in text.generate(transcripts=["What is the capital of France?"], max_new_tokens=24)[0]
    with pytest.raises(ValueError, match="transcripts only"):
        text.generate([question])


def test_cascade_stream_matches_generate(question):
    cascade = load_assistant("cascade-mini")
    stream = cascade.stream(question, max_new_tokens=20)
    streamed = "".join(stream).strip()
    assert streamed == cascade.generate([question], max_new_tokens=20)[0]
    assert stream.reply.transcript and stream.reply.tokens_per_s > 0


def test_shipped_diva_runs_on_the_real_models(question):
    diva = load_assistant("diva-mini")
    assert diva.model.config.n_queries == 32 and diva.model.config.projection == "linear"
    outputs = diva.generate([question, question[: question.size // 2]], max_new_tokens=6)
    assert len(outputs) == 2 and all(isinstance(o, str) for o in outputs)


def test_a_checkpoint_folder_loads_without_a_registry_entry():
    from diva.assistants.registry import ASSISTANTS
    folder = str(ROOT / "checkpoints" / "sft-mini")
    assert folder not in ASSISTANTS
    assert load_assistant(folder).model.config.n_queries == 32


def test_the_registry_is_short_and_says_what_each_assistant_is():
    from diva.assistants.registry import ASSISTANTS
    assert len(ASSISTANTS) <= 10
    assert all(10 < len(spec.description) <= 140 for spec in ASSISTANTS.values())


def test_missing_checkpoint_says_where_its_config_is(tmp_path):
    register("diva-missing", AssistantSpec("diva", checkpoint=str(tmp_path / "none")))
    with pytest.raises(AssistantNotAvailable, match="train/configs/"):
        load_assistant("diva-missing")


def run_cli(*args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "diva", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=300)


def test_cli_ask_json():
    done = run_cli("ask", str(SAMPLE), "--assistant", "cascade-mini", "--json", "--max-new-tokens", "24")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["assistant"] == "cascade-mini"
    assert "Paris" in result["response"]
    assert "capital of France" in result["transcript"]
    assert result["ttft_s"] > 0 and result["tokens_per_s"] > 0


@pytest.mark.parametrize("content, message", [(b"", "empty"), (b"not audio at all" * 100, "cannot read")])
def test_cli_bad_audio_is_a_clear_error(tmp_path, content, message):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    done = run_cli("ask", str(bad), "--assistant", "cascade-mini")
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_cli_silent_audio_is_a_clear_error(tmp_path):
    import soundfile as sf
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    done = run_cli("ask", str(silent))
    assert done.returncode == 2 and "silent" in done.stderr and "Traceback" not in done.stderr
