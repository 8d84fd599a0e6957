"""Questions from bsdgames' quiz files (a small fixture in their format), and the committed set."""
import json
from pathlib import Path

import pytest

from eval import quiz
from eval.metrics import normalize_answer

FIXTURE = Path(__file__).parent / "fixtures" / "quiz"
DATA = Path(__file__).resolve().parents[1] / "eval" / "data"


def test_expand_reads_optional_parts_alternatives_and_groups():
    assert quiz.expand("{G{eorge} }Washington") == ["George Washington", "G Washington", "Washington"]
    assert quiz.expand("Rom[e|a]") == ["Rome", "Roma"]
    assert quiz.expand("Cal{if{ornia}}|CA") == ["California", "Calif", "Cal", "CA"]
    assert quiz.say("{G{rover} }Cleveland{ (1st term)}") == "Grover Cleveland"
    assert quiz.ordinal(3) == "third" and quiz.ordinal(22) == "twenty-second" and quiz.ordinal(40) == "fortieth"
    assert quiz.accepted(quiz.expand("{J{ohn} }{Q{uincy} }Adams")) == ["John Quincy Adams", "Adams"]
    with pytest.raises(ValueError):
        quiz.expand("Rom[e|a")


def test_questions_from_the_quiz_format():
    rows = {r["question"]: r for r in quiz.questions(FIXTURE, ("capitals", "elements", "presidents"))}
    assert rows["What is the capital of Italy?"]["answers"] == ["Rome", "Roma"]
    assert rows["What is the capital of Kenya?"]["subset"] == "capitals"
    assert "What is the capital of Monaco?" not in rows            # the question says its answer
    assert rows["What is the chemical symbol for hydrogen?"]["answers"] == ["H"]
    assert "What is the chemical symbol for indium?" not in rows   # "In" is an everyday word
    assert not any("103" in q for q in rows)                       # old symbols past uranium
    assert rows["Who was the third president of the United States?"]["answers"] == ["Thomas Jefferson", "Jefferson"]
    assert rows["Who succeeded Thomas Jefferson as president of the United States?"]["answers"] == [
        "James Madison", "Madison"]                                # a continued line


def test_the_committed_set_is_new_and_spoken_by_unheard_voices(tmp_path, monkeypatch):
    rows = [json.loads(line) for line in (DATA / "spoken_qa_unheard.jsonl").read_text().splitlines() if line]
    assert len(rows) >= 60 and len({r["id"] for r in rows}) == len(rows)
    assert all(r["answers"] and r["subset"] in quiz.CATEGORIES for r in rows)
    others = {normalize_answer(json.loads(line)["question"]) for name in ("spoken_qa.jsonl", "spoken_qa_select.jsonl")
              for line in (DATA / name).read_text().splitlines() if line}
    assert not others & {normalize_answer(r["question"]) for r in rows}
    from diva.voices import UNHEARD_VOICES, get_voice
    from eval.tasks import get_task
    if not all(get_voice(v).available for v in UNHEARD_VOICES):
        pytest.skip("an UNHEARD voice's engine is not installed")
    monkeypatch.setenv("DIVA_EVAL_DATA", str(tmp_path))
    items = get_task("spoken-qa-unheard").load(limit=2)
    assert [it.fields["voice"] for it in items] == list(UNHEARD_VOICES[:2])
    manifest = json.loads((tmp_path / "spoken_qa_unheard" / "manifest.json").read_text())
    assert (manifest[items[1].item_id]["speed"], manifest[items[1].item_id]["pitch"]) == (1.3, 0.8)
