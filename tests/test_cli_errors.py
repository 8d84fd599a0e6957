"""Every command answers bad input the same way: one `error: ...` line naming the bad value and what
would be accepted (the closest known names first), exit status 2, and nothing written."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from diva.errors import UnknownName, unknown

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "diva" / "samples" / "capital_of_france.wav"


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_the_shared_message_suggests_the_closest_names():
    assert unknown("assistant", "cascade-mnii", ["text-mini", "cascade-mini"]) == \
        "unknown assistant 'cascade-mnii'; did you mean cascade-mini? known: text-mini, cascade-mini"
    assert str(UnknownName("task", "zzz", ["qa"])) == "unknown task 'zzz'; known: qa"
    with pytest.raises(KeyError):  # still a KeyError for code that looks names up
        raise UnknownName("task", "zzz", ["qa"])


def test_diva_commands(capsys, tmp_path):
    from diva import serve
    from diva.__main__ import main
    assert main(["ask", str(tmp_path)]) == 2
    assert "a folder, not an audio file" in one_error_line(capsys)
    assert main(["ask", str(SAMPLE), "--assistant", "cascade-mnii"]) == 2
    assert "unknown assistant 'cascade-mnii'; did you mean cascade-mini" in one_error_line(capsys)
    assert serve.main(["--assistant", "nosuch"]) == 2
    assert "unknown assistant 'nosuch'" in one_error_line(capsys)
    assert main(["lsit"]) == 2
    assert "unknown command 'lsit'; did you mean list?" in one_error_line(capsys)
    with pytest.raises(SystemExit) as done:
        main(["list", "--verbose"])
    assert done.value.code == 2 and "unrecognized arguments: --verbose" in one_error_line(capsys)


def test_ask_refuses_an_endless_device_at_once():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "diva", "ask", "/dev/zero"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "not a regular file" in done.stderr and "Traceback" not in done.stderr


def test_eval_run_checks_every_name_before_writing(capsys, tmp_path):
    from eval import run
    out = tmp_path / "out"
    assert run.main(["--assistant", "text-mini", "--task", "spoken-qa,nosuch", "--out", str(out)]) == 2
    assert "unknown task 'nosuch'; known: spoken-qa" in one_error_line(capsys)
    assert run.main(["--assistant", "text-mini,cascade-mnii", "--task", "spoken-sentiment", "--out", str(out)]) == 2
    assert "did you mean cascade-mini" in one_error_line(capsys)
    assert run.main(["--protocol", "paper", "--assistant", "text-mini", "--task", "sdqaa", "--out", str(out)]) == 2
    assert "did you mean sdqa?" in one_error_line(capsys)
    assert run.main(["--assistant", "text-mini", "--checkpoint", "x=/nowhere", "--out", str(out)]) == 2
    assert "expected NAME=FOLDER" in one_error_line(capsys)
    with pytest.raises(SystemExit) as done:
        run.main(["--assistant", "text-mini", "--suite", "qaa", "--out", str(out)])
    assert done.value.code == 2 and "invalid choice: 'qaa'" in one_error_line(capsys)
    assert not out.exists()


def test_eval_run_still_skips_a_known_assistant_that_cannot_load(tmp_path, monkeypatch, capsys):
    from diva.assistants.registry import ASSISTANTS, AssistantSpec
    from eval import run
    monkeypatch.setitem(ASSISTANTS, "diva-untrained-here", AssistantSpec("diva", checkpoint=str(tmp_path / "none")))
    monkeypatch.setenv("DIVA_EVAL_DATA", str(tmp_path / "data"))
    out = tmp_path / "out"
    assert run.main(["--assistant", "diva-untrained-here", "--task", "spoken-sentiment", "--limit", "1",
                     "--out", str(out), "--quiet"]) == 0
    assert "diva-untrained-here skipped: diva-untrained-here: no trained checkpoint" in (out / "README.md").read_text()


def test_train_commands(capsys, tmp_path):
    from train import bench, data, distill, export
    assert distill.main(["--config", str(tmp_path / "nosuch.yaml")]) == 2
    assert "no config file" in one_error_line(capsys)
    assert distill.main(["--config", "train/configs/diva-mini.yaml", "--stage", "distil"]) == 2
    assert "unknown stage 'distil'; did you mean distill? known: align, distill" in one_error_line(capsys)
    assert data.main(["info", "--config", "train/configs/diva-mini.yaml", "corpus.n_trian=3"]) == 2
    assert "did you mean n_train" in one_error_line(capsys)
    assert bench.main(["--config", "train/configs/diva-mini.yaml", "--stage", "nosuch"]) == 2
    assert "unknown stage 'nosuch'" in one_error_line(capsys)
    assert export.main([str(tmp_path / "no-run"), str(tmp_path / "exported")]) == 2
    assert "has no final connector" in one_error_line(capsys) and not (tmp_path / "exported").exists()


def test_arena_config_errors(capsys, tmp_path):
    from demo import app
    assert app.main(["--config", str(tmp_path / "nosuch.toml")]) == 2
    assert "no arena config file" in one_error_line(capsys)
    for text, message in [("modles = []\n", "unknown key 'modles'; did you mean models?"),
                          ("[limits]\nmax_audio = 5\n", "unknown key limits.'max_audio'; did you mean max_audio_s?"),
                          ("[[models]]\nname = 'a'\nwieght = 2\n", "did you mean weight?"),
                          ("[limits\n", "not a readable TOML file")]:
        (tmp_path / "arena.toml").write_text(text)
        assert app.main(["--config", str(tmp_path / "arena.toml")]) == 2
        assert message in one_error_line(capsys)
    assert app.main(["--models", "cascade-mini,diva-mnii"]) == 2
    assert "unknown assistant 'diva-mnii'; did you mean diva-mini" in one_error_line(capsys)
    assert app.main(["--auth", "alice"]) == 2
    assert "--auth takes user:password" in one_error_line(capsys)


def test_a_mistyped_database_is_an_error_not_a_new_store(capsys, tmp_path):
    from demo import app, leaderboard
    from demo.store import StoreError, VoteStore
    typo = tmp_path / "arnea.db"
    assert app.main(["--db", f"sqlite:///{typo}", "--models", "cascade-mini,diva-mini"]) == 2
    assert f"no vote database at {typo}" in one_error_line(capsys)
    assert app.main(["--db", "results/arena/arena.db"]) == 2
    assert "not a database URL" in one_error_line(capsys)
    assert leaderboard.main(["--db", f"sqlite:///{typo}", "--out", str(tmp_path / "out")]) == 2
    assert "no vote database" in one_error_line(capsys)
    assert not typo.exists() and not (tmp_path / "out").exists()
    with pytest.raises(StoreError):
        VoteStore(f"sqlite:///{typo}", create=False)
    VoteStore(f"sqlite:///{typo}").close()  # the arena's own database (--create-db) is made when asked
    assert typo.exists() and VoteStore(f"sqlite:///{typo}", create=False).count() == (0, 0)

    config = tmp_path / "arena.toml"  # the config's database, not made yet: no votes, nothing created
    config.write_text(f'db = "sqlite:///{tmp_path}/later.db"\n')
    assert leaderboard.main(["--config", str(config), "--out", str(tmp_path / "out")]) == 0
    assert "no votes yet" in capsys.readouterr().out and not (tmp_path / "later.db").exists()
