"""DiVA's replies carry what it heard when the vocabulary bridge reads its slots as text: the
kept slots' Whisper tokens (greedy reading) or the question the LLM rescoring picked (the beam)."""
import json

import pytest

from diva.assistants import load_assistant
from test_assistants import SAMPLE, run_cli


@pytest.mark.parametrize("name", ["diva-mini-whisper", "diva-mini-whisper-beam"])
def test_bridge_readings_are_the_transcript(name):
    diva = load_assistant(name)
    reply = diva.generate_replies([SAMPLE], max_new_tokens=2)[0]
    assert "capital of france" in reply.transcript.lower()
    stream = diva.stream(SAMPLE, max_new_tokens=2)
    stream.text()
    assert stream.reply.transcript == reply.transcript
    assert diva.conversation().ask(SAMPLE, max_new_tokens=2).transcript == reply.transcript


def test_the_linear_projection_hears_no_text():
    assert load_assistant("diva-mini").generate_replies([SAMPLE], max_new_tokens=2)[0].transcript is None


def test_cli_ask_json_shows_what_diva_heard():
    done = run_cli("ask", str(SAMPLE), "--assistant", "diva-mini-whisper", "--json", "--max-new-tokens", "4")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert "capital of France" in result["transcript"]
