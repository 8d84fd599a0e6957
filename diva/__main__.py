"""`python -m diva COMMAND`: assets | ask | serve | list."""
from __future__ import annotations

import json
import sys
import warnings

from diva.assistants.base import DEFAULT_MAX_NEW_TOKENS
from diva.errors import UNAVAILABLE, ArgumentParser, UsageError, fail, unknown


def ask(argv: list[str]) -> int:
    parser = ArgumentParser(prog="python -m diva ask", description="Ask an assistant a spoken question.")
    parser.add_argument("file", help="audio file (wav, flac, mp3, ogg, ...)")
    parser.add_argument("--prompt", default=None, help="optional text instruction, placed before the audio")
    parser.add_argument("--assistant", default="cascade-mini", help="registry name (see `python -m diva list`)")
    parser.add_argument("--max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of streaming")
    args = parser.parse_args(argv)

    from diva.assistants.registry import find_assistant
    from diva.audio import AudioError, load_audio
    try:
        find_assistant(args.assistant)  # a mistyped name is an error before anything is read
    except UsageError as error:
        return fail(error)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            audio = load_audio(args.file)  # check the audio before importing or loading any model
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
    except AudioError as error:
        return fail(f"{args.file}: {error}")

    from diva.assistants import AssistantNotAvailable, load_assistant
    from diva.models import quiet_transformers
    quiet_transformers()
    try:
        assistant = load_assistant(args.assistant)
        stream = assistant.stream(audio, args.prompt, max_new_tokens=args.max_new_tokens)
        if args.json:
            stream.text()
            print(json.dumps({"assistant": assistant.name, **stream.reply.as_dict()}, ensure_ascii=False))
        else:
            print(f"[{assistant.name}] ", end="", flush=True)
            for delta in stream:
                print(delta, end="", flush=True)
            reply = stream.reply
            ttft = f"{reply.ttft_s:.2f}s" if reply.ttft_s is not None else "n/a"
            speed = f"{reply.tokens_per_s:.1f}" if reply.tokens_per_s else "n/a"
            heard = f", heard: {reply.transcript!r}" if reply.transcript else ""
            print(f"\n  (time to first token {ttft}, {speed} tokens/s{heard})", file=sys.stderr)
    except AssistantNotAvailable as error:
        return fail(error, UNAVAILABLE)
    return 0


def list_assistants(argv: list[str]) -> int:
    from diva.assistants.registry import ASSISTANTS
    ArgumentParser(prog="python -m diva list", description="List the assistants by name.").parse_args(argv)
    for name, spec in ASSISTANTS.items():
        print(f"{name:24s} {spec.description}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"assets": "prepare the embedded default models", "ask": "ask an assistant about an audio file",
                "serve": "serve an assistant as an OpenAI-compatible endpoint", "list": "list assistants"}
    if argv and argv[0] not in commands and argv[0] not in ("-h", "--help"):
        return fail(unknown("command", argv[0], commands) + " (see python -m diva --help)")
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m diva COMMAND [options]\n\ncommands:")
        for name, text in commands.items():
            print(f"  {name:8s} {text}")
        return 0
    command, rest = argv[0], argv[1:]
    if command == "assets":
        from diva import assets
        return assets.main(rest) or 0
    if command == "serve":
        from diva import serve
        from diva.models import quiet_transformers
        quiet_transformers()
        return serve.main(rest) or 0
    if command == "list":
        return list_assistants(rest)
    return ask(rest)


if __name__ == "__main__":
    sys.exit(main())
