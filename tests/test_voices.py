"""The offline voice registry: every engine speaks, splits hold out whole speakers."""
import numpy as np
import pytest

from diva import voices as V
from diva.audio import SAMPLE_RATE

SENTENCE = "What is the capital of France?"
ONE_PER_ENGINE = ["espeak:en-us", "espeak:en-gb+f3", "flite:slt", "flite:kal16",
                  "festival:kal_diphone", "festival:slt_hts", "piper:joe"]


def _need(name):
    if not V.get_voice(name).available:
        pytest.skip(f"{name}: engine not installed")


@pytest.mark.parametrize("name", ONE_PER_ENGINE)
def test_each_engine_speaks(name):
    _need(name)
    audio = V.synthesize(SENTENCE, name)
    assert audio.dtype == np.float32 and audio.ndim == 1
    seconds = audio.size / SAMPLE_RATE
    assert 0.8 < seconds < 4.5, seconds          # six words: about 1.5-2.5 s
    assert np.abs(audio).max() == pytest.approx(V.PEAK, rel=1e-3)
    assert np.sqrt(np.mean(audio ** 2)) > 0.02   # not silence


@pytest.mark.parametrize("name", ["espeak:en-us+m3", "flite:awb", "piper:joe"])
def test_speed_changes_duration(name):
    _need(name)
    slow = V.synthesize(SENTENCE, name, speed=0.8).size
    fast = V.synthesize(SENTENCE, name, speed=1.25).size
    assert fast < 0.9 * slow


def test_pitch_shift_keeps_duration():
    _need("flite:kal")
    base = V.synthesize(SENTENCE, "flite:kal").size
    high = V.synthesize(SENTENCE, "flite:kal", pitch=1.15).size
    assert abs(high - base) < 0.05 * base


def test_seeded_deterministic_engines_repeat():
    _need("flite:rms")
    a = V.synthesize(SENTENCE, "flite:rms", seed=3)
    b = V.synthesize(SENTENCE, "flite:rms", seed=3)
    np.testing.assert_array_equal(a, b)


def test_splits_are_disjoint_by_speaker():
    train, valid, test = set(V.TRAIN_VOICES), set(V.VALID_VOICES), set(V.TEST_VOICES)
    assert not (train & valid or train & test or valid & test)
    speakers = lambda names: {V.get_voice(n).speaker for n in names}
    assert not speakers(train) & (V.TEST_SPEAKERS | V.VALID_SPEAKERS)
    assert speakers(test) <= V.TEST_SPEAKERS and speakers(valid) <= V.VALID_SPEAKERS
    assert {V.split_of(n) for n in V.TEST_VOICES} == {"test"}
    assert {V.split_of(n) for n in V.VALID_VOICES} == {"valid"}
    assert len(train) > 100 and {V.get_voice(n).engine for n in train} >= {"espeak", "flite", "festival"}


def test_unheard_split_is_disjoint_from_every_other_split():
    unheard = set(V.UNHEARD_VOICES)
    assert unheard and not unheard & (set(V.TRAIN_VOICES) | set(V.VALID_VOICES) | set(V.TEST_VOICES))
    assert {V.split_of(n) for n in unheard} == {"unheard"}
    speakers = {V.get_voice(n).speaker for n in unheard}
    assert not speakers & (V.TEST_SPEAKERS | V.VALID_SPEAKERS)          # no held-out speaker reused
    assert V.UNHEARD_SPEAKERS <= speakers and not V.UNHEARD_SPEAKERS & {
        V.get_voice(n).speaker for n in V.TRAIN_VOICES}                # a speaker training never heard
    espeak = [n for n in unheard if n.startswith("espeak:")]
    assert not {n.split("+")[1] for n in espeak} & set(V.ESPEAK_VARIANTS)  # variants no split has
    sampler = V.VoiceSampler()
    off_range = [(s, p) for _, s, p in V.UNHEARD_RENDERINGS
                 if not (sampler.speed_range[0] <= s <= sampler.speed_range[1]
                         and sampler.pitch_range[0] <= p <= sampler.pitch_range[1])]
    assert len(off_range) == len(V.UNHEARD_RENDERINGS) - 1              # all but the plain KED rendering


def test_sampler_is_deterministic_and_uses_only_its_voices():
    sampler = V.VoiceSampler(seed=7)
    draws = [sampler.draw(i) for i in range(300)]
    assert draws == [V.VoiceSampler(seed=7).draw(i) for i in range(300)]
    assert all(d.voice in V.TRAIN_VOICES for d in draws)
    assert all(0.85 <= d.speed <= 1.2 and 0.88 <= d.pitch <= 1.15 for d in draws)
    assert len({d.voice for d in draws}) > 50
    assert draws != [V.VoiceSampler(seed=8).draw(i) for i in range(300)]


def test_bad_inputs():
    with pytest.raises(KeyError):
        V.synthesize(SENTENCE, "espeak:klingon")
    with pytest.raises(V.SynthesisError):
        V.synthesize("   ", "espeak:en-us")
