"""The rule that suggests an inspection conclusion from the accepted findings."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sync.conclusion import CONCLUSION_LABELS, CONCLUSIONS, SEVERAL, suggest

classes = st.lists(st.sampled_from(["critical", "major", "other"]), max_size=30)


def worse(a: str, b: str) -> bool:
    return CONCLUSIONS.index(a) > CONCLUSIONS.index(b)


@given(classes)
def test_the_rule_follows_the_worst_classification(found):
    s = suggest(found)
    assert s.counts == {k: found.count(k) for k in ("critical", "major", "other")}
    if "critical" in found:
        assert (s.conclusion, s.rule, s.caution) == ("does_not_meet", "critical", None)
    elif "major" in found:
        assert (s.conclusion, s.rule) == ("basically_meets", "major")
        assert (s.caution == "several_majors") == (found.count("major") >= SEVERAL)
    elif found:
        assert (s.conclusion, s.rule) == ("meets", "other")
        assert (s.caution == "several_others") == (len(found) >= SEVERAL)
    else:
        assert (s.conclusion, s.rule, s.caution) == ("meets", "none", None)


@given(classes, st.randoms())
def test_order_does_not_matter(found, rnd):
    shuffled = list(found)
    rnd.shuffle(shuffled)
    assert suggest(shuffled) == suggest(found)


@given(classes, st.sampled_from(["critical", "major", "other"]))
def test_one_more_accepted_finding_never_makes_the_conclusion_better(found, extra):
    assert not worse(suggest(found).conclusion, suggest([*found, extra]).conclusion)


@given(classes, st.lists(st.sampled_from([None, "", "minor", "disputed"]), max_size=5))
def test_findings_without_a_known_classification_do_not_count(found, unknown):
    assert suggest([*found, *unknown]) == suggest(found)


def test_examples_and_labels():
    assert suggest([]).conclusion == "meets"
    assert suggest(["other"]).conclusion == "meets"
    assert suggest(["other", "major"]).conclusion == "basically_meets"
    assert suggest(["major", "major", "critical"]).conclusion == "does_not_meet"
    assert {k: v["zh"] for k, v in CONCLUSION_LABELS.items()} == {
        "meets": "符合要求",
        "basically_meets": "基本符合要求",
        "does_not_meet": "不符合要求",
    }
