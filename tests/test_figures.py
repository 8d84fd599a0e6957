"""results.figures: values on the bars equal the CSVs, stars come from real tests, PNGs are stable."""
import json

import numpy as np
import pandas as pd
import pytest

from figures import data, draw, paper, render

SPEC = {s.name: s for s in draw.SPECS}


def bar_heights(fig) -> dict[tuple[str, str, str], float]:
    """{(task, subset, model): height} read back from the drawn bars."""
    out = {}
    for ax in fig.axes:
        for patch in ax.patches:
            gid = patch.get_gid() or ""
            if gid.startswith("bar|"):
                _, task, subset, model = gid.split("|")
                out[(task, subset, model)] = patch.get_height()
    return out


def starred_labels(fig) -> set[str]:
    return {t.get_gid() for ax in fig.axes for t in ax.texts if draw.STAR in t.get_text()}


# --- fixtures: a small eval suite with per-item results, and arena votes ----------------------

def write_items(items_dir, suite, assistant, task, subset, scores):
    path = items_dir / suite / f"{assistant}__{task}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        for i, s in enumerate(scores):
            f.write(json.dumps({"item_id": f"{subset}-{i}", "subset": subset, "modality": "audio",
                                "prediction": "x", "reference": "x", "score": s}) + "\n")


def eval_row(assistant, task, subset, value, metric="accuracy", date="2025-11-25", commit="abc1234def"):
    return {"assistant": assistant, "task": task, "subset": subset, "modality": "audio",
            "metric": metric, "n": 40, "value": value, "ci_low": value - 5, "ci_high": value + 5,
            "prompt_id": "default", "seed": 0, "date": date, "commit": commit}


@pytest.fixture
def eval_dir(tmp_path):
    """qa suite: diva-mini clearly beats cascade-mini on voice-a (40 items, 36 vs 12 right);
    on voice-b they are even, so only voice-a gets a star."""
    d = tmp_path / "eval"
    items = d / "items"
    strong, weak = [1] * 36 + [0] * 4, [1] * 12 + [0] * 28
    even = [1, 0] * 20
    write_items(items, "qa", "diva-mini", "spoken-qa", "voice-a", strong)
    write_items(items, "qa", "cascade-mini", "spoken-qa", "voice-a", weak)
    write_items(items, "qa", "diva-mini", "spoken-qa", "voice-b", even)
    write_items(items, "qa", "cascade-mini", "spoken-qa", "voice-b", even)
    rows = [eval_row("diva-mini", "spoken-qa", "voice-a", 90.0),
            eval_row("cascade-mini", "spoken-qa", "voice-a", 30.0),
            eval_row("diva-mini", "spoken-qa", "voice-b", 50.0),
            eval_row("cascade-mini", "spoken-qa", "voice-b", 50.0),
            # an older run of the same cell is replaced by the newer one above
            eval_row("diva-mini", "spoken-qa", "voice-b", 10.0, date="2025-11-01"),
            # a second metric for the same task: accuracy is preferred over exact match
            eval_row("diva-mini", "spoken-qa", "voice-a", 80.0, metric="exact_match"),
            eval_row("text-mini", "sdqa", "usa", 61.5, metric="panda")]
    d.mkdir(exist_ok=True)
    pd.DataFrame(rows).to_csv(d / "qa.csv", index=False)
    return d


@pytest.fixture
def votes_csv(tmp_path):
    outcomes = ["model_a"] * 30 + ["model_b"] * 10 + ["tie"] * 5 + ["both_bad"] * 3
    rows = [{"battle_id": i, "time": f"2025-11-2{i % 3}T10:00:00", "model_a": "diva-mini",
             "model_b": "cascade-mini", "outcome": o} for i, o in enumerate(outcomes)]
    rows.append({"battle_id": 99, "time": "2025-11-22T10:00:00", "model_a": "text-mini",
                 "model_b": "diva-mini", "outcome": "model_a"})
    path = tmp_path / "votes.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


# --- the paper table ---------------------------------------------------------------------------

def test_paper_cells_parse_oddities():
    assert paper.parse_cell("54.8") == (54.8, None, "")
    assert paper.parse_cell("0.0(no bar)") == (0.0, None, "no bar")
    assert paper.parse_cell("28 (148 votes)") == (28.0, 148, "")
    assert paper.parse_star("diva p<0.001") == ("diva_llama3_8b", "p<0.001")
    assert paper.parse_star("none") == (None, "")
    with pytest.raises(ValueError):
        paper.parse_cell("n/a")


def test_committed_tidy_csv_matches_the_raw_table():
    committed = paper.load(paper.TIDY_CSV)
    rebuilt = paper.tidy(paper.read_raw(paper.RAW_CSV))
    pd.testing.assert_frame_equal(committed, rebuilt, check_dtype=False)
    user = committed[committed["figure"] == "fig6_user"].set_index("model")
    assert user.loc["diva_llama3_8b", "votes"] == 374 and user.loc["qwen2_audio_instruct_7b", "votes"] == 148
    ta = committed[(committed["subset"] == "en-ta") & (committed["model"] == "salmonn_13b")].iloc[0]
    assert ta["value"] == 0.0 and ta["note"] == "no bar"


@pytest.mark.parametrize("name", ["fig2_qa", "fig3_classification", "fig4_translation"])
def test_paper_bars_equal_the_csv(name):
    table = paper.load()
    spec = SPEC[name]
    fig = render.paper_figure(table, spec)
    heights = bar_heights(fig)
    rows = table[table["figure"].isin(spec.paper_keys)]
    assert heights == {(r.task, r.subset, r.model): r.value for r in rows.itertuples()}
    # the stars are exactly the paper's starred_best
    starred = rows[rows["starred"]]
    assert len(starred_labels(fig)) == len(starred)
    assert "Paper (Held et al.)" in fig.legends[0].get_title().get_text()


def test_paper_user_study_uses_vote_counts():
    fig = render.paper_figure(paper.load(), SPEC["fig6_user_study"])
    widths = {p.get_gid().split("|")[-1]: p.get_width() for p in fig.axes[0].patches if p.get_gid()}
    assert widths["diva_llama3_8b"] == pytest.approx(100 * 374 / 522)
    assert widths["qwen2_audio_instruct_7b"] == pytest.approx(100 * 148 / 522)


# --- our results ---------------------------------------------------------------------------------

def test_our_bars_equal_the_csv_and_stars_are_tested(eval_dir):
    results = data.load_eval(eval_dir / "qa.csv")
    fig = render.our_eval_figure(results, SPEC["fig2_qa"], eval_dir / "items")
    heights = bar_heights(fig)
    assert heights[("spoken-qa", "voice-a", "diva-mini")] == 90.0      # accuracy, not exact_match
    assert heights[("spoken-qa", "voice-a", "cascade-mini")] == 30.0
    assert heights[("spoken-qa", "voice-b", "diva-mini")] == 50.0      # newest run wins
    assert heights[("sdqa", "usa", "text-mini")] == 61.5
    ticks = {t.get_text() for ax in fig.axes for t in ax.get_xticklabels()}
    assert "United\nStates" in ticks                                 # SD-QA dialect code by name
    assert len(heights) == 5
    assert starred_labels(fig) == {"label|spoken-qa|voice-a|diva-mini"}
    title = fig.legends[0].get_title().get_text()
    assert "This project" in title and "abc1234" in title and "2025-11-25" in title


def test_no_items_means_no_star(eval_dir, tmp_path):
    results = data.load_eval(eval_dir / "qa.csv")
    bars = data.our_bars(results, tmp_path / "nowhere", "qa")
    assert not bars["star"].any() and bars["p_value"].isna().all()


def test_our_user_study_from_votes(votes_csv):
    votes = data.load_votes(votes_csv)
    pairs = data.pairwise_votes(votes).set_index("model_b")
    row = pairs.loc["cascade-mini"]
    assert (row["model_a"], row["wins_a"], row["wins_b"], row["ties"]) == ("diva-mini", 30, 10, 8)
    assert row["p_value"] == pytest.approx(data.binomial_p(30, 10)) and row["star"] == "diva-mini"
    assert pairs.loc["diva-mini", "star"] == ""  # 1 vote to 0 is not significant
    fig = render.our_votes_figure(votes, SPEC["fig6_user_study"])
    widths = {p.get_gid(): p.get_width() for p in fig.axes[0].patches if p.get_gid()}
    assert widths["bar|diva-mini vs cascade-mini|a|diva-mini"] == pytest.approx(75.0)
    assert widths["bar|diva-mini vs cascade-mini|b|cascade-mini"] == pytest.approx(25.0)


def test_missing_results_name_the_command(tmp_path, capsys):
    with pytest.raises(data.MissingResults, match=r"make eval .*eval\.run.*--suite qa"):
        data.load_eval(tmp_path / "qa.csv")
    with pytest.raises(data.MissingResults, match=r"demo\.leaderboard --out results/arena"):
        data.load_votes(tmp_path / "votes.csv")
    out = tmp_path / "png"
    assert render.main(["--eval-dir", str(tmp_path), "--votes", str(tmp_path / "votes.csv"),
                         "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "make eval" in printed and "demo.leaderboard" in printed and "Traceback" not in printed
    assert sorted(p.name for p in out.iterdir()) == [f"paper_{s.name}.png" for s in draw.SPECS]


def test_pngs_are_byte_stable(eval_dir, votes_csv, tmp_path):
    runs = []
    for name in ("a", "b"):
        written, skipped = render.render_all(paper.TIDY_CSV, eval_dir, votes_csv, tmp_path / name)
        runs.append({p.name: p.read_bytes() for p in written})
    assert "ours_fig2_qa.png" in runs[0] and "ours_fig6_user_study.png" in runs[0]
    assert runs[0] == runs[1]
    assert all(b"Software" not in png for png in runs[0].values())


# --- statistics on hand-checkable cases ----------------------------------------------------------

def test_binomial_test_of_the_paper_user_study():
    assert data.binomial_p(374, 148) < 0.001
    assert data.binomial_p(5, 5) == 1.0
    assert data.binomial_p(10, 0) == pytest.approx(2 * 0.5 ** 10)  # two-sided
    assert data.binomial_p(0, 0) == 1.0


def test_paired_bootstrap_hand_cases():
    ones, zeros = np.ones(50), np.zeros(50)
    assert data.paired_bootstrap(ones, zeros) == 0.0          # a always better
    assert data.paired_bootstrap(zeros, ones) == 1.0          # a never better
    assert data.paired_bootstrap(ones, ones) == 1.0           # equal is not better
    # d = [1, 0]: a resample is not better only when it draws item 2 twice, p = 1/4
    assert data.paired_bootstrap([1, 0], [0, 0], n_resamples=20_000) == pytest.approx(0.25, abs=0.01)
    # same seed, same answer
    a, b = np.r_[np.ones(12), np.zeros(8)], np.r_[np.ones(9), np.zeros(11)]
    assert data.paired_bootstrap(a, b) == data.paired_bootstrap(a, b)


def test_classification_panels_and_task_level_items(tmp_path):
    """iemocap/meld share the paper's 'Emotion recognition' panel; a task-level CSV row ('all')
    is tested against all of that task's items, whatever their subset."""
    d = tmp_path / "eval"
    for assistant, scores in (("diva-mini", [1] * 30), ("cascade-mini", [0] * 30)):
        write_items(d / "items", "classification", assistant, "iemocap", "angry", scores)
    rows = [eval_row("diva-mini", "iemocap", "all", 100.0, metric="weighted_f1"),
            eval_row("cascade-mini", "iemocap", "all", 0.0, metric="weighted_f1"),
            eval_row("diva-mini", "mustard", "all", 55.0),
            {**eval_row("cascade-mini", "mustard", "all", 0.0), "value": "n/a"}]  # unreadable: dropped
    pd.DataFrame(rows).to_csv(tmp_path / "classification.csv", index=False)
    results = data.load_eval(tmp_path / "classification.csv")
    fig = render.our_eval_figure(results, SPEC["fig3_classification"], d / "items")
    assert [ax.get_title() for ax in fig.axes] == ["Emotion recognition", "Sarcasm & humour"]
    assert bar_heights(fig) == {("iemocap", "all", "diva-mini"): 100.0,
                                ("iemocap", "all", "cascade-mini"): 0.0,
                                ("mustard", "all", "diva-mini"): 55.0}
    assert starred_labels(fig) == {"label|iemocap|all|diva-mini"}
    assert [ax.get_ylabel() for ax in fig.axes] == ["Weighted F1 (%)", "Accuracy (%)"]
