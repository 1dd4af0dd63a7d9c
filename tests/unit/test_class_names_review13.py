"""Review 13: class names (an image tree's class folders) with control characters in the
printout, in predict's lines and in the confusion-matrix plot; Pillow's decompression-bomb
warning from the public decode_image."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from dlbox.cli.predict import format_result
from dlbox.training import report
from dlbox.training.evaluate import compute_metrics
from dlbox.training.predict import PredictionResult

ODD = ("new\nline", "tab\there")
ORDINARY = ("a b", "airplane", "café", "猫")


def test_accuracy_lines_quote_a_class_name_with_a_control_character() -> None:
    """Review: a class folder $'new\\nline' printed "Accuracy for class: new" and "line is
    100.0 %" on two lines, and a raw tab; `dlbox data check` shows it as $'new\\nline'."""
    m = compute_metrics(torch.tensor([0, 1]), torch.tensor([0, 1]), ODD)
    lines = report.accuracy_lines(m)
    assert lines[1:] == ["Accuracy for class: $'new\\nline' is 100.0 %",
                         "Accuracy for class: $'tab\\there' is 100.0 %"]
    assert not any(char in "\n\t" for line in lines for char in line)


def test_accuracy_lines_keep_ordinary_names_as_they_were() -> None:
    m = compute_metrics(torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 2, 3]), ORDINARY)
    assert report.accuracy_lines(m)[1:] == [
        "Accuracy for class: a b   is 100.0 %",
        "Accuracy for class: airplane is 100.0 %",
        "Accuracy for class: café  is 100.0 %",
        "Accuracy for class: 猫     is 100.0 %",
    ]


def test_a_prediction_with_a_control_character_in_its_classes_stays_one_line() -> None:
    """Review: the label and the top-k names held a raw newline: one image's result spanned
    three lines, breaking scripts that read one line per image."""
    result = PredictionResult(path="x\ny.png", label="new\nline", confidence=0.75,
                              top_k=(("new\nline", 0.75), ("tab\there", 0.25)))
    line = format_result(result)
    assert line == ("$'x\\ny.png': $'new\\nline'  ($'new\\nline' 75.0 %, "
                    "$'tab\\there' 25.0 %)")
    assert "\n" not in line and "\t" not in line
    # --json keeps the real names (JSON escapes them itself)
    document = json.loads(json.dumps(result.to_dict()))
    assert document["label"] == "new\nline"
    assert [entry["label"] for entry in document["top_k"]] == ["new\nline", "tab\there"]


def test_a_prediction_of_ordinary_classes_prints_as_before() -> None:
    result = PredictionResult(path="photos/cat.png", label="猫", confidence=0.5,
                              top_k=(("猫", 0.5), ("café", 0.3), ("a b", 0.2)))
    assert format_result(result) == "photos/cat.png: 猫  (猫 50.0 %, café 30.0 %, a b 20.0 %)"


def test_a_tab_in_a_class_name_draws_no_glyph_warning(tmp_path: Path) -> None:
    """Review: a tab counted as drawable (str.isspace), so matplotlib warned "Glyph 9 (^I)
    missing from font(s) DejaVu Sans" on stderr."""
    classes = ("tab\there", "plain name", "cat")
    labels = report.drawable_labels(classes)
    assert labels[1:] == ["plain name", "cat"]
    assert "\t" not in labels[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report.plot_confusion_matrix(tmp_path / "cm.png", torch.eye(3, dtype=torch.int64),
                                     classes)
    assert [str(w.message) for w in caught] == []
    assert Image.open(tmp_path / "cm.png").size[0] > 100



@pytest.mark.parametrize("char", ["\u202e", "\u200b", "\u2066", "\ufeff"])
def test_a_bidi_or_zero_width_character_in_a_name_is_shown_escaped(char: str) -> None:
    # Review: U+202E (right-to-left override) in a class folder's name reached the terminal
    # raw, in data check, the per-class report and predict: it reorders what follows it, a
    # zero-width space hides; both are shown as their UTF-8 bytes, as other unshowables are.
    from dlbox.text import shown_name

    shown = shown_name(f"abc{char}def")
    assert shown.startswith("$'abc\\x") and shown.endswith("def'") and char not in shown
    assert shown == "$'abc" + "".join(f"\\x{b:02x}" for b in char.encode()) + "def'"
    assert shown_name("café 猫") == "café 猫"


@pytest.mark.parametrize("name", ["می\u200cخواهم", "👨\u200d👩\u200d👧", "🏳️\u200d🌈",
                                  "क्\u200dष", "שלום\u200fעולם", "café", "猫"])
def test_joiners_and_marks_of_ordinary_text_are_shown_as_they_are(name: str) -> None:
    # Review of the change above: U+200C/D (Persian, Indic conjuncts, emoji sequences) and
    # U+200E/F (right-to-left text) were escaped too, and such class names shown as bytes.
    from dlbox.text import shown_name

    assert shown_name(name) == name



@pytest.mark.parametrize("name", ["cat\u200d", "\u200dcat", "ca\u200ct", "猫\u200d", "a\u200e猫"])
def test_a_joiner_at_a_names_edge_or_beside_ascii_is_escaped(name: str) -> None:
    # Re-review: "cat" + ZWJ printed as "cat" in "the test data adds cat" for a run with cat.
    from dlbox.text import shell_quote, shown_name

    shown = shown_name(name)
    assert shown.startswith("$'") and "\\xe2\\x80" in shown, shown
    assert shell_quote(name) == shown
