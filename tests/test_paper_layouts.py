"""The three prompt layouts on Llama 3's real tokenizer: exact token ids, and the LLM's first-token
logits behind DiVA equal a plain forward of the hand-built sequence."""
import pytest
import torch
from paper_helpers import (
    ASSISTANT_HEADER,
    USER_HEADER,
    llama3_tokenizer,
    tiny_llama3_diva,
    tone,
)

from diva.prompt import LLAMA3_CHAT_TEMPLATE, PromptLayout
from diva.testing import tiny_tokenizer

PROMPT = "\nRespond whether the input is sarcastic. Answer with a simple yes or no."
SYSTEM_HEADER_TWO_BOS = [128000, 128000, 128006, 9125, 128007, 198]  # via.py's, current tokenizer


def prompt_ids(tok, prompt=PROMPT):
    return tok(prompt, add_special_tokens=False)["input_ids"]


def hand_built(style: str, tok, prompt=PROMPT) -> tuple[list[int], list[int]]:
    """The ids before and after the virtual tokens, written out by hand from the facts."""
    if not prompt:
        return USER_HEADER, ASSISTANT_HEADER
    if style == "native":  # the prompt then "\n" inside the user turn
        return USER_HEADER + tok(prompt.strip() + "\n", add_special_tokens=False)["input_ids"], ASSISTANT_HEADER
    if style == "reference":  # first / last non-empty line of the template's prefix, then "\n"
        line = [128000, 128006, 882, 128007]
        return line + [198] + prompt_ids(tok, prompt) + [198] + line + [198], ASSISTANT_HEADER
    return SYSTEM_HEADER_TWO_BOS + prompt_ids(tok, prompt) + USER_HEADER, ASSISTANT_HEADER


def test_llama3_tokenizer_has_no_template_and_gets_ours():
    tok = llama3_tokenizer()
    assert len(tok) == 128256 and not tok.chat_template
    layout = PromptLayout(tok)
    assert layout.chat_template == LLAMA3_CHAT_TEMPLATE
    text = layout.render([{"role": "user", "content": "  Hi there  "}])
    assert text == ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
                    "<|start_header_id|>assistant<|end_header_id|>\n\n")
    # a tokenizer with its own template keeps it
    assert PromptLayout(tiny_tokenizer()).chat_template is None
    assert PromptLayout(tiny_tokenizer()).render([{"role": "user", "content": "x"}]).startswith("<|im_start|>user")


@pytest.mark.parametrize("style", ["native", "reference", "paper-eval"])
def test_no_prompt_is_the_training_layout_in_every_style(style):
    layout = PromptLayout(llama3_tokenizer(), style=style)
    assert layout.around_audio(None) == (USER_HEADER, ASSISTANT_HEADER)
    assert layout.around_audio("") == (USER_HEADER, ASSISTANT_HEADER)


@pytest.mark.parametrize("style", ["native", "reference", "paper-eval"])
def test_prompt_ids_per_layout(style):
    tok = llama3_tokenizer()
    assert PromptLayout(tok, style=style).around_audio(PROMPT) == hand_built(style, tok)


def test_paper_eval_header_is_what_the_current_tokenizer_encodes():
    tok = llama3_tokenizer()
    text = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n"
    # the packaged tokenizer.json predates the post-processor that adds a BOS: we add it
    assert tok.encode(text) == SYSTEM_HEADER_TWO_BOS[1:]
    before, _ = PromptLayout(tok, style="paper-eval").around_audio("Hi")
    assert before[:6] == SYSTEM_HEADER_TWO_BOS


def test_layout_names_and_llama3_only_paper_eval():
    with pytest.raises(ValueError, match="layout style"):
        PromptLayout(llama3_tokenizer(), style="released")
    with pytest.raises(ValueError, match="Llama 3"):
        PromptLayout(tiny_tokenizer(), style="paper-eval").around_audio("Hi")


def test_text_branch_uses_the_same_layout():
    tok = llama3_tokenizer()
    layout = PromptLayout(tok, style="reference")
    before, after = layout.around_audio("Translate.")
    assert layout.text_ids("Good morning.", "Translate.") == before + layout.transcript_ids("Good morning.") + after


@pytest.fixture(scope="module")
def diva():
    return tiny_llama3_diva()


@pytest.mark.parametrize("style", ["native", "reference", "paper-eval"])
@pytest.mark.parametrize("prompt", [None, PROMPT])
def test_first_token_logits_equal_a_plain_forward_of_the_hand_built_sequence(diva, style, prompt):
    tok = diva.tokenizer
    diva.layout = PromptLayout(tok, style=style)
    audio = tone()
    with torch.no_grad():
        embeds, mask = diva.speech_inputs([audio], [prompt])
        through_diva = diva.llm(inputs_embeds=embeds, attention_mask=mask).logits[0, -1]
        virtual, _ = diva.read_speech(diva.speech_states([audio]))
        before, after = hand_built(style, tok, prompt)
        table = diva.llm.get_input_embeddings()
        sequence = torch.cat([table(torch.tensor(before)), virtual[0], table(torch.tensor(after))])
        plain = diva.llm(inputs_embeds=sequence[None]).logits[0, -1]
    assert embeds.shape[1] == len(before) + diva.config.n_queries + len(after)
    torch.testing.assert_close(through_diva, plain, rtol=1e-5, atol=1e-5)


def test_layouts_change_what_the_llm_sees(diva):
    """The comparison above would pass trivially if the style were ignored."""
    audio = tone()
    logits = {}
    for style in ("native", "reference", "paper-eval"):
        diva.layout = PromptLayout(diva.tokenizer, style=style)
        with torch.no_grad():
            embeds, mask = diva.speech_inputs([audio], [PROMPT])
            logits[style] = diva.llm(inputs_embeds=embeds, attention_mask=mask).logits[0, -1]
    assert not torch.allclose(logits["native"], logits["reference"])
    assert not torch.allclose(logits["reference"], logits["paper-eval"])
