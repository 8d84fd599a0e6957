"""The one prompt builder: the LLM's chat template around audio or a transcript.

Three layouts, chosen by name (`PromptLayout(tokenizer, style=...)`); with no text prompt all
three are the same: the chat template of one user turn, the content (virtual tokens for the
audio branch, the transcript for the text branch) in place of the message, then the assistant
header. They differ only in where a text prompt goes:

- `native` (ours, the default; DESIGN.md): inside the user turn, "<prompt>\\n" before the content.
  No system prompt is added by us; a template that inserts its own default system turn
  (SmolLM2 does) keeps it, identically in both branches.
- `reference`: the released DiVA's `generate`. The template's text before the message is cut
  into lines; pre = its first non-empty line + "\\n", post = "\\n" + its last non-empty line + "\\n";
  input = pre, prompt, post, content, the template's text after the message. (For Llama 3 both
  lines are the user header, so the user header appears twice.)
- `paper-eval`: the paper's evaluation code. Llama 3's system header as the tokenizer encodes it
  with special tokens (BOS added: two BOS lead), the prompt, then the no-prompt layout.

Tokenizers without a chat template get LLAMA3_CHAT_TEMPLATE.
"""
from __future__ import annotations

import functools

PLACEHOLDER = "\uE000DIVA_CONTENT\uE000"  # private-use characters: never in real text
LAYOUT_STYLES = ("native", "reference", "paper-eval")
PAPER_EVAL_SYSTEM_HEADER = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n"

# Llama 3 Instruct's conversation format: BOS, then per message a role header, the trimmed
# content and an end-of-turn token; the assistant header opens the reply.
LLAMA3_CHAT_TEMPLATE = (
    "<|begin_of_text|>"
    "{% for message in messages %}"
    "<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{{ message['content'] | trim }}<|eot_id|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def user_content(content: str, prompt: str | None = None) -> str:
    return f"{prompt}\n{content}" if prompt else content


class PromptLayout:
    def __init__(self, tokenizer, style: str = "native"):
        if style not in LAYOUT_STYLES:
            raise ValueError(f"layout style must be one of {LAYOUT_STYLES}, got {style!r}")
        self.tokenizer = tokenizer
        self.style = style
        self.chat_template = None if getattr(tokenizer, "chat_template", None) else LLAMA3_CHAT_TEMPLATE

    def __repr__(self) -> str:
        return f"PromptLayout(style={self.style!r})"

    def render(self, messages: list[dict]) -> str:
        """The chat template's text for these messages, ending with the assistant header."""
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                                  chat_template=self.chat_template)

    def _render(self, content: str) -> str:
        return self.render([{"role": "user", "content": content}])

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _split(self, prompt: str | None = None) -> tuple[str, str]:
        """The template's text before and after the user message."""
        before, after = self._render(user_content(PLACEHOLDER, prompt)).split(PLACEHOLDER)
        return before, after

    @functools.lru_cache(maxsize=256)
    def around_audio(self, prompt: str | None = None) -> tuple[list[int], list[int]]:
        """Token ids before and after the virtual tokens."""
        if self.style == "native" or not prompt:
            before, after = self._split(prompt)
            return self._encode(before), self._encode(after)
        before, after = self._split()
        plain_before, after_ids = self._encode(before), self._encode(after)
        prompt_ids = self._encode(prompt)
        if self.style == "reference":
            lines = [line for line in before.split("\n") if line.strip()]
            return (self._encode(lines[0] + "\n") + prompt_ids + self._encode("\n" + lines[-1] + "\n"),
                    after_ids)
        return self._paper_eval_header() + prompt_ids + plain_before, after_ids

    def _paper_eval_header(self) -> list[int]:
        vocab = self.tokenizer.get_vocab()
        if "<|start_header_id|>" not in vocab or self.tokenizer.bos_token_id is None:
            raise ValueError("the paper-eval layout is Llama 3's: this tokenizer has no "
                             "<|start_header_id|> token or no BOS")
        return [self.tokenizer.bos_token_id] + self._encode(PAPER_EVAL_SYSTEM_HEADER)

    def text_ids(self, transcript: str, prompt: str | None = None) -> list[int]:
        """Token ids of the whole text-branch prompt. Native: the template rendered with the
        transcript, tokenized as the LLM normally sees it; the others: the transcript's tokens in
        place of the virtual tokens."""
        if self.style == "native" or not prompt:
            return self._encode(self._render(user_content(transcript, prompt)))
        before, after = self.around_audio(prompt)
        return before + self.transcript_ids(transcript) + after

    def transcript_ids(self, transcript: str) -> list[int]:
        """The transcript's own tokens (the token-alignment targets)."""
        return self._encode(transcript)
