"""Rectification dates and states: the deadline and when it is overdue, over any
instant and time zone (hypothesis), and the status a history of responses and
assessments leaves."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from sync.rectification import ZONE, days_overdue, deadline, is_overdue, status_of

# zones with odd offsets and daylight saving (none of them changes at midnight)
ZONES = [
    ZoneInfo(z)
    for z in (
        "Asia/Shanghai",
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "Australia/Lord_Howe",
        "Asia/Kathmandu",
        "Pacific/Kiritimati",
        "Pacific/Pago_Pago",
    )
]
zones = st.sampled_from(ZONES)
instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
)
dates = st.dates(min_value=date(2020, 1, 1), max_value=date(2034, 12, 31))


@given(dates, instants, zones)
def test_overdue_exactly_from_the_midnight_that_ends_the_last_day(due, now, tz):
    ends = datetime.combine(due + timedelta(days=1), time(0), tzinfo=tz)
    assert is_overdue(due, now, tz) == (now >= ends)
    assert (days_overdue(due, now, tz) > 0) == is_overdue(due, now, tz)


@given(dates, zones)
def test_the_whole_last_day_counts(due, tz):
    last_moment = datetime.combine(due, time(23, 59, 59, 999_999), tzinfo=tz)
    assert not is_overdue(due, last_moment, tz)
    assert is_overdue(due, last_moment + timedelta(microseconds=1), tz)


@given(dates, instants, st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400)), zones)
def test_once_overdue_always_overdue_and_the_count_grows(due, now, later, tz):
    if is_overdue(due, now, tz):
        assert is_overdue(due, now + later, tz)
    assert days_overdue(due, now + later, tz) >= days_overdue(due, now, tz)


@given(dates, instants, zones, zones)
def test_the_readers_zone_does_not_matter_only_the_authoritys(due, now, tz, reader):
    assert is_overdue(due, now.astimezone(reader), tz) == is_overdue(due, now, tz)


@given(instants, st.integers(min_value=1, max_value=3650), zones)
def test_deadline_counts_calendar_days_from_the_local_day_of_acceptance(accepted, days, tz):
    due = deadline(accepted, days, tz)
    assert (due - accepted.astimezone(tz).date()).days == days
    assert not is_overdue(due, accepted, tz)  # never overdue when accepted
    assert is_overdue(due, accepted + timedelta(days=days + 1, hours=2), tz)


def test_a_late_evening_acceptance_in_china_is_the_next_day_in_utc():
    accepted = datetime(2026, 3, 1, 17, 30, tzinfo=UTC)  # 01:30 on 2 March in Beijing
    assert deadline(accepted, 30) == date(2026, 4, 1)
    assert deadline(accepted, 30, ZoneInfo("UTC")) == date(2026, 3, 31)
    assert ZONE.key == "Asia/Shanghai"
    end = datetime(2026, 4, 1, 16, 0, tzinfo=UTC)  # midnight 2 April in Beijing
    assert not is_overdue(date(2026, 4, 1), end - timedelta(seconds=1))
    assert is_overdue(date(2026, 4, 1), end)


events = st.lists(st.sampled_from(["response", "accepted", "more_needed"]), max_size=12)


@given(events)
def test_status_follows_the_last_event(history):
    response = None
    assessments = []
    last = None  # the last event that counted, whatever the clock said
    for event in history:
        if event == "response":
            response = {"entered_at": "same instant", "after_assessments": len(assessments)}
            last = event
        elif response is not None:  # the service refuses an assessment with no response
            assessments.append({"outcome": event, "at": "same instant"})
            last = event
    status = status_of(response, assessments)
    if any(a["outcome"] == "accepted" for a in assessments[-1:]):
        assert status == "accepted"
    elif response is None:
        assert status == "awaiting_response"
    elif last == "more_needed":
        assert status == "more_needed"
    else:
        assert status == "responded"
