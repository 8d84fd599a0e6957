"""Real speech (Asterisk's prompts) on a small fixture in the same layout, and its WER metric."""
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from diva.assistants.base import Reply, VoiceAssistant
from diva.assistants.registry import ASSISTANTS, AssistantSpec
from eval import metrics as M
from eval import real_speech as R
from eval import run as runner
from eval import scoring
from eval.tasks import get_task

FIXTURE = Path(__file__).parent / "fixtures" / "real_speech"


def test_asr_set_reads_the_layout_and_leaves_out_non_speech():
    items = R.real_speech_asr(data_dir=str(FIXTURE))
    assert sorted((it.item_id, it.reference, it.subset) for it in items) == [
        ("agent-pass", "Please enter your password followed by the pound key.", "prompt"),
        ("call-waiting", "Call waiting.", "prompt"), ("digits/7", "seven", "word")]
    assert all(it.transcript is None and Path(it.audio).exists() for it in items)  # no text modality
    assert [it.item_id for it in R.real_speech_asr(limit=2, data_dir=str(FIXTURE))] == [
        it.item_id for it in items[:2]]  # a fixed order
    assert R.spoken_text("at [@]") == "at" and R.spoken_text("[ascending tones]") == ""


def test_instruction_set_keeps_what_asks_or_tells_the_caller_something():
    items = R.real_speech_instructions(data_dir=str(FIXTURE))
    assert [it.item_id for it in items] == ["agent-pass"]
    assert items[0].transcript == items[0].fields["question"] and items[0].reference == []
    assert R.is_instruction("Change to which folder?") and not R.is_instruction("Call waiting.")


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
def test_g722_files_are_decoded_once_to_16_khz(tmp_path, monkeypatch):
    root = tmp_path / "root"
    shutil.copytree(FIXTURE, root)
    wav = root / R.SOUNDS / "call-waiting.wav"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(wav), "-ar", "16000", "-acodec",
                    "g722", "-f", "g722", str(wav.with_suffix(".g722"))], check=True)
    wav.unlink()
    monkeypatch.setenv("DIVA_EVAL_DATA", str(tmp_path / "built"))
    item = {it.item_id: it for it in R.real_speech_asr(data_dir=str(root))}["call-waiting"]
    assert Path(item.audio) == tmp_path / "built" / "real_speech" / "call-waiting.wav"
    assert 0.4 < item.fields["seconds"] < 3


def test_missing_package_says_how_to_install_it(tmp_path):
    with pytest.raises(R.NotAvailable, match="apt-get install -y asterisk-core-sounds-en-g722"):
        R.real_speech_asr(data_dir=str(tmp_path))


def test_wer_by_hand():
    # Whisper's normaliser: case, punctuation and "#" aside; "1" and "one" are the same word
    assert M.word_errors("Press 1, then the # key.", "press one then the pound key") == (0, 6)
    # 9 reference words; "center" for "enter", "the" left out, "now" added
    assert M.word_errors("Please enter your password followed by the pound key.",
                         "Please center your password followed by pound key now") == (3, 9)
    assert M.word_errors("seven", "") == (1, 1)
    task = get_task("real-speech-asr")
    items = sorted(R.real_speech_asr(data_dir=str(FIXTURE)), key=lambda it: it.item_id)
    records, found = scoring.score_items(task, items, ["Please enter your password followed by the pound key",
                                                       "Call waiting", "heaven"])
    wer = {m.name: m for m in found}["wer"]
    assert wer.stat(np.arange(3)) == pytest.approx(100 * 1 / 12)  # corpus WER: errors over all reference words
    assert [r["errors"] for r in records] == [0, 0, 1] and records[2]["score"] == 100.0
    assert {m.name: m for m in found}["read_exactly"].stat(np.arange(3)) == pytest.approx(200 / 3)


class Transcriber(VoiceAssistant):
    """Hears every clip as "call waiting" and answers "Sure."."""
    name = "transcriber"

    def transcribe(self, audios):
        return ["call waiting"] * len(audios)

    def _generate(self, requests, max_new_tokens):
        return [Reply(text="Sure.") for _ in requests]


def test_the_runner_scores_what_an_assistant_heard(tmp_path, monkeypatch):
    assistant = Transcriber()
    monkeypatch.setitem(ASSISTANTS, assistant.name, AssistantSpec("text"))
    monkeypatch.setattr(runner, "load_assistants", lambda names: ({assistant.name: assistant}, []))
    out = tmp_path / "out"
    assert runner.main(["--assistant", assistant.name, "--task", "real-speech-asr", "--quiet",
                        "--data-dir", str(tmp_path / "data"), "--out", str(out)]) == 0
    assert "real-speech-asr skipped" in (out / "README.md").read_text()  # not installed there: skipped
    (tmp_path / "data").mkdir()
    shutil.copytree(FIXTURE, tmp_path / "data" / "real-speech-asr")
    assert runner.main(["--assistant", assistant.name, "--task", "real-speech-asr", "--quiet",
                        "--data-dir", str(tmp_path / "data"), "--out", str(out)]) == 0
    import pandas as pd
    rows = pd.read_csv(out / "asr.csv").query("subset == 'all'").set_index("metric")["value"]
    assert rows["wer"] == pytest.approx(100 * (9 + 0 + 2) / 12, abs=1e-3)  # the CSV keeps 4 decimals
    assert rows["read_exactly"] == pytest.approx(100 / 3, abs=1e-3)
    assert "transcriber on real-speech-asr (audio)" in (out / "README.md").read_text()  # seconds per clip
