"""The arena's local models in their own server processes (demo.workers): battles answered by the
workers, each model decoding with its own generation options (stored with the battle), a worker
that cannot start reported with its log, and workers that end when the arena process is killed.
Real models (cascade-mini, diva-mini)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from arena_helpers import spoken_question
from demo.arena import Arena
from demo.config import config_from_dict
from demo.workers import ModelWorker, WorkerError, threads_per_worker
from diva.assistants.remote import RemoteAssistant
from diva.audio import load_audio
from diva.generation import GenerationOptions

SAMPLED = {"temperature": 0.9, "top_p": 0.95, "seed": 3}


@pytest.fixture(scope="module")
def arena(prepared_assets, tmp_path_factory):
    root = tmp_path_factory.mktemp("arena-workers")
    config = config_from_dict({"db": f"sqlite:///{root}/votes.db", "audio_dir": str(root / "audio"),
                               "max_new_tokens": 8,
                               "models": [{"name": "cascade-mini", "generation": SAMPLED}, {"name": "diva-mini"}]})
    arena = Arena(config, seed=0).prepare()
    yield arena
    arena.close()


@pytest.fixture(scope="module")
def question(tmp_path_factory):
    return load_audio(spoken_question(tmp_path_factory.mktemp("audio") / "question.wav"))


def final(race):
    sides = None
    for sides in race:
        pass
    return sides


def test_each_local_model_answers_from_its_own_server_process(arena, question):
    assert set(arena.workers) == {"cascade-mini", "diva-mini"}
    pids = {worker.process.pid for worker in arena.workers.values()}
    assert len(pids) == 2 and os.getpid() not in pids
    assert all(isinstance(arena.assistants[name], RemoteAssistant) for name in arena.workers)
    sides = final(arena.race(question, None, ("cascade-mini", "diva-mini")))
    assert [s.model for s in sides] == ["cascade-mini", "diva-mini"]
    assert all(s.error is None and s.text and 0 < s.ttft_s <= s.total_s for s in sides)
    assert "serving diva-mini" in arena.workers["diva-mini"].log_path.read_text()  # each worker logs


def test_a_worker_answers_only_its_key_which_is_not_on_its_command_line(arena):
    worker = arena.workers["cascade-mini"]
    assert worker.key not in " ".join(worker.process.args)  # `ps` would show it to every user
    assert httpx.get(f"{worker.base_url}/models", timeout=10).status_code == 401
    assert httpx.get(f"{worker.base_url}/models", headers={"Authorization": f"Bearer {worker.key}"},
                     timeout=10).status_code == 200


def test_what_a_side_heard_comes_back_from_its_worker_and_is_stored(arena, question):
    sides = final(arena.race(question, None, ("cascade-mini", "diva-mini")))
    assert "France" in sides[0].heard  # the cascade's transcript, through the server's extension field
    assert sides[1].heard is None      # diva-mini's linear projection reads no text
    assert "France" in arena.assistants["cascade-mini"].generate_replies([question])[0].transcript  # not streamed
    row = arena.store.battle(arena.record("session", question, None, sides))
    assert (row["heard_a"], row["heard_b"]) == (sides[0].heard, None)


def test_each_model_decodes_with_its_own_options_and_the_battle_stores_them(arena, question):
    first = final(arena.race(question, None, ("cascade-mini", "diva-mini")))
    again = final(arena.race(question, None, ("diva-mini", "cascade-mini")))
    assert first[0].text == again[1].text  # cascade-mini samples with a fixed seed: the same reply
    sampled = arena.options("cascade-mini")
    assert (sampled.temperature, sampled.seed, sampled.max_new_tokens) == (0.9, 3, 8)
    direct = arena.assistants["cascade-mini"].stream(question, options=sampled).text()
    assert direct == first[0].text  # the worker honours the options it is sent
    battle_id = arena.record("session", question, None, first)
    row = arena.store.battle(battle_id)
    assert GenerationOptions(**json.loads(row["options_a"])) == sampled
    assert GenerationOptions(**json.loads(row["options_b"])) == GenerationOptions(max_new_tokens=8)  # greedy


def test_a_worker_that_cannot_start_says_why(tmp_path):
    # a random key may begin with "-"; it must still reach the server as the key, not as an option
    worker = ModelWorker("no-such-assistant", tmp_path, key="-dash-first-key")
    with pytest.raises(WorkerError, match="exited with status 2.*no-such-assistant"):
        worker.wait_ready(timeout_s=120)
    assert worker.process.poll() is not None


def test_threads_are_split_between_the_two_sides():
    assert [threads_per_worker(c) for c in (1, 2, 3, 8)] == [1, 1, 1, 4]


SCRIPT = """
import sys, time
from demo.config import config_from_dict
from demo.arena import Arena
config = config_from_dict({"db": "sqlite:///%s/votes.db", "audio_dir": "%s/audio",
                           "models": [{"name": "cascade-mini"}, {"name": "text-mini"}]})
arena = Arena(config)
worker = arena._start_worker("cascade-mini")
print(worker.process.pid, flush=True)
worker.wait_ready()
print("ready", flush=True)
time.sleep(600)
"""


def test_workers_end_when_the_arena_process_is_killed(prepared_assets, tmp_path):
    arena = subprocess.Popen([sys.executable, "-c", SCRIPT % (tmp_path, tmp_path)], stdout=subprocess.PIPE,
                             text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    try:
        worker_pid = int(arena.stdout.readline())
        assert arena.stdout.readline().strip() == "ready"
        arena.send_signal(signal.SIGKILL)  # no clean-up code runs in the arena
        arena.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and alive(worker_pid):
            time.sleep(0.2)
        assert not alive(worker_pid)
    finally:
        arena.kill()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie has ended; its parent (init) reaps it
        return stat.read().split()[2] != "Z"
