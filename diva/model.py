"""DiVA: frozen Whisper encoder -> Q-Former connector -> virtual tokens -> frozen text LLM.

The connector is a full copy of Whisper's decoder, initialised from Whisper, whose input
embeddings are learned query tokens (plus Whisper's learned decoder positions); it
cross-attends to the encoder output with causal self-attention over the queries. A linear
projection (with bias) maps its output to the LLM width. Trainable: query tokens, the decoder
copy, the projection. Frozen: the encoder and the LLM.

`DivaConfig` holds what shapes the weights; `diva.bridge.InferenceOptions` how the virtual tokens
are read at inference (only the vocabulary bridge has choices there).
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from diva.audio import SAMPLE_RATE, LongAudioWarning, split_windows
from diva.bridge import InferenceOptions, SlotReader, VocabularyBridge, whisper_to_llm_ids
from diva.padding import pad
from diva.prompt import PromptLayout

UNUSED_CONNECTOR_PREFIX = "embed_tokens."  # Whisper's token table, copied but never read
PROJECTIONS = ("linear", "whisper-vocab")


@dataclass(frozen=True)
class DivaConfig:
    encoder: str = "whisper-tiny.en"      # embedded name, hub id or folder
    llm: str = "smollm2-135m-instruct"
    n_queries: int = 448                  # paper: 448 = Whisper's max target length
    encoder_seconds: float = 30.0         # Whisper's window; shorter runs the encoder on N seconds
                                          # at a time (faster; longer clips are heard window by window)
    projection: str = "linear"            # "linear" (the paper) | "whisper-vocab" (diva.bridge)

    def to_dict(self) -> dict:
        return asdict(self)


class DiVA(nn.Module):
    def __init__(self, whisper, feature_extractor, llm, tokenizer, config: DivaConfig,
                 whisper_tokenizer=None, options: InferenceOptions | None = None):
        super().__init__()
        max_queries = whisper.config.max_target_positions
        if not 1 <= config.n_queries <= max_queries:
            raise ValueError(f"n_queries must be in 1..{max_queries} (Whisper's decoder positions)")
        window = whisper.config.max_source_positions  # encoder frames in 30 s (50 per second)
        self.encoder_frames = round(config.encoder_seconds * window / 30)
        if not 1 <= self.encoder_frames <= window:
            raise ValueError(f"encoder_seconds must be in (0, 30], got {config.encoder_seconds}")
        if config.projection not in PROJECTIONS:
            raise ValueError(f"projection must be one of {PROJECTIONS}, got {config.projection!r}")
        if config.projection == "whisper-vocab" and whisper_tokenizer is None:
            raise ValueError("projection 'whisper-vocab' needs Whisper's tokenizer")
        self.config = config
        self.feature_extractor = feature_extractor
        self.tokenizer = tokenizer
        self.whisper_tokenizer = whisper_tokenizer  # the connector's own vocabulary (CTC targets, bridge)
        self.encoder = whisper.get_encoder()          # frozen, shared with other assistants
        self.llm = llm                                # frozen, shared with other assistants
        d_whisper, d_llm = whisper.config.d_model, llm.get_input_embeddings().embedding_dim
        self.connector = copy.deepcopy(whisper.get_decoder())
        self.connector.train(False)
        self.connector.requires_grad_(True)
        # its inputs are the query tokens, so the copied token-embedding table is never used
        self.connector.embed_tokens.requires_grad_(False)
        # start the queries at Whisper's own token-embedding scale
        scale = float(self.connector.embed_tokens.weight.detach().std())
        self.query_tokens = nn.Parameter(torch.randn(config.n_queries, d_whisper) * scale)
        if config.projection == "linear":
            self.projection = nn.Linear(d_whisper, d_llm, bias=True)
        else:
            table = self.connector.embed_tokens.weight
            token_map = whisper_to_llm_ids(whisper_tokenizer, tokenizer, table.shape[0])
            self.projection = VocabularyBridge(table, llm.get_input_embeddings().weight, token_map)
        device, dtype = next(llm.parameters()).device, next(llm.parameters()).dtype
        self.connector.to(device=device, dtype=dtype)
        self.projection.to(device=device, dtype=dtype)
        self.query_tokens.data = self.query_tokens.data.to(device=device, dtype=dtype)
        self.options = options or InferenceOptions()

    # ---- construction ---------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: DivaConfig, options: InferenceOptions | None = None) -> "DiVA":
        from diva.models import load_llm, load_whisper
        whisper, features, whisper_tokenizer = load_whisper(config.encoder)
        llm, tokenizer = load_llm(config.llm)
        return cls(whisper, features, llm, tokenizer, config, whisper_tokenizer, options)

    @property
    def options(self) -> InferenceOptions:
        return self._options

    @options.setter
    def options(self, options: InferenceOptions) -> None:
        """Set how the virtual tokens are read (the weights stay as they are)."""
        if options.bridge_decode != "greedy" and self.config.projection != "whisper-vocab":
            raise ValueError(f"bridge_decode {options.bridge_decode!r} reads the vocabulary bridge's "
                             "slots; this DiVA has a linear projection")
        self._options = options
        self.layout = PromptLayout(self.tokenizer, style=options.prompt_layout)
        self.reader = SlotReader(self.projection, self.llm, self.layout, self.whisper_tokenizer, options) \
            if self.config.projection == "whisper-vocab" else None

    def train(self, mode: bool = True) -> "DiVA":
        super().train(mode)
        self.encoder.eval()  # frozen parts never switch to training mode
        self.llm.eval()
        return self

    @property
    def device(self) -> torch.device:
        return self.query_tokens.device

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What the optimiser gets: the query tokens, the decoder copy and the projection."""
        parts = [self.query_tokens, *self.connector.parameters(), *self.projection.parameters()]
        return [p for p in parts if p.requires_grad]

    def connector_state_dict(self) -> dict[str, torch.Tensor]:
        """Only what DiVA trains (the encoder and LLM come from their own checkpoints; the
        connector's unused token-embedding table stays Whisper's and is left out)."""
        state = {"query_tokens": self.query_tokens.detach()}
        state.update({f"connector.{k}": v for k, v in self.connector.state_dict().items()
                      if not k.startswith(UNUSED_CONNECTOR_PREFIX)})
        state.update({f"projection.{k}": v for k, v in self.projection.state_dict().items()})
        return state

    # ---- the audio path -------------------------------------------------------------------
    def features(self, audios: list[np.ndarray]) -> torch.Tensor:
        """Log-mel features padded to Whisper's 30 s window: (B, n_mels, 3000)."""
        out = self.feature_extractor(audios, sampling_rate=SAMPLE_RATE, return_tensors="pt")
        return out.input_features.to(self.device, dtype=self.query_tokens.dtype)

    @torch.no_grad()
    def encode(self, features: torch.Tensor) -> torch.Tensor:
        """Frozen Whisper encoder: (B, n_mels, 3000) -> (B, frames, d_whisper), 1500 frames for 30 s."""
        if self.encoder_frames == self.encoder.config.max_source_positions:
            return self.encoder(features).last_hidden_state
        return encode_window(self.encoder, features, self.encoder_frames)

    def connector_states(self, encoder_states: torch.Tensor) -> torch.Tensor:
        """The decoder copy's output on the queries (after its final norm, in Whisper's own
        output space): (B, frames, d_whisper) -> (B, n_queries, d_whisper)."""
        queries = self.query_tokens.unsqueeze(0).expand(encoder_states.shape[0], -1, -1)
        return self.connector(inputs_embeds=queries, encoder_hidden_states=encoder_states,
                              use_cache=False).last_hidden_state

    def project(self, connector_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Connector states -> virtual tokens (B, n_queries, d_llm) and the slots the LLM sees
        (B, n_queries), None for all of them (the linear projection). Differentiable: training
        reads the bridge greedily."""
        if self.reader is None:
            return self.projection(connector_states), None
        return self.reader.greedy(connector_states)

    def virtual_tokens(self, encoder_states: torch.Tensor) -> torch.Tensor:
        """Connector + projection: (B, frames, d_whisper) -> (B, n_queries, d_llm), every slot."""
        return self.project(self.connector_states(encoder_states))[0]

    def read_speech(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """At inference: `project`, or the bridge's slots read as `self.options` say."""
        return self.project(states) if self.reader is None else self.reader(states)

    def read_speech_heard(self, states: torch.Tensor):
        """`read_speech` plus what each clip was heard as when the bridge reads its slots as text
        (None for the linear projection, whose virtual tokens are no text)."""
        if self.reader is None:
            return (*self.project(states), None)
        return self.reader.read_with_text(states)

    # ---- LLM inputs in the chat-template layout ---------------------------------------------
    def embed_ids(self, ids: list[int]) -> torch.Tensor:
        table = self.llm.get_input_embeddings()
        return table(torch.tensor(ids, dtype=torch.long, device=self.device))

    def audio_inputs(self, virtual_tokens: torch.Tensor, prompts: list[str | None] | None = None,
                     keep: torch.Tensor | None = None):
        """[prefix][prompt][virtual tokens][suffix] per example, left-padded; `keep` (B, slots)
        selects the virtual tokens to hand over (project)."""
        prompts = prompts or [None] * virtual_tokens.shape[0]
        rows = []
        for i, (tokens, prompt) in enumerate(zip(virtual_tokens, prompts)):
            before, after = self.layout.around_audio(prompt)
            if keep is not None:
                tokens = tokens[keep[i].bool()]
            rows.append(torch.cat([self.embed_ids(before), tokens, self.embed_ids(after)]))
        return pad(rows, side="left")

    def text_inputs(self, transcripts: list[str], prompts: list[str | None] | None = None):
        """The same layout with the transcript in place of the audio, left-padded."""
        prompts = prompts or [None] * len(transcripts)
        return pad([self.embed_ids(self.layout.text_ids(t, p)) for t, p in zip(transcripts, prompts)])

    def last_hidden(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The LLM's final hidden state (after its final norm) at the last prompt position."""
        out = self.llm.get_decoder()(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                     use_cache=False)
        return out.last_hidden_state[:, -1]

    def speech_states(self, audios: list[np.ndarray]) -> torch.Tensor:
        """Audio arrays (16 kHz) of at most one encoder window -> connector states (B, n_queries,
        d_whisper). Longer audio is cut to the window: `hear` reads it window by window."""
        longest = max(len(a) for a in audios) / SAMPLE_RATE
        if longest > self.config.encoder_seconds:
            warnings.warn(LongAudioWarning(f"{longest:.1f} s of audio: the connector reads only the first "
                                           f"{self.config.encoder_seconds:g} s (DiVA.hear reads it all)"),
                          stacklevel=2)
        return self.connector_states(self.encode(self.features(audios)))

    def hear(self, audios: list[np.ndarray]):
        """Audio arrays (16 kHz) -> virtual tokens (B, T, d_llm), the (B, T) tokens to hand over
        (None: all of them) and what each clip was heard as (None: the linear projection).

        A clip longer than the encoder window (or than `options.window_seconds`, when shorter) is
        heard in consecutive pieces (`split_windows`, cut at quiet points); the LLM gets their
        virtual tokens in order."""
        window = min(self.config.encoder_seconds, self.options.window_seconds or self.config.encoder_seconds)
        pieces = [split_windows(a, window) for a in audios]
        if all(len(p) == 1 for p in pieces):
            return self.read_speech_heard(self.speech_states(audios))
        virtual, keep, heard = self.read_speech_heard(self.speech_states([w for p in pieces for w in p]))
        rows, texts, first = [], [], 0
        for p in pieces:
            windows = range(first, first + len(p))
            first += len(p)
            rows.append(torch.cat([virtual[j] if keep is None else virtual[j][keep[j]] for j in windows]))
            if heard is not None:
                texts.append(" ".join(heard[j] for j in windows if heard[j]))
        virtual, keep = pad(rows, side="right")
        return virtual, keep.bool(), (texts if heard is not None else None)

    def speech_inputs(self, audios: list[np.ndarray], prompts: list[str | None] | None = None):
        """Audio arrays (16 kHz) -> LLM inputs_embeds and attention mask, ready for generation."""
        virtual, keep, _ = self.hear(audios)
        return self.audio_inputs(virtual, prompts, keep)


def encode_window(encoder, features: torch.Tensor, frames: int) -> torch.Tensor:
    """Whisper's encoder forward on the first `frames` positions only (2 mel frames each): the
    same layers on a shorter window. (transformers' forward insists on the full 30 s.)"""
    x = nn.functional.gelu(encoder.conv1(features[..., :2 * frames]))
    x = nn.functional.gelu(encoder.conv2(x)).permute(0, 2, 1)
    x = x + encoder.embed_positions.weight[:frames]
    for layer in encoder.layers:
        x = layer(x, None)
    return encoder.layer_norm(x)
