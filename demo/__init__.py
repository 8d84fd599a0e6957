"""The A/B arena: a Gradio battle page (`demo.arena`), the vote store (`demo.store`),
the leaderboard (`demo.leaderboard`) and the arena config (`demo.config`, `demo/arena.toml`)."""
