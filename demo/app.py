"""The arena server.

    python -m demo.app [--config demo/arena.toml] [--db URL] [--host 127.0.0.1] [--port 7860]
                       [--auth user:pass] [--no-store-audio] [--models a,b]
"""
from __future__ import annotations

import argparse
import os

from demo.arena import Arena
from demo.config import DEFAULT_CONFIG, REPO_ROOT, ModelSpec, load_config
from demo.ui import launch


def main(argv: list[str] | None = None) -> None:
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TOKENIZERS_PARALLELISM"):
        os.environ.setdefault(name, "false" if name == "TOKENIZERS_PARALLELISM" else "1")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    p = argparse.ArgumentParser(prog="python -m demo.app", description=__doc__.split("\n")[0])
    p.add_argument("--config", default=str(DEFAULT_CONFIG))
    p.add_argument("--db", help="SQLAlchemy URL, e.g. postgresql+psycopg://user:pw@host/db (default: config)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--auth", help="require a login, user:password")
    p.add_argument("--no-store-audio", action="store_true", help="keep only each clip's sha256")
    p.add_argument("--models", help="comma-separated local registry names, replacing the config's models")
    args = p.parse_args(argv)

    from dataclasses import replace
    config = load_config(args.config).resolved(REPO_ROOT)
    if args.db:
        config = replace(config, db=args.db)
    if args.no_store_audio:
        config = replace(config, store_audio=False)
    if args.models:
        config = replace(config, models=tuple(ModelSpec(n.strip()) for n in args.models.split(",")),
                         pair_weights={})
    auth = tuple(args.auth.split(":", 1)) if args.auth else None
    if auth and (len(auth) != 2 or not all(auth)):
        p.error("--auth takes user:password")
    arena = Arena(config).prepare()
    print(f"arena: {', '.join(arena.contestants)}; votes -> {config.db}", flush=True)
    launch(arena, args.host, args.port, auth)


if __name__ == "__main__":
    main()
