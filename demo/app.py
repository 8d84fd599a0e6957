"""The arena server.

    python -m demo.app [--config demo/arena.toml] [--db URL [--create-db]] [--host 127.0.0.1] [--port 7860]
                       [--auth user:pass] [--no-store-audio] [--models a,b]

The database the config names is created on first start; a SQLite file given with --db must
already exist unless --create-db is given (a mistyped path is an error, not a new empty store).
The battle limit counts per browser session and per client address: behind a reverse proxy, have it
set X-Forwarded-For (trusted from 127.0.0.1; FORWARDED_ALLOW_IPS names other proxies).
"""
from __future__ import annotations

import os
from dataclasses import replace

from demo.arena import Arena
from demo.config import DEFAULT_CONFIG, REPO_ROOT, ModelSpec, load_config
from demo.store import VoteStore
from demo.ui import launch
from diva.errors import UNAVAILABLE, ArgumentParser, UsageError, fail


def main(argv: list[str] | None = None) -> int:
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TOKENIZERS_PARALLELISM"):
        os.environ.setdefault(name, "false" if name == "TOKENIZERS_PARALLELISM" else "1")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    p = ArgumentParser(prog="python -m demo.app", description=__doc__.split("\n")[0])
    p.add_argument("--config", default=str(DEFAULT_CONFIG))
    p.add_argument("--db", help="SQLAlchemy URL, e.g. postgresql+psycopg://user:pw@host/db (default: config)")
    p.add_argument("--create-db", action="store_true", help="start a new SQLite file at --db if there is none")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--auth", help="require a login, user:password")
    p.add_argument("--no-store-audio", action="store_true", help="keep only each clip's sha256")
    p.add_argument("--models", help="comma-separated local registry names, replacing the config's models")
    args = p.parse_args(argv)
    auth = tuple(args.auth.split(":", 1)) if args.auth else None
    if auth and (len(auth) != 2 or not all(auth)):
        return fail("--auth takes user:password, both non-empty")
    try:
        config = load_config(args.config).resolved(REPO_ROOT)
        if args.db:
            config = replace(config, db=args.db)
        if args.no_store_audio:
            config = replace(config, store_audio=False)
        if args.models:
            config = replace(config, models=tuple(ModelSpec(n.strip()) for n in args.models.split(",")),
                             pair_weights={})
        check_local_names(config)
        store = VoteStore(config.db, config.audio_dir, config.store_audio, create=not args.db or args.create_db)
    except UsageError as error:
        return fail(error)
    try:
        arena = Arena(config, store=store).prepare()
    except RuntimeError as error:  # fewer than two models load here
        return fail(error, UNAVAILABLE)
    print(f"arena: {', '.join(arena.contestants)}; votes -> {config.db}", flush=True)
    try:
        launch(arena, args.host, args.port, auth)
    finally:
        arena.close()
    return 0


def check_local_names(config) -> None:
    """Every local model and fallback must be a registry name or checkpoint folder (a typo is an
    error; a known model that cannot load here is left out when the arena starts)."""
    from diva.assistants.registry import find_assistant
    for name in [m.name for m in config.models if m.kind == "local"] + list(config.fallbacks):
        find_assistant(name)


if __name__ == "__main__":
    raise SystemExit(main())
