"""The README's arena screenshot: a real battle on the default models, voted, in headless Chromium.

    .venv/bin/python scripts/arena_screenshot.py [--out results/arena/screenshot.png]

Needs Debian's chromium and the `playwright` package (both installed by `make test`). The battle is
stored in a throwaway database, not in the arena's own.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from the repository

from demo.arena import Arena  # noqa: E402
from demo.config import ArenaConfig, ModelSpec  # noqa: E402
from demo.ui import launch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "arena" / "screenshot.png")
    parser.add_argument("--models", default="cascade-mini,diva-mini-whisper-beam")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from playwright.sync_api import sync_playwright
    tmp = Path(tempfile.mkdtemp(prefix="arena-shot-"))
    config = ArenaConfig(models=tuple(ModelSpec(n) for n in args.models.split(",")),
                         db=f"sqlite:///{tmp / 'votes.db'}", audio_dir=str(tmp / "audio"), max_new_tokens=48)
    arena = Arena(config, seed=1).prepare()
    app = launch(arena, port=7871, prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto("http://127.0.0.1:7871", wait_until="domcontentloaded")
            page.wait_for_selector("#battle")
            sample = ROOT / "diva" / "samples" / "capital_of_france.wav"
            page.locator("#question-audio input[type=file]").set_input_files(str(sample))
            page.locator("#prompt textarea").fill("Answer in one sentence.")
            page.locator("#battle").click()
            page.wait_for_selector("#status:has-text('Both answered')", timeout=600_000)
            page.locator("#reason textarea").fill("both answered the question")
            page.locator("#vote-tie").click()
            page.wait_for_selector("#reveal:has-text('Model A was')", timeout=60_000)
            page.screenshot(path=str(args.out), full_page=True)
            browser.close()
    finally:
        app.close()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
