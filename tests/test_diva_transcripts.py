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


def test_a_clip_longer_than_the_window_is_heard_to_the_end():
    import numpy as np
    from diva.audio import SAMPLE_RATE, load_audio
    question = load_audio(SAMPLE)
    pause = np.zeros(SAMPLE_RATE // 2, dtype=np.float32)
    long_clip = np.concatenate([question, pause] * 8)       # the question eight times: ~19 s
    assert long_clip.size > 18 * SAMPLE_RATE
    heard = load_assistant("diva-mini-whisper").generate_replies([long_clip], max_new_tokens=2)[0].transcript
    assert heard.lower().count("france") >= 7                  # (nearly) every repeat, not the first 10 s
