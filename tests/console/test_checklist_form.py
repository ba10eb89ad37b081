"""The draft editor's form as data (server/console/_checklist_form.py): each problem
path the authoring checks report lands on the form field at fault, and the editing
steps move what they say."""

from __future__ import annotations

import pytest

from server.console._checklist_form import apply_step, content_from_form, field_of, step_focus

CONTENT = {
    "key": "demo",
    "stage_type": "cell_bank",
    "title": {"en": "Demo", "zh": "示例"},
    "sections": [
        {
            "key": "first",
            "title": {"en": "First"},
            "items": [
                {"key": "a", "prompt": {"en": "A?"}, "answer": "number", "references": []},
                {
                    "key": "b",
                    "prompt": {"en": "B?"},
                    "answer": "single_choice",
                    "options": [{"value": "x", "label": {}}, {"value": "y", "label": {}}],
                    "references": [{"document": "ICH Q10", "section": "1"}, {"document": "?"}],
                },
            ],
        },
        {"key": "second", "title": {"en": "Second"}, "items": [{"key": "b"}]},
    ],
}


@pytest.mark.parametrize(
    ("path", "message", "field"),
    [
        ("content.sections[first].items[a].min", "min 5.0 is greater than max 1.0", "s0_i0_min"),
        ("content.sections[first].items[b].prompt.zh", "missing zh text", "s0_i1_prompt_zh"),
        ("content.sections[first].items[a].prompt", "text needs at least one", "s0_i0_prompt_en"),
        ("content.sections[first].items[b].references[1].document", "unknown", "s0_i1_r1_document"),
        ("content.sections[first].items[a].references", "cites", "s0_i0_refs"),
        ("content.sections[first].items[b].options[y].label.en", "missing", "s0_i1_o1_label_en"),
        ("content.sections[first].items[b].options", "needs >= 2 options", "s0_i1_opts"),
        ("content.sections[first].items[b].options[1].value", "Expected", "s0_i1_o1_value"),
        ("content.sections[first].items[b].evidence.when_answer_in", "not", "s0_i1_evidence_when"),
        ("content.sections[first].items[b].show_if.item", "not earlier", "s0_i1_show_if_item"),
        ("content.sections[1].items[0].key", "Expected `str` matching", "s1_i0_key"),
        ("content.sections[second].items[b]", "duplicate item key 'b'", "s1_i0"),
        ("content.sections[first].items", "needs at least one item", "s0_items"),
        ("content.sections[first].repeat_label", "needs repeatable", "s0_repeat_label_en"),
        ("content.title.en", "missing en text", "title_en"),
        ("content.sections", "at least one section", "sections"),
        ("content.sections[gone].title", "?", "content"),
        (None, "?", "content"),
    ],
)
def test_a_problem_lands_on_its_field(path, message, field):
    assert field_of(path, CONTENT, message) == field


def test_steps_add_move_and_remove():
    form = {
        "sections": "1",
        "title_en": "Demo",
        "s0_key": "first",
        "s0_title_en": "First",
        "s0_items": "2",
        "s0_i0_key": "a",
        "s0_i0_prompt_en": "A?",
        "s0_i0_answer": "number",
        "s0_i0_min": "1.5",
        "s0_i0_max": "many",
        "s0_i0_refs": "2",
        "s0_i0_r0_document": "ICH Q10",
        "s0_i0_r0_section": "3",
        "s0_i1_key": "b",
        "s0_i1_answer": "yes_no_na",
        "s0_i1_required": "on",
        "s0_i1_evidence_require": "note",
        "s0_i1_evidence_when": "no, na",
    }
    content = content_from_form(form, "demo", "cell_bank")
    a, b = content["sections"][0]["items"]
    assert a["min"] == 1.5 and a["max"] == "many"  # left for the check to name the field
    assert a["references"] == [{"document": "ICH Q10", "section": "3"}]  # the empty row dropped
    assert a["required"] is False and b["required"] is True
    assert b["evidence"] == {"when_answer_in": ["no", "na"], "require": "note"}
    assert "guidance" not in a and "options" not in b and "description" not in content

    moved = apply_step(content, "down:s0_i0")
    assert moved is not None
    assert [i["key"] for i in moved["sections"][0]["items"]] == ["b", "a"]
    added = apply_step(content, "add_item:s0")
    assert added is not None and added["sections"][0]["items"][-1]["key"] == "first_new_1"
    removed = apply_step(content, "remove:s0_i1")
    assert removed is not None and [i["key"] for i in removed["sections"][0]["items"]] == ["a"]
    section = apply_step(content, "add_section:")
    assert section is not None and [s["key"] for s in section["sections"]] == ["first", "section_2"]
    assert apply_step(content, "remove:s5") is None and apply_step(content, "explode:s0") is None
    assert content["sections"][0]["items"][0]["key"] == "a"  # a step changes a copy


def test_a_step_shows_the_item_it_was_about_where_it_went():
    assert step_focus("up:s0_i1", CONTENT) == "s0_i0"
    assert step_focus("up:s0_i0", CONTENT) == "s0_i0"
    assert step_focus("down:s0_i0", CONTENT) == "s0_i1"
    assert step_focus("down:s0_i1", CONTENT) == "s0_i1"
    assert step_focus("add_item:s1", CONTENT) == "s1_i0"  # the last item, just added
    assert step_focus("add_ref:s0_i1", CONTENT) == "s0_i1"
    assert step_focus("remove:s0_i1", CONTENT) is None
    assert step_focus("add_section:", CONTENT) is None
