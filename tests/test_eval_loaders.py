"""Loaders of the paper's datasets, on tiny local fixtures in each hub schema (no network)."""
from pathlib import Path

import numpy as np
import pytest

from eval import loaders
from eval.loaders import audio_array
from eval.tasks import TASKS, get_task, select

FIXTURES = Path(__file__).parent / "fixtures" / "eval"


def load(task_name: str, **kw):
    return get_task(task_name).load(data_dir=str(FIXTURES / task_name), **kw)


def assert_audio(item):
    audio = audio_array(item.audio)  # a torchcodec AudioDecoder, decoded like the hub's columns
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert audio.size == 4000  # 0.25 s at 8 kHz, resampled to 16 kHz


def test_heysquad_keeps_answerable_questions_with_their_passage():
    items = load("heysquad")
    assert [it.item_id for it in items] == ["q1", "q2"]  # q3 is_impossible
    q2 = items[1]
    assert q2.reference == ["Shakespeare", "William Shakespeare"]
    assert q2.transcript == "Who wrote Hamlet?"
    assert "Shakespeare" in get_task("heysquad").prompt(q2)
    assert_audio(q2)


def test_sdqa_one_item_per_dialect():
    items = load("sdqa")
    assert len(items) == 2 * len(loaders.SDQA_DIALECTS)
    assert {it.subset for it in items} == set(loaders.SDQA_DIALECTS)
    first = [it for it in items if it.item_id.startswith("s1:")]
    assert all(it.reference == ["Paris"] and it.transcript == "What is the capital of France?" for it in first)
    assert len(load("sdqa", limit=1)) == len(loaders.SDQA_DIALECTS)
    assert_audio(items[-1])


def test_iemocap_labels_and_no_transcript():
    items = load("iemocap")
    assert [it.reference for it in items] == ["ang", "neu", "sad"]
    assert all(it.transcript is None for it in items)
    assert set(get_task("iemocap").labels) >= {it.reference for it in items}
    assert_audio(items[0])


def test_meld_emotion_and_utterance():
    items = load("meld")
    assert [(it.item_id, it.reference) for it in items] == [("0_0", "joy"), ("0_1", "anger")]
    assert items[1].transcript == "I hate this."
    assert_audio(items[0])


@pytest.mark.parametrize("name,expected", [("mustard", ["yes", "no"]), ("urfunny", ["yes", "no"])])
def test_binary_social_tasks(name, expected):
    items = load(name)
    assert [it.reference for it in items] == expected
    assert all(it.transcript for it in items)
    assert_audio(items[0])


def test_covost2_all_paper_targets_with_language_names():
    items = load("covost2")
    assert {it.subset for it in items} == {"ar", "de", "id", "ja", "ta", "tr", "zh"}
    de = next(it for it in items if it.subset == "de")
    assert de.reference == "Guten Morgen." and de.transcript == "Good morning."
    assert "German" in get_task("covost2").prompt(de)
    assert_audio(de)


def test_registry_shape():
    offline = [t.name for t in select("all")]
    assert offline == ["spoken-qa", "spoken-sentiment", "spoken-translation"]   # the selection set only by name
    assert [t.name for t in select(names=["spoken-qa-select"])] == ["spoken-qa-select"]
    assert {t.name for t in select("all", include_real=True)} == set(TASKS) - {
        "spoken-qa-select", "spoken-qa-unheard", "real-speech-asr", "real-speech-instructions"}  # only by name
    assert [t.name for t in select("qa", include_real=True)] == ["spoken-qa", "heysquad", "sdqa"]
    for task in TASKS.values():
        assert task.prompt_id in task.prompts and task.source and task.target
        if task.kind == "label":
            assert set(task.vocabulary.values()) <= set(task.labels)
    with pytest.raises(KeyError):
        get_task("nope")


def test_selection_set_is_spoken_by_valid_voices_and_shares_no_question_with_the_test_set(tmp_path, monkeypatch):
    import json
    from diva.voices import TEST_VOICES, VALID_VOICES
    monkeypatch.setenv("DIVA_EVAL_DATA", str(tmp_path))
    items = get_task("spoken-qa-select").load(limit=2)
    assert len(items) == 2 and all(it.fields["voice"] in VALID_VOICES for it in items)
    assert items[0].fields["voice"] != items[1].fields["voice"] and not set(VALID_VOICES) & set(TEST_VOICES)
    assert audio_array(items[0].audio).size > 8000                         # a real clip, 16 kHz
    read = lambda name: [json.loads(l) for l in (Path("eval/data") / name).read_text().splitlines() if l]  # noqa: E731
    selection, test = read("spoken_qa_select.jsonl"), read("spoken_qa.jsonl")
    assert len(selection) >= 200 and all(r["answers"] for r in selection)
    assert {r["subset"] for r in selection} == {"set-a", "set-b"} and items[0].subset == "set-a"
    assert not {r["question"].lower() for r in selection} & {r["question"].lower() for r in test}
