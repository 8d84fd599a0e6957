"""GenerationOptions on tiny random models: greedy by default, seeded sampling that repeats, equal
lengths on request, rows of a batch that end and stream on their own, stop strings, and the
options in the eval answer cache key."""
import random
import time

import pytest

from diva.assistants.diva import DivaAssistant
from diva.generation import GenerationOptions, Row, as_options, decode, generate_ids, generate_rows
from diva.generation_rows import StopText
from diva.reply import TokenClock
from diva.testing import tiny_diva
from eval.cache import answer_key

TEXTS = ["What is the capital of France?", "Hello there, how are you?"]


@pytest.fixture(scope="module")
def assistant():
    return DivaAssistant("tiny", tiny_diva(n_queries=8))


def text_inputs(assistant, texts):
    return assistant._text_inputs(texts, [None] * len(texts))[0]


def test_greedy_is_the_default_and_a_bare_max_new_tokens_still_works(assistant):
    inputs = text_inputs(assistant, TEXTS)
    bare = generate_ids(assistant.llm, assistant.tokenizer, inputs, 6, TokenClock())
    assert bare == generate_ids(assistant.llm, assistant.tokenizer, inputs, GenerationOptions(max_new_tokens=6),
                                TokenClock())
    assert as_options(None, 7) == GenerationOptions(max_new_tokens=7) and not GenerationOptions().sampling
    assert assistant.generate(transcripts=TEXTS, max_new_tokens=6) == \
        [decode(assistant.tokenizer, ids) for ids in bare]


def test_seeded_sampling_repeats_alone_and_in_a_batch(assistant):
    sampled = GenerationOptions(max_new_tokens=12, min_new_tokens=12, temperature=1.0, top_p=0.95, top_k=50,
                                seed=1234)
    first = assistant.generate(transcripts=TEXTS, options=sampled)
    assert assistant.generate(transcripts=TEXTS, options=sampled) == first     # a batch with one seed
    assert assistant.generate(transcripts=TEXTS[:1], options=sampled) == first[:1]  # alone == in the batch
    assert assistant.generate(transcripts=TEXTS, options=sampled.replace(seed=99)) != first
    greedy = assistant.generate(transcripts=TEXTS, max_new_tokens=12)
    assert greedy != first and assistant.generate(transcripts=TEXTS, max_new_tokens=12) == greedy


def test_min_new_tokens_makes_every_reply_as_long_as_allowed(assistant):
    replies = assistant.generate_replies(transcripts=TEXTS, options=GenerationOptions(max_new_tokens=9,
                                                                                       min_new_tokens=9))
    assert [r.n_tokens for r in replies] == [9, 9]
    assert all(r.prompt_tokens > 5 for r in replies)


def test_each_row_ends_and_streams_on_its_own(assistant):
    inputs = text_inputs(assistant, TEXTS + TEXTS[:1])
    options = GenerationOptions(max_new_tokens=10, min_new_tokens=4)
    shown: list[list[str]] = [[], [], []]
    rows = [Row(options, text=shown[0].append), Row(options.replace(max_new_tokens=5), text=shown[1].append),
            Row(options)]
    rows[2].cancelled.set()  # a client gone before the first token: its row stops after one
    ids = generate_rows(assistant.llm, assistant.tokenizer, inputs, rows, TokenClock())
    assert len(ids[1]) <= 5 and len(ids[2]) == 1 and len(ids[0]) >= 4
    assert "".join(shown[0]) == assistant.tokenizer.decode(ids[0], skip_special_tokens=True)
    assert "".join(shown[1]) == assistant.tokenizer.decode(ids[1], skip_special_tokens=True)


def test_a_stop_string_ends_generation_and_cuts_the_text(assistant):
    options = GenerationOptions(max_new_tokens=24, min_new_tokens=24)
    full = assistant.generate_replies(transcripts=TEXTS[:1], options=options)[0]
    stop = full.text[len(full.text) // 2:len(full.text) // 2 + 2]
    cut = assistant.generate_replies(transcripts=TEXTS[:1], options=options.replace(min_new_tokens=0,
                                                                                    stop=(stop,)))[0]
    assert cut.text == full.text[:full.text.index(stop)].strip()
    assert cut.n_tokens < 24
    stream = assistant.stream(transcript=TEXTS[0], options=options.replace(min_new_tokens=0, stop=(stop,)))
    assert "".join(stream) == cut.text and stream.reply.text == cut.text


def test_closing_a_stream_stops_its_generation_and_frees_the_model(assistant):
    stream = assistant.stream(transcript=TEXTS[0], options=GenerationOptions(max_new_tokens=400,
                                                                             min_new_tokens=400))
    next(iter(stream))
    stream.close()
    start = time.perf_counter()
    assert assistant._lock.acquire(timeout=30)
    assistant._lock.release()
    assert time.perf_counter() - start < 30


@pytest.mark.parametrize("seed", range(5))
def test_stop_text_shows_exactly_the_final_text_however_the_text_arrives(seed):
    rng = random.Random(seed)
    text = "  Hello there. The END is near, END of story \n"
    stops = ("END", "story")
    cut = StopText(stops)
    pieces, i = [], 0
    while i < len(text):
        j = i + rng.randint(1, 4)
        pieces.append(cut.feed(text[i:j]))
        i = j
    pieces.append(cut.finish())
    assert "".join(pieces) == StopText.whole(text, stops) == "Hello there. The"
    assert StopText.whole("  plain reply \n") == "plain reply"


def test_options_are_checked():
    for bad in (dict(max_new_tokens=0), dict(temperature=-1), dict(top_p=0), dict(min_new_tokens=200),
                dict(stop=("",)), dict(repetition_penalty=0)):
        with pytest.raises(ValueError):
            GenerationOptions(**bad)
    assert GenerationOptions(stop="x").stop == ("x",)


def test_options_enter_the_answer_cache_key_and_greedy_keys_stay_as_they_were():
    base = dict(assistant="a", task="t", item_id="1", modality="audio", prompt=None, content="c",
                settings={"max_new_tokens": 32, "decoding": "greedy"})
    plain = answer_key(**base)
    assert answer_key(**base, options=GenerationOptions(max_new_tokens=32)) == plain
    sampled = answer_key(**base, options=GenerationOptions(max_new_tokens=32, temperature=0.7, seed=1))
    assert sampled != plain
    assert sampled != answer_key(**base, options=GenerationOptions(max_new_tokens=32, temperature=0.7, seed=2))


def test_concurrent_jobs_are_decoded_as_one_batch(assistant):
    from diva.batching import Batcher
    from diva.jobs import Job
    from diva.assistants.base import Request
    batcher = Batcher(assistant, window_s=2.0, max_batch=8)  # a loaded machine may be slow to submit
    try:
        jobs = [batcher.submit(Job(Request(transcript=t), GenerationOptions(max_new_tokens=6), streamed=True))
                for t in TEXTS * 2]
        assert all(job.done.wait(60) for job in jobs)
        assert dict(batcher.batch_sizes) == {4: 1}
        assert [job.reply.text for job in jobs] == assistant.generate(transcripts=TEXTS * 2, max_new_tokens=6)
    finally:
        batcher.stop()
