"""The arena end to end on real assistants: `cascade-mini` from the registry against the same model
served by `diva.serve` and reached as a remote OpenAI-compatible backend. Driven by gradio_client
and by a headless Chromium (Playwright on Debian's chromium)."""
from __future__ import annotations

import os
import shutil
import threading
import time
from dataclasses import replace
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from arena_helpers import free_port, spoken_question, wait_for_http
from demo.arena import Arena, ArenaError, RateLimiter
from demo.ui import launch
from demo.config import ArenaConfig, Limits, ModelSpec
from demo.store import VoteStore

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCRIPT_PROMPT = "Show the HTML code for a script element."  # cascade-mini answers with a <script> block


@pytest.fixture(scope="module")
def remote_url(prepared_assets):
    """`cascade-mini` behind diva.serve's OpenAI-compatible endpoint, in a background thread."""
    import uvicorn

    from diva.assistants import load_assistant
    from diva.serve import build_app
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_app(load_assistant("cascade-mini")), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for_http(f"http://127.0.0.1:{port}/v1/models", 60)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def arena_app(remote_url, tmp_path_factory):
    root = tmp_path_factory.mktemp("arena")
    config = ArenaConfig(models=(ModelSpec("cascade-mini"),
                                 ModelSpec("cascade-remote", kind="remote", base_url=remote_url, model="cascade-mini")),
                         db=f"sqlite:///{root}/arena.db", audio_dir=str(root / "audio"), max_new_tokens=12,
                         limits=Limits(battles_per_minute=100), processes=False)
    arena = Arena(config, seed=0).prepare()
    app = launch(arena, port=free_port(), prevent_thread_lock=True, quiet=True)  # as `python -m demo.app`
    yield arena, app.local_url
    app.close()


@pytest.fixture(scope="module")
def question(tmp_path_factory) -> Path:
    return spoken_question(tmp_path_factory.mktemp("audio") / "question.wav")


def client(url: str):
    from gradio_client import Client
    return Client(url, verbose=False)


def test_gradio_client_battle_and_vote(arena_app, question):
    from gradio_client import handle_file
    arena, url = arena_app
    c = client(url)
    job = c.submit(handle_file(str(question)), "Answer in one sentence.", api_name="/battle")
    outputs = job.result(timeout=300)
    assert len(job.outputs()) >= 3, "the battle streams intermediate updates"
    answer_a, answer_b, stats_a, stats_b, status = outputs[2:7]
    assert answer_a.strip() and answer_b.strip()
    assert "first token" in stats_a and "total" in stats_b and "Both answered" in status
    c.predict("more to the point", api_name="/vote_model_b")
    battles = arena.store.voted_battles()
    row = battles[battles["session_id"] == c.session_hash].iloc[0]
    assert {row["model_a"], row["model_b"]} == {"cascade-mini", "cascade-remote"}
    assert (row["outcome"], row["reason"], row["prompt"]) == ("model_b", "more to the point", "Answer in one sentence.")
    assert row["response_a"] == answer_a and row["response_b"] == answer_b
    assert 0 < row["ttft_a_s"] <= row["total_a_s"] and 0 < row["ttft_b_s"] <= row["total_b_s"]
    assert Path(row["audio_path"]).exists() and row["audio_path"].endswith(row["audio_sha256"] + ".wav")
    with pytest.raises(Exception, match="already voted"):  # one vote per battle, also in the UI
        c.predict("", api_name="/vote_tie")


def test_twenty_concurrent_clients_lose_no_vote(arena_app, question):
    from gradio_client import handle_file
    arena, url = arena_app
    outcomes = ["model_a", "model_b", "tie", "both_bad"]
    before = arena.store.count()[1]

    def one_client(i: int) -> tuple[str, str]:
        c = client(url)
        c.predict(handle_file(str(question)), "", api_name="/battle")
        c.predict(f"client {i}", api_name=f"/vote_{outcomes[i % 4]}")
        return c.session_hash, outcomes[i % 4]

    config = arena.config
    arena.config = replace(config, max_new_tokens=4)  # short answers: this test is about the votes
    started = time.perf_counter()
    try:
        with ThreadPoolExecutor(20) as pool:
            expected = dict(pool.map(one_client, range(20)))
    finally:
        arena.config = config
    print(f"20 concurrent battles + votes in {time.perf_counter() - started:.1f} s")
    battles = arena.store.voted_battles().set_index("session_id")
    assert arena.store.count()[1] == before + 20
    for session, outcome in expected.items():
        assert battles.loc[session, "outcome"] == outcome


def test_bad_input_gets_a_message_not_a_stack_trace(arena_app, tmp_path, question):
    from gradio_client import handle_file
    arena, url = arena_app
    bogus = tmp_path / "bogus.wav"
    bogus.write_text("this is not audio")
    with pytest.raises(Exception) as caught:
        client(url).predict(handle_file(str(bogus)), "", api_name="/battle")
    assert "cannot be used" in str(caught.value) and "Traceback" not in str(caught.value)

    limiter = arena.limiter
    arena.limiter = RateLimiter(0)  # every battle over the limit; no model runs
    try:
        with pytest.raises(Exception, match="Too many battles"):
            client(url).predict(handle_file(str(question)), "", api_name="/battle")
    finally:
        arena.limiter = limiter


def test_upload_limits_and_rate_limiter(tmp_path, question):
    config = ArenaConfig(models=(), db=f"sqlite:///{tmp_path}/x.db",
                         limits=Limits(max_upload_mb=0.01, max_audio_s=1.0, max_prompt_chars=10))
    arena = Arena(config, store=VoteStore(config.db))
    with pytest.raises(ArenaError, match=r"MB; the limit is 0.01 MB"):
        arena.check_input(str(question), None)
    arena.config = ArenaConfig(models=(), db=config.db, limits=Limits(max_audio_s=1.0, max_prompt_chars=10))
    with pytest.raises(ArenaError, match=r"s long; the limit is 1 s"):
        arena.check_input(str(question), None)
    with pytest.raises(ArenaError, match="Record or upload"):
        arena.check_input(None, None)
    limiter = RateLimiter(2, window_s=0.2)
    assert limiter.allow("s") is None and limiter.allow("s") is None and limiter.allow("s") > 0
    assert limiter.allow("other") is None
    time.sleep(0.25)
    assert limiter.allow("s") is None


@pytest.fixture(scope="module")
def playwright():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Debian chromium at {CHROMIUM}")
    with sync_api.sync_playwright() as p:  # one per thread: both browser tests share it
        yield p


@pytest.fixture(scope="module")
def browser(playwright):
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
    yield b
    b.close()


def test_browser_battle_vote_and_safe_rendering(arena_app, browser, question, tmp_path):
    arena, url = arena_app
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector("#battle")
    count_scripts = "document.querySelectorAll('script').length"
    scripts_before = page.evaluate(count_scripts)
    page.locator("#question-audio input[type=file]").set_input_files(str(question))
    page.locator("#prompt textarea").fill(SCRIPT_PROMPT)
    page.locator("#battle").click()
    page.wait_for_selector("#status:has-text('Both answered')", timeout=300_000)
    answers = [page.locator(f"#answer-{s} textarea").input_value() for s in "ab"]
    assert all(a.strip() for a in answers)
    # the model wrote a <script> block: it is shown as text and never becomes part of the page
    assert any("<script>" in a for a in answers), answers
    assert page.evaluate(count_scripts) == scripts_before
    assert page.evaluate("[...document.scripts].some(s => s.textContent.includes('document.write'))") is False
    assert page.evaluate("[...document.querySelectorAll('h1')].some(h => h.textContent.includes('Capital'))") is False

    assert page.locator("#vote-tie").is_enabled()
    page.locator("#reason textarea").fill("both fine")
    page.locator("#vote-tie").click()
    page.wait_for_selector("#reveal:has-text('Model A was')", timeout=30_000)
    assert not page.locator("#vote-tie").is_enabled()
    reveal = page.locator("#reveal").inner_text()
    row = arena.store.voted_battles().query("prompt == @SCRIPT_PROMPT").iloc[-1]
    assert row["model_a"] in reveal and row["model_b"] in reveal
    assert (row["outcome"], row["reason"]) == ("tie", "both fine")
    assert row["response_a"] in answers[0] or answers[0] in row["response_a"]
    shot = tmp_path / "arena.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("ARENA_SCREENSHOT"):
        shutil.copy(shot, os.environ["ARENA_SCREENSHOT"])

    page.get_by_role("tab", name="Leaderboard").click()
    page.wait_for_selector("text=bootstrap resamples", timeout=120_000)
    assert "cascade-mini" in page.content()
    page.get_by_role("tab", name="Battle").click()

    # an invalid upload: a readable message, no stack trace
    page.locator("#new-round").click()
    page.wait_for_function("document.querySelector('#answer-a textarea').value === ''")
    bogus = tmp_path / "not-audio.wav"
    bogus.write_text("definitely not a wav file")
    page.locator("#question-audio input[type=file]").set_input_files(str(bogus))
    page.locator("#battle").click()
    page.wait_for_selector("text=cannot be used", timeout=60_000)
    assert "Traceback" not in page.content()
    page.close()


def test_login_loopback_and_no_analytics(tmp_path):
    """--auth puts the page behind a login; the default bind is loopback; analytics are off.
    (No model is needed for this: the leaderboard endpoint answers without one.)"""
    import httpx
    from gradio_client import Client
    config = ArenaConfig(models=(), db=f"sqlite:///{tmp_path}/auth.db")
    app = launch(Arena(config), port=free_port(), auth=("alice", "s3cret"), prevent_thread_lock=True, quiet=True)
    try:
        assert app.local_url.startswith("http://127.0.0.1:") and app.analytics_enabled is False
        assert httpx.get(app.local_url + "config").status_code == 401
        with pytest.raises(Exception):
            Client(app.local_url, verbose=False)
        logged_in = Client(app.local_url, auth=("alice", "s3cret"), verbose=False)
        assert logged_in.predict(api_name="/leaderboard")[0] == "No votes yet."
    finally:
        app.close()


def test_a_failing_backend_voids_the_battle(tmp_path, question):
    """Both models remote at a closed port: each side reports a failure, nothing is stored or voted."""
    from gradio_client import handle_file
    dead = f"http://127.0.0.1:{free_port()}/v1"
    config = ArenaConfig(models=(ModelSpec("gone-1", kind="remote", base_url=dead),
                                 ModelSpec("gone-2", kind="remote", base_url=dead)),
                         db=f"sqlite:///{tmp_path}/dead.db", audio_dir=str(tmp_path / "audio"))
    arena = Arena(config).prepare()
    app = launch(arena, port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        out = client(app.local_url).predict(handle_file(str(question)), "", api_name="/battle")
        assert "failed" in out[4] and "failed" in out[5] and "not counted" in out[6]
        assert "this model failed" in out[2] and "ConnectError" not in out[2]  # details stay in the log
        assert arena.store.count() == (0, 0)
    finally:
        app.close()


def test_browser_microphone_recording(arena_app, playwright, question):
    """Chromium's fake microphone plays the spoken question; the arena gets the recording and answers."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    arena, url = arena_app
    flags = CHROMIUM_FLAGS + ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                              f"--use-file-for-fake-audio-capture={question}"]
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=flags)
    try:
        page = b.new_context(permissions=["microphone"]).new_page()
        page.goto(url, wait_until="domcontentloaded")
        page.locator("#question-audio button[aria-label='Record audio']").click()
        page.locator("#question-audio button:visible", has_text="Record").first.click()
        page.wait_for_timeout(2500)
        page.locator("#question-audio button:visible", has_text="Stop").first.click()
        started = ("() => (document.querySelector('#status')?.innerText || '').includes('answer')"
                   " || document.body.innerText.includes('Cannot start this battle')")
        for attempt in range(3):  # on a loaded machine the recording may still be uploading: retry
            page.locator("#battle").click()
            try:
                page.wait_for_function(started, timeout=60_000)
            except PlaywrightTimeout:
                if attempt == 2:
                    pytest.fail("the battle never started; the page says: " + page.locator("body").inner_text()[:2000])
                continue
            if "answer" in page.locator("#status").inner_text():
                break
            page.wait_for_timeout(3000)
        page.wait_for_selector("#status:has-text('Both answered')", timeout=300_000)
        page.locator("#vote-both_bad").click()
        page.wait_for_selector("#reveal:has-text('Model A was')", timeout=30_000)
    finally:
        b.close()
    row = arena.store.voted_battles().iloc[-1]
    assert row["outcome"] == "both_bad" and 1.5 < row["audio_s"] < 5.0
    assert row["response_a"].strip() and row["response_b"].strip()
