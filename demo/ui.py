"""The arena's Gradio page: a Battle tab and a Leaderboard tab, wired to an `Arena`.

API names (for gradio_client): /battle (audio, prompt), /vote_model_a, /vote_model_b, /vote_tie,
/vote_both_bad (reason), /new_round, /leaderboard.
"""
from __future__ import annotations

import os

import gradio as gr

from demo import leaderboard as lb
from demo.arena import VOTE_LABELS, Arena, ArenaError, BattleState, Side
from demo.store import OUTCOMES

LEADERBOARD_ROUNDS = 200  # bootstrap resamples in the tab (the CLI defaults to 1000)
INTRO = """# Voice assistant arena
Ask a question **by voice** (record or upload; optionally type an instruction). Two anonymous
assistants answer at the same time. Vote for the better answer; their names are revealed after
your vote. {audio_note}"""


def client_address(request: gr.Request) -> str | None:
    """The client's address (a trusted proxy's X-Forwarded-For, as uvicorn reads it)."""
    return request.client.host if request.client else None


def cache_schedule(keep_s: int) -> tuple[int, int]:
    """Gradio's delete_cache: (how often to look, in s; the age in s past which uploads are deleted)."""
    return max(1, keep_s // 6), keep_s


def build_ui(arena: Arena) -> gr.Blocks:
    limits = arena.config.limits
    audio_note = ("Your recording is stored with your vote for research." if arena.store.store_audio
                  else "Only a fingerprint (sha256) of your recording is kept.")
    with gr.Blocks(title="Voice assistant arena", analytics_enabled=False,
                   delete_cache=cache_schedule(limits.keep_uploads_s)) as app:
        state = gr.State(BattleState())
        gr.Markdown(INTRO.format(audio_note=audio_note))
        with gr.Tab("Battle"):
            with gr.Row():
                audio = gr.Audio(sources=["upload", "microphone"], type="filepath", elem_id="question-audio",
                                 label=f"Your question (up to {limits.max_audio_s:g} s, "
                                       f"{limits.max_upload_mb:g} MB)")
                with gr.Column():
                    prompt = gr.Textbox(label="Instruction (optional)", lines=2, elem_id="prompt",
                                        max_length=limits.max_prompt_chars,
                                        placeholder="e.g. Answer in one sentence.")
                    go = gr.Button("Ask both models", variant="primary", elem_id="battle")
            status = gr.Markdown("", elem_id="status")
            with gr.Row():
                texts, stats = [], []
                for side in "AB":
                    with gr.Column():
                        # read-only text boxes: model output is never rendered as HTML or Markdown
                        texts.append(gr.Textbox(label=f"Model {side}", lines=8, max_lines=20, interactive=False,
                                                elem_id=f"answer-{side.lower()}", buttons=["copy"]))
                        stats.append(gr.Markdown("", elem_id=f"stats-{side.lower()}"))
            with gr.Row():
                votes = [gr.Button(VOTE_LABELS[o], interactive=False, elem_id=f"vote-{o}") for o in OUTCOMES]
            reason = gr.Textbox(label="Why? (optional, sent with your vote)", interactive=False, elem_id="reason",
                                max_length=1000)
            reveal = gr.Markdown("", elem_id="reveal")
            again = gr.Button("New round", elem_id="new-round")

        with gr.Tab("Leaderboard") as board_tab:
            refresh = gr.Button("Refresh")
            board_note = gr.Markdown("")
            board = gr.Dataframe(label="Ratings (Bradley–Terry, 95% bootstrap CI); win rate counts ties as ½",
                                 interactive=False)
            matrix = gr.Dataframe(label="Win rate of row model against column model", interactive=False)
            chart = gr.Plot()

        # ---- handlers -------------------------------------------------------------------------
        inputs_locked = [gr.update(interactive=False)] * 3  # audio, prompt, go
        votes_off = [gr.update(interactive=False)] * len(OUTCOMES)

        def side_views(sides: list[Side]) -> list:
            # a failure's details go to the server log only (they may name private endpoints)
            return [s.text + ("\n[no answer: this model failed]" if s.error else "") for s in sides] + \
                [s.stats() for s in sides]

        def battle(audio_path, prompt_text, st: BattleState, request: gr.Request):
            session = request.session_hash or "anonymous"
            try:
                samples, clean_prompt = arena.check_input(audio_path, prompt_text)
                arena.allow_battle(session, client_address(request))
            except ArenaError as error:
                raise gr.Error(str(error), title="Cannot start this battle", print_exception=False) from None
            pair = arena.draw_pair()
            st = BattleState(session=session)
            sides = [Side(m) for m in pair]
            yield [*inputs_locked, *side_views(sides), "Both models are answering…", *votes_off,
                   gr.update(value="", interactive=False), "", st]
            for sides in arena.race(samples, clean_prompt, pair):
                yield [*[gr.skip()] * 3, *side_views(sides), gr.skip(), *[gr.skip()] * len(OUTCOMES),
                       gr.skip(), gr.skip(), st]
            st.sides = sides
            if any(s.error for s in sides):
                yield [*[gr.skip()] * 3, *side_views(sides),
                       "A model failed, so this battle is not counted. Press **New round**.",
                       *votes_off, gr.skip(), gr.skip(), st]
                return
            st.battle_id = arena.record(session, samples, clean_prompt, sides)
            yield [*[gr.skip()] * 3, *side_views(sides), "Both answered. Which answer is better?",
                   *[gr.update(interactive=True)] * len(OUTCOMES), gr.update(interactive=True), gr.skip(), st]

        battle_outputs = [audio, prompt, go, *texts, *stats, status, *votes, reason, reveal, state]
        go.click(battle, [audio, prompt, state], battle_outputs, api_name="battle", concurrency_limit=4,
                 concurrency_id="battle", show_progress="minimal")

        def make_voter(outcome: str):
            def vote(reason_text, st: BattleState, request: gr.Request):
                voter = client_address(request) or request.session_hash
                try:
                    arena.vote(st, outcome, reason_text, voter=voter, session=request.session_hash or "anonymous")
                except ArenaError as error:
                    raise gr.Error(str(error), title="Vote not recorded", print_exception=False) from None
                a, b = (s.model for s in st.sides)
                names = f"Model A was **{a}** · Model B was **{b}**" + "".join(
                    f"\n\n{label} heard: “{side.heard}”" for label, side in zip(("Model A", "Model B"), st.sides)
                    if side.heard)
                return [*votes_off, gr.update(interactive=False),
                        f"Thanks! You voted “{VOTE_LABELS[outcome]}”. {names}",
                        gr.update(label=f"Model A: {a}"), gr.update(label=f"Model B: {b}"),
                        "Vote recorded. Press **New round** to ask again.", st]
            return vote

        for outcome, button in zip(OUTCOMES, votes):
            button.click(make_voter(outcome), [reason, state], [*votes, reason, reveal, *texts, status, state],
                         api_name=f"vote_{outcome}", concurrency_limit=None)

        def new_round():
            return [gr.update(value=None, interactive=True), gr.update(value="", interactive=True),
                    gr.update(interactive=True), gr.update(value="", label="Model A"),
                    gr.update(value="", label="Model B"), "", "", "", *votes_off,
                    gr.update(value="", interactive=False), "", BattleState()]

        again.click(new_round, None, battle_outputs, api_name="new_round", concurrency_limit=None)

        def show_leaderboard():
            exported = arena.store.votes_frame()
            if exported.empty:
                return "No votes yet.", None, None, None
            table = lb.leaderboard(exported, LEADERBOARD_ROUNDS)
            rates = lb.win_rate_matrix(exported)
            share, decisive = lb.left_side_share(exported)
            note = (f"{len(exported)} votes; {LEADERBOARD_ROUNDS} bootstrap resamples. "
                    f"Position check: the left answer won {share:.0%} of {decisive} decisive votes.")
            shown = table.round({"rating": 0, "rating_lo": 0, "rating_hi": 0, "win_rate": 3, "win_rate_lo": 3,
                                 "win_rate_hi": 3})
            return (note, shown.reset_index(), rates.round(3).rename_axis("model").reset_index(),
                    lb.figure(table, rates))

        board_outputs = [board_note, board, matrix, chart]
        refresh.click(show_leaderboard, None, board_outputs, api_name="leaderboard", concurrency_limit=1,
                      concurrency_id="leaderboard")
        board_tab.select(show_leaderboard, None, board_outputs, api_visibility="private", concurrency_limit=1,
                         concurrency_id="leaderboard")
    return app


def launch(arena: Arena, host: str = "127.0.0.1", port: int | None = None, auth: tuple[str, str] | None = None,
           **kwargs) -> gr.Blocks:
    """Serve the page: loopback only unless `host` says otherwise; no analytics; optional login;
    uploads above the size limit refused by the server, the rest deleted after `keep_uploads_s`;
    errors shown as messages, never traces."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    app = build_ui(arena).queue(default_concurrency_limit=4)
    app.launch(server_name=host, server_port=port, auth=auth, show_error=False,
               max_file_size=int(arena.config.limits.max_upload_mb * 2**20), footer_links=["api"], **kwargs)
    return app
