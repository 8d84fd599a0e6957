"""The paper's released per-item output format: reading it (fixture files written here in that
format), importing it into our results schema, and drawing figures 2-4 from it."""
import json
from pathlib import Path

import pandas as pd
import pytest

from eval import released
from eval.paper_tasks import PAPER_TASKS
from figures import draw
from figures import released as released_figures

RELEASED = Path(__file__).parent / "fixtures" / "paper" / "released"


def test_parse_line_quotes_newlines_and_na():
    assert released.parse_line('-101[SEP_DIAL]"""Paris.[NEW_LINE]Sure."""[SEP_DIAL]0.5\n') == \
        ("-101", "Paris.\nSure.", 0.5)
    assert released.parse_line('303[SEP_DIAL]"""It is "Jupiter\""""[SEP_DIAL]0.7') == ("303", 'It is "Jupiter"', 0.7)
    assert released.parse_line('7[SEP_DIAL]"""ERROR IN PROCESSING"""[SEP_DIAL]NA\n') == ("7", "ERROR IN PROCESSING", None)
    line = released.format_line("common_voice_en_1", 'two\nlines "quoted"', None)
    assert line == 'common_voice_en_1[SEP_DIAL]"""two[NEW_LINE]lines "quoted""""[SEP_DIAL]NA\n'
    assert released.parse_line(line) == ("common_voice_en_1", 'two\nlines "quoted"', None)


def test_labels_of_one_token_answers():
    assert released.label_of(PAPER_TASKS["iemocap"], "H") == "Happiness"
    assert released.label_of(PAPER_TASKS["mustard"], " Yes") == "Yes"
    assert released.label_of(PAPER_TASKS["meld"], "S") is None  # Sadness or Surprise
    assert released.label_of(PAPER_TASKS["meld"], "ERROR IN PROCESSING") is None


@pytest.fixture
def imported(tmp_path):
    notes = released.import_released(RELEASED, tmp_path)
    return tmp_path, notes


def test_import_writes_our_schema(imported):
    out, notes = imported
    qa = pd.read_csv(out / "qa.csv", dtype={"subset": str}).set_index(["assistant", "subset"])
    assert qa.loc[("e2e_A", "usa"), "value"] == pytest.approx(80.0)      # (0.9 + 0.7) / 2, x100
    assert qa.loc[("e2e_A", "gbr"), "value"] == pytest.approx(50.0)      # the NA item left out ...
    assert qa.loc[("e2e_A", "gbr"), "n"] == 1
    assert any("1 of 4 items not scored" in n for n in notes)            # ... and said so
    assert set(qa["metric"]) == {"panda"}
    cls = pd.read_csv(out / "classification.csv").set_index(["task"])
    assert cls.loc["iemocap", "value"] == pytest.approx(50.0) and cls.loc["iemocap", "metric"] == "accuracy"
    assert cls.loc["mustard", "value"] == pytest.approx(100 / 3, abs=1e-4)  # CSV keeps 4 decimals
    st = pd.read_csv(out / "translation.csv").set_index("subset")
    assert st.loc["en-de", "value"] == pytest.approx(60.0) and st.loc["en-zh", "value"] == pytest.approx(50.0)
    assert "en-ca" not in st.index                                       # not one of the paper's seven
    items = [json.loads(x) for x in (out / "items" / "qa" / "e2e_A__sdqa.jsonl").read_text().splitlines()]
    assert {it["item_id"] for it in items} == {"-101:usa", "303:usa", "-101:gbr", "303:gbr"}  # as eval.paper_data
    iemocap = [json.loads(x) for x in (out / "items" / "classification" / "e2e_A__iemocap.jsonl").read_text().splitlines()]
    assert [it["label"] for it in iemocap] == ["Anger", "Happiness", "Sadness", "Neutral"]


def bar_heights(fig):
    return {tuple(p.get_gid().split("|")[1:]): p.get_height()
            for ax in fig.axes for p in ax.patches if (p.get_gid() or "").startswith("bar|")}


def test_figures_drawn_from_released_outputs(tmp_path):
    figures, stems, _ = released_figures.render_released(RELEASED, tmp_path / "png", tmp_path / "data")
    assert stems == ["released_fig2_qa", "released_fig3_classification", "released_fig4_translation"]
    qa = bar_heights(figures[0])
    assert qa[("sdqa", "usa", "e2e_A")] == pytest.approx(80.0) and qa[("sdqa", "usa", "e2e_B")] == pytest.approx(20.0)
    assert bar_heights(figures[2])[("covost2", "en-de", "e2e_A")] == pytest.approx(60.0)
    note = figures[1]._supxlabel.get_text()
    assert "weighted F1" in note and "cannot be recomputed" in note
    assert draw.metric_label("sentence_bleu") == "Mean sentence BLEU"
    # paired significance: e2e_A and e2e_B answered the same two usa items
    from figures.data import load_eval, our_bars
    bars = our_bars(load_eval(tmp_path / "data" / "qa.csv"), tmp_path / "data" / "items", "qa")
    usa = bars[(bars["subset"] == "usa") & bars["p_value"].notna()]
    assert list(usa["model"]) == ["e2e_A"] and 0 <= usa["p_value"].iloc[0] <= 1


def test_python_m_figures_released(tmp_path, monkeypatch):
    from figures import render
    monkeypatch.setattr(render, "render_all", lambda *a, **k: ([], []))  # only the released figures
    assert released_figures.main(["--released", str(RELEASED), "--released-models", "e2e_B",
                                  "--released-data", str(tmp_path / "data"), "--out", str(tmp_path / "png")]) == 0
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == ["released_fig2_qa.png"]
