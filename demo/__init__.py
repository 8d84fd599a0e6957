"""The A/B arena: its logic (`demo.arena`), page (`demo.ui`) and server (`python -m demo.app`), the
vote store (`demo.store`), ratings and vote logs (`demo.leaderboard`, `demo.ratings`, `demo.votelogs`,
`demo.hygiene`) and the arena config (`demo.config`, `demo/arena.toml`)."""
