"""The vocabulary bridge, its CTC reading and the LLM-rescored beam; inference options."""
import itertools
import math

import numpy as np
import pytest
import torch

from diva.bridge import (InferenceOptions, VocabularyBridge, ctc_prefix_beam, pick_question,
                         question_log_probs, whisper_to_llm_ids)
from diva.checkpoint import (CheckpointError, load_diva, load_state_into, read_checkpoint, save_connector,
                             save_released_layout)
from diva.prompt import PromptLayout
from diva.testing import save_tiny_models, tiny_diva, tiny_llm, tiny_tokenizer

BEAM = InferenceOptions(bridge_temperature=0.05, bridge_decode="llm-beam", beam_width=4, beam_top_k=3)


def collapse(path, blank):
    out = []
    for i, token in enumerate(path):
        if token != blank and (i == 0 or path[i - 1] != token):
            out.append(token)
    return tuple(out)


def test_vocabulary_bridge_maps_whisper_tokens_to_llm_embeddings():
    tok = tiny_tokenizer()
    token_map = whisper_to_llm_ids(tok, tok, len(tok))  # the same tokenizer on both sides
    specials = set(tok.all_special_ids)
    assert all((token_map[i] == -1) if i in specials else (token_map[i] == i) for i in range(len(tok)))
    whisper_table = torch.eye(len(tok), 6)   # token i reads as coordinate i (for i < 6)
    llm_table = torch.randn(len(tok), 4)
    bridge = VocabularyBridge(whisper_table, llm_table, token_map)
    confident = torch.zeros(2, 6)
    word = next(i for i in range(6) if i not in specials)
    blank = next(i for i in range(6) if i in specials)
    confident[0, word] = confident[1, blank] = 60.0
    out, keep = bridge.read(confident, temperature=1.0)
    assert torch.allclose(out[0], llm_table[word], atol=1e-4)
    assert out[1].abs().max() < 1e-4                       # the blank (a special token) hands over zeros
    assert keep.tolist() == [True, False]
    assert not list(bridge.parameters()) and not bridge.state_dict()  # nothing trained, nothing saved


def test_vocabulary_bridge_on_the_embedded_tokenizers():
    from transformers import AutoTokenizer, WhisperTokenizerFast
    from diva.models import resolve
    whisper_tok = WhisperTokenizerFast.from_pretrained(resolve("whisper-tiny.en"))
    llm_tok = AutoTokenizer.from_pretrained(resolve("smollm2-135m-instruct"))
    token_map = whisper_to_llm_ids(whisper_tok, llm_tok, 51864)
    france = whisper_tok(" France", add_special_tokens=False).input_ids
    assert len(france) == 1 and llm_tok.decode([int(token_map[france[0]])]) == " France"
    assert token_map[whisper_tok.eos_token_id] == -1
    assert (token_map >= 0).float().mean() > 0.95


def test_bridge_temperature_sharpens_the_reading():
    tok = tiny_tokenizer()
    specials = set(tok.all_special_ids)
    word, other = [i for i in range(6) if i not in specials][:2]
    bridge = VocabularyBridge(torch.eye(len(tok), 6), torch.randn(len(tok), 4), whisper_to_llm_ids(tok, tok, len(tok)))
    unsure = torch.zeros(1, 6)
    unsure[:, word], unsure[:, other] = 2.0, 1.0           # word ahead of the other, not by much
    target = bridge.targets[word]
    soft, sharp = bridge.read(unsure, 1.0)[0], bridge.read(unsure, 0.05)[0]
    assert (sharp[0] - target).norm() < 1e-3 < (soft[0] - target).norm()
    with pytest.raises(ValueError, match="bridge_temperature"):
        InferenceOptions(bridge_temperature=0.0)


def test_bridge_reads_slots_as_ctc_does_leaving_out_blanks_and_repeats():
    tok = tiny_tokenizer()
    specials = set(tok.all_special_ids)
    a, b = [i for i in range(8) if i not in specials][:2]
    blank = next(i for i in range(8) if i in specials)
    bridge = VocabularyBridge(torch.eye(len(tok), 8), torch.randn(len(tok), 4), whisper_to_llm_ids(tok, tok, len(tok)))
    slots = [a, a, blank, a, b, b]                          # CTC's "a a _ a b b" spells "a a b"
    states = torch.zeros(len(slots), 8)
    states[torch.arange(len(slots)), slots] = 5.0
    assert bridge.read(states, 1.0)[1].tolist() == [True, False, False, True, True, False]


def test_diva_hands_the_llm_only_the_slots_the_bridge_keeps():
    diva = tiny_diva(n_queries=4, projection="whisper-vocab")
    states = torch.randn(2, 4, diva.connector.config.d_model)
    virtual, keep = diva.project(states)
    assert torch.equal(keep, diva.projection.read(states, 1.0)[1])
    keep = torch.tensor([[True, False, True, True], [False, False, False, True]])
    embeds, mask = diva.audio_inputs(virtual, keep=keep)
    full, full_mask = diva.audio_inputs(virtual)
    assert mask.sum(1).tolist() == [full_mask.sum(1)[0] - 1, full_mask.sum(1)[1] - 3]
    before, after = diva.layout.around_audio(None)
    expected = torch.cat([diva.embed_ids(before), virtual[1, 3:], diva.embed_ids(after)])
    assert torch.equal(embeds[1, mask[1].bool()], expected)     # only slot 3 of example 1 is kept


def test_diva_with_the_vocabulary_bridge_saves_no_projection(tmp_path):
    diva = tiny_diva(n_queries=4, projection="whisper-vocab")
    assert not any(k.startswith("projection.") for k in diva.connector_state_dict())
    assert all(p is not diva.projection for p in diva.trainable_parameters())
    clip = np.zeros(16_000, np.float32) + 0.01
    tokens = diva.project(diva.speech_states([clip]))[0]
    assert tokens.shape == (1, 4, diva.llm.config.hidden_size)
    save_connector(diva, tmp_path / "bridge")
    config, state, raw = read_checkpoint(tmp_path / "bridge")
    assert config.projection == "whisper-vocab" and raw["projection"] == "whisper-vocab"
    again = tiny_diva(n_queries=4, projection="whisper-vocab")  # same frozen models, then other queries
    with torch.no_grad():
        again.query_tokens.normal_()
    assert not torch.allclose(again.project(again.speech_states([clip]))[0], tokens, atol=1e-5)
    load_state_into(again, state)
    assert torch.allclose(again.project(again.speech_states([clip]))[0], tokens, atol=1e-5)
    with pytest.raises(CheckpointError, match="linear projection"):
        save_released_layout(diva, tmp_path / "released")
    with pytest.raises(ValueError, match="projection"):
        tiny_diva(projection="mlp")


def test_prefix_beam_sums_every_ctc_path_of_a_reading():
    torch.manual_seed(0)
    log_probs = torch.randn(4, 3).log_softmax(-1)         # 4 slots; token 0 is the blank, 1 and 2 words
    is_word = torch.tensor([False, True, True])
    expected = {}
    for path in itertools.product(range(3), repeat=4):    # brute force: all 81 slot paths
        p = sum(log_probs[q, t].item() for q, t in enumerate(path))
        reading = collapse(path, 0)
        expected[reading] = math.log(math.exp(expected.get(reading, -math.inf)) + math.exp(p))
    beam = dict(ctc_prefix_beam(log_probs, is_word, beam_width=1000, top_k=2))
    assert set(beam) == set(expected)                     # (1, 1) only with a blank between, etc.
    for reading, score in expected.items():
        assert beam[reading] == pytest.approx(score, abs=1e-6)
    ranked = [score for _, score in ctc_prefix_beam(log_probs, is_word, beam_width=3, top_k=2)]
    assert len(ranked) == 3 and ranked == sorted(ranked, reverse=True)


def test_question_log_probs_match_a_forward_without_cache():
    llm, layout = tiny_llm(), PromptLayout(tiny_tokenizer())
    questions = ["What is the capital?", "the cat"]
    got = question_log_probs(llm, layout, questions)
    before, after = layout.around_audio(None)
    for question, (score, n) in zip(questions, got):
        ids = before + layout.transcript_ids(question) + after[:1]
        log_probs = llm(input_ids=torch.tensor([ids])).logits[0].log_softmax(-1)
        expected = sum(log_probs[i - 1, ids[i]].item() for i in range(len(before), len(ids)))
        assert n == len(ids) - len(before)
        assert score == pytest.approx(expected, abs=1e-4)


def test_pick_question_weighs_the_recogniser_against_the_llm():
    llm, layout = tiny_llm(), PromptLayout(tiny_tokenizer())
    candidates = [("the cat", 0.0), (" the cat ", -0.1), ("What is it?", -5.0), ("", 1.0)]
    assert pick_question(llm, layout, candidates, lm_weight=0.0, length_bonus=0.0) == "the cat"
    lm = dict(zip(["the cat", "What is it?"], question_log_probs(llm, layout, ["the cat", "What is it?"])))
    likelier = max(lm, key=lambda q: lm[q][0])
    assert pick_question(llm, layout, candidates, lm_weight=1e4, length_bonus=0.0) == likelier
    longer = max(lm, key=lambda q: lm[q][1])
    assert pick_question(llm, layout, candidates, lm_weight=0.0, length_bonus=1e4) == longer
    assert pick_question(llm, layout, [("  ", 0.0)], 0.5, 1.0) == ""


def test_llm_beam_hands_the_llm_the_picked_question_in_its_own_tokens():
    diva = tiny_diva(n_queries=6, projection="whisper-vocab", options=BEAM)
    torch.manual_seed(0)
    states = torch.randn(2, 6, diva.connector.config.d_model) * 3
    questions = diva.reader.questions(diva.projection.head_logits(states))  # width 4, top 3
    assert all(questions)
    virtual, keep = diva.read_speech(states)
    for i, question in enumerate(questions):
        assert torch.equal(virtual[i][keep[i]], diva.embed_ids(diva.layout.transcript_ids(question)))
    diva.options = InferenceOptions(bridge_temperature=0.05)  # the same weights read greedily
    assert all(torch.equal(a, b) for a, b in zip(diva.read_speech(states), diva.project(states)))


def test_inference_options_are_stored_beside_the_checkpoint_and_changed_when_loading(tmp_path):
    whisper_dir, llm_dir = save_tiny_models(tmp_path / "models")
    diva = tiny_diva(n_queries=6, projection="whisper-vocab", options=BEAM)
    save_connector(diva, tmp_path / "beam")
    config, _, raw = read_checkpoint(tmp_path / "beam")
    assert raw["inference"] == BEAM.to_dict() and "bridge_decode" not in raw   # not an architecture key
    loaded = load_diva(tmp_path / "beam", encoder=whisper_dir, llm=llm_dir)
    assert loaded.options == BEAM and loaded.config.n_queries == 6
    greedy = load_diva(tmp_path / "beam", encoder=whisper_dir, llm=llm_dir, options={"bridge_decode": "greedy"})
    assert greedy.options.bridge_decode == "greedy" and greedy.options.bridge_temperature == 0.05


def test_unknown_or_impossible_inference_options_are_refused(tmp_path):
    with pytest.raises(ValueError, match="bridge_decode"):
        InferenceOptions(bridge_decode="sample")
    with pytest.raises(ValueError, match="unknown inference options \\['beam_size'\\]"):
        InferenceOptions.from_dict({"beam_size": 4})
    with pytest.raises(ValueError, match="linear projection"):
        tiny_diva(options=InferenceOptions(bridge_decode="llm-beam"))


def test_the_released_checkpoint_places_prompts_its_own_way(tmp_path):
    whisper_dir, llm_dir = save_tiny_models(tmp_path / "models")
    save_released_layout(tiny_diva(n_queries=4), tmp_path / "released")
    assert read_checkpoint(tmp_path / "released")[2]["inference"] == {"prompt_layout": "reference"}
    released = load_diva(tmp_path / "released", encoder=whisper_dir, llm=llm_dir)
    assert released.layout.style == "reference" and released.options.prompt_layout == "reference"
    save_connector(tiny_diva(n_queries=4), tmp_path / "ours")
    ours = load_diva(tmp_path / "ours", encoder=whisper_dir, llm=llm_dir, options={"prompt_layout": "paper-eval"})
    assert ours.layout.style == "paper-eval"
    assert load_diva(tmp_path / "ours", encoder=whisper_dir, llm=llm_dir).layout.style == "native"
