"""The contact policy (触达规则): each rule on both sides of its boundary, the order the rules are judged in,
the deferral out of quiet hours and the arbitration between campaigns that claim the same customer."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from crm_campaign.domain.policy import (
    CHANNELS,
    IN_PERSON,
    OBJECTIVES,
    PURPOSES,
    CustomerFacts,
    PlannedContact,
    PolicySettings,
    Suppression,
    check,
    next_allowed,
    purpose_for,
)
from crm_kit.presentation import SHANGHAI

SETTINGS = PolicySettings()
NOON = datetime(2026, 11, 20, 12, tzinfo=SHANGHAI)
WEEK = timedelta(days=7)
SECOND = timedelta(seconds=1)
SENT_TO_THEM = [channel for channel in CHANNELS if channel not in IN_PERSON]
"""The channels that reach the customer wherever they are: the ones consent, do-not-disturb and the cap govern."""
EVERY_CONSENT = {(channel, purpose): True for channel in CHANNELS for purpose in PURPOSES}


def planned(
    channel: str = "sms", purpose: str = "marketing", at: datetime = NOON, campaign_id: str = "c1"
) -> PlannedContact:
    return PlannedContact(campaign_id=campaign_id, channel=channel, purpose=purpose, at=at)


def facts(**changes: Any) -> CustomerFacts:
    """A customer nothing stops: every consent granted, no do-not-disturb, no complaint, nothing sent lately."""
    return replace(CustomerFacts(customer_id="cust-1", consents=EVERY_CONSENT), **changes)


def shanghai(hour: int, minute: int = 0, second: int = 0, day: int = 20) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=SHANGHAI)


def utc(hour: int, minute: int = 0, day: int = 20) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def test_a_customer_nothing_stops_may_be_contacted_on_every_channel_for_every_purpose() -> None:
    for channel in CHANNELS:
        for purpose in PURPOSES:
            assert check(planned(channel, purpose), facts(), SETTINGS) is None


def test_the_stored_reasons_keep_their_values() -> None:
    assert [s.value for s in Suppression] == [
        "erased",
        "no_consent",
        "consent_withdrawn",
        "do_not_disturb",
        "open_complaint",
        "quiet_hours",
        "frequency_cap",
        "outranked",
    ]


# erased


def test_an_erased_customer_gets_nothing_not_even_a_service_notice() -> None:
    for purpose in PURPOSES:
        assert check(planned("email", purpose), facts(erased=True), SETTINGS) is Suppression.ERASED


def test_erased_beats_every_other_reason() -> None:
    everything_wrong = facts(
        erased=True,
        consents={},
        dnd_enabled=True,
        open_complaints=3,
        recent_contacts=[NOON - timedelta(hours=1)] * 5,
    )
    assert check(planned(at=shanghai(23)), everything_wrong, SETTINGS) is Suppression.ERASED


# consent


def test_marketing_needs_a_grant_on_that_channel_for_that_purpose() -> None:
    only_email_and_service = {("email", "marketing"): True, ("sms", "service"): True}
    customer = facts(consents=only_email_and_service)

    assert check(planned("sms", "marketing"), customer, SETTINGS) is Suppression.NO_CONSENT
    assert check(planned("email", "marketing"), customer, SETTINGS) is None


def test_marketing_refused_is_consent_withdrawn_not_no_consent() -> None:
    customer = facts(consents={**EVERY_CONSENT, ("sms", "marketing"): False})

    assert check(planned("sms", "marketing"), customer, SETTINGS) is Suppression.CONSENT_WITHDRAWN
    assert check(planned("push", "marketing"), customer, SETTINGS) is None


def test_a_service_notice_goes_without_a_recorded_consent() -> None:
    assert check(planned("sms", "service"), facts(consents={}), SETTINGS) is None


def test_a_service_notice_stops_at_an_explicit_refusal() -> None:
    customer = facts(consents={("sms", "service"): False})

    assert check(planned("sms", "service"), customer, SETTINGS) is Suppression.CONSENT_WITHDRAWN
    assert check(planned("email", "service"), customer, SETTINGS) is None


# do-not-disturb


def test_do_not_disturb_silences_marketing_on_every_channel_that_reaches_them() -> None:
    customer = facts(dnd_enabled=True, dnd_until=NOON + timedelta(days=30))
    for channel in SENT_TO_THEM:
        assert check(planned(channel), customer, SETTINGS) is Suppression.DO_NOT_DISTURB


def test_do_not_disturb_without_until_holds_until_lifted() -> None:
    years_later = planned(at=NOON + timedelta(days=3650))

    assert check(years_later, facts(dnd_enabled=True, dnd_until=None), SETTINGS) is Suppression.DO_NOT_DISTURB
    assert check(years_later, facts(dnd_enabled=False, dnd_until=None), SETTINGS) is None


def test_do_not_disturb_whose_until_has_elapsed_is_not_in_force() -> None:
    def on_until(until: datetime) -> CustomerFacts:
        return facts(dnd_enabled=True, dnd_until=until)

    assert check(planned(), on_until(NOON + SECOND), SETTINGS) is Suppression.DO_NOT_DISTURB
    assert check(planned(), on_until(NOON), SETTINGS) is None
    assert check(planned(), on_until(NOON - SECOND), SETTINGS) is None


def test_do_not_disturb_lets_service_notices_through() -> None:
    assert check(planned("sms", "service"), facts(dnd_enabled=True), SETTINGS) is None


# open complaints


def test_an_open_complaint_excludes_marketing() -> None:
    assert check(planned(), facts(open_complaints=1), SETTINGS) is Suppression.OPEN_COMPLAINT
    assert check(planned(), facts(open_complaints=0), SETTINGS) is None


def test_open_complaints_may_be_let_through_by_the_operator() -> None:
    lenient = PolicySettings(exclude_open_complaints=False)
    assert check(planned(), facts(open_complaints=1), lenient) is None


def test_an_open_complaint_does_not_stop_a_service_notice() -> None:
    assert check(planned("sms", "service"), facts(open_complaints=2), SETTINGS) is None


# quiet hours


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        pytest.param(shanghai(20, 59, 59), None, id="20:59:59 Shanghai"),
        pytest.param(shanghai(21), Suppression.QUIET_HOURS, id="21:00 Shanghai"),
        pytest.param(shanghai(7, 59, 59), Suppression.QUIET_HOURS, id="07:59:59 Shanghai"),
        pytest.param(shanghai(8), None, id="08:00 Shanghai"),
        pytest.param(shanghai(0), Suppression.QUIET_HOURS, id="00:00 Shanghai"),
        pytest.param(utc(12, 59), None, id="12:59 UTC is 20:59 Shanghai"),
        pytest.param(utc(13), Suppression.QUIET_HOURS, id="13:00 UTC is 21:00 Shanghai"),
        pytest.param(utc(23, 59, day=19), Suppression.QUIET_HOURS, id="23:59 UTC is 07:59 Shanghai"),
        pytest.param(utc(0), None, id="00:00 UTC is 08:00 Shanghai"),
        pytest.param(utc(22), Suppression.QUIET_HOURS, id="22:00 UTC is 06:00 Shanghai"),
        pytest.param(utc(4), None, id="04:00 UTC is 12:00 Shanghai"),
    ],
)
def test_quiet_hours_are_judged_on_the_shanghai_clock(at: datetime, expected: Suppression | None) -> None:
    assert check(planned("sms", at=at), facts(), SETTINGS) is expected


@pytest.mark.parametrize("channel", ["sms", "push", "outbound_call"])
def test_quiet_hours_hold_back_the_interrupting_channels_for_every_purpose(channel: str) -> None:
    for purpose in PURPOSES:
        assert check(planned(channel, purpose, at=shanghai(23)), facts(), SETTINGS) is Suppression.QUIET_HOURS


def test_an_email_is_not_silenced_by_quiet_hours() -> None:
    for purpose in PURPOSES:
        assert check(planned("email", purpose, at=shanghai(23)), facts(), SETTINGS) is None


def test_the_quiet_channels_are_the_operators_choice() -> None:
    calls_only = PolicySettings(quiet_channels=frozenset({"outbound_call"}))

    assert check(planned("sms", at=shanghai(23)), facts(), calls_only) is None
    assert check(planned("outbound_call", at=shanghai(23)), facts(), calls_only) is Suppression.QUIET_HOURS


def test_a_quiet_window_within_one_day_does_not_wrap() -> None:
    siesta = PolicySettings(quiet_start=time(12), quiet_end=time(14))

    assert check(planned(at=shanghai(11, 59, 59)), facts(), siesta) is None
    assert check(planned(at=shanghai(12)), facts(), siesta) is Suppression.QUIET_HOURS
    assert check(planned(at=shanghai(13, 59, 59)), facts(), siesta) is Suppression.QUIET_HOURS
    assert check(planned(at=shanghai(14)), facts(), siesta) is None
    assert check(planned(at=shanghai(23)), facts(), siesta) is None


def test_a_quiet_window_that_starts_where_it_ends_is_never_quiet() -> None:
    none = PolicySettings(quiet_start=time(8), quiet_end=time(8))
    for hour in (0, 8, 21):
        assert check(planned(at=shanghai(hour)), facts(), none) is None


# frequency cap


def test_the_cap_counts_marketing_sent_within_the_last_seven_days() -> None:
    def sent(*ago: timedelta) -> CustomerFacts:
        return facts(recent_contacts=[NOON - a for a in ago])

    inside = WEEK - SECOND
    assert check(planned(), sent(inside, inside), SETTINGS) is Suppression.FREQUENCY_CAP
    assert check(planned(), sent(inside, WEEK + SECOND), SETTINGS) is None
    assert check(planned(), sent(inside, WEEK), SETTINGS) is None
    assert check(planned(), sent(inside), SETTINGS) is None


def test_the_cap_counts_a_contact_sent_at_the_same_instant_but_none_sent_after() -> None:
    assert check(planned(), facts(recent_contacts=[NOON, NOON - SECOND]), SETTINGS) is Suppression.FREQUENCY_CAP
    assert check(planned(), facts(recent_contacts=[NOON + SECOND, NOON - SECOND]), SETTINGS) is None


def test_the_cap_counts_the_contacts_given_against_the_setting() -> None:
    two_sent = facts(recent_contacts=[NOON - timedelta(days=1), NOON - timedelta(days=2)])

    assert check(planned(), two_sent, PolicySettings(weekly_marketing_cap=3)) is None
    assert check(planned(), two_sent, PolicySettings(weekly_marketing_cap=2)) is Suppression.FREQUENCY_CAP
    assert check(planned(), facts(), PolicySettings(weekly_marketing_cap=0)) is Suppression.FREQUENCY_CAP


def test_the_cap_does_not_hold_back_a_service_notice() -> None:
    full = facts(recent_contacts=[NOON - timedelta(hours=h) for h in (1, 2, 3)])
    assert check(planned("sms", "service"), full, SETTINGS) is None


# objectives


def test_care_is_the_only_service_objective() -> None:
    assert {objective: purpose_for(objective) for objective in OBJECTIVES} == {
        "retention": "marketing",
        "upsell": "marketing",
        "cross_sell": "marketing",
        "win_back": "marketing",
        "care": "service",
    }
    with pytest.raises(ValueError, match="objective"):
        purpose_for("spam")


def test_a_care_campaign_ignores_the_cap_complaints_and_do_not_disturb() -> None:
    troubled = facts(
        consents={},
        dnd_enabled=True,
        open_complaints=1,
        recent_contacts=[NOON - timedelta(hours=h) for h in (1, 2, 3)],
    )
    care = planned("sms", purpose_for("care"))
    retention = planned("sms", purpose_for("retention"))

    assert check(care, troubled, SETTINGS) is None
    assert check(retention, troubled, SETTINGS) is not None


# the order of the rules


def test_the_rules_are_judged_in_their_documented_order() -> None:
    """Start from a customer every rule stops, then clear the reason reported: the next one in order shows."""
    customer = facts(
        erased=True,
        consents={},
        dnd_enabled=True,
        open_complaints=1,
        recent_contacts=[shanghai(9), shanghai(10)],
    )
    contact = planned("sms", "marketing", at=shanghai(22))
    clear = {
        Suppression.ERASED: {"erased": False},
        Suppression.NO_CONSENT: {"consents": EVERY_CONSENT},
        Suppression.DO_NOT_DISTURB: {"dnd_enabled": False},
        Suppression.OPEN_COMPLAINT: {"open_complaints": 0},
        Suppression.FREQUENCY_CAP: {"recent_contacts": ()},
    }
    reported = []
    while (reason := check(contact, customer, SETTINGS)) is not None:
        reported.append(reason)
        if reason is Suppression.QUIET_HOURS:
            contact = replace(contact, at=shanghai(12))
        else:
            customer = replace(customer, **clear[reason])

    assert reported == [
        Suppression.ERASED,
        Suppression.NO_CONSENT,
        Suppression.DO_NOT_DISTURB,
        Suppression.OPEN_COMPLAINT,
        Suppression.QUIET_HOURS,
        Suppression.FREQUENCY_CAP,
    ]


def test_no_consent_is_reported_before_quiet_hours() -> None:
    assert check(planned(at=shanghai(23)), facts(consents={}), SETTINGS) is Suppression.NO_CONSENT


def test_a_withdrawn_consent_is_reported_before_do_not_disturb() -> None:
    customer = facts(consents={("sms", "marketing"): False}, dnd_enabled=True)
    assert check(planned(), customer, SETTINGS) is Suppression.CONSENT_WITHDRAWN


# next_allowed


def test_next_allowed_across_midnight_is_eight_the_next_morning() -> None:
    assert next_allowed(shanghai(22, 30), SETTINGS) == shanghai(8, day=21)
    assert next_allowed(shanghai(21), SETTINGS) == shanghai(8, day=21)


def test_next_allowed_after_midnight_is_eight_the_same_morning() -> None:
    assert next_allowed(shanghai(3), SETTINGS) == shanghai(8)
    assert next_allowed(shanghai(7, 59, 59), SETTINGS) == shanghai(8)


def test_next_allowed_follows_the_shanghai_date_not_the_utc_one() -> None:
    """16:30 UTC on the 20th is already 00:30 on the 21st in Shanghai: the same morning there, not the next."""
    assert next_allowed(utc(16, 30), SETTINGS) == shanghai(8, day=21)
    assert next_allowed(utc(13), SETTINGS) == shanghai(8, day=21)


def test_next_allowed_answers_in_utc_in_and_out_of_quiet_hours() -> None:
    for at in (shanghai(3), shanghai(12)):
        assert next_allowed(at, SETTINGS).utcoffset() == timedelta(0)
    assert next_allowed(shanghai(3), SETTINGS) == utc(0)


def test_next_allowed_across_the_year_end() -> None:
    new_years_eve = datetime(2026, 12, 31, 23, 30, tzinfo=SHANGHAI)
    assert next_allowed(new_years_eve, SETTINGS) == datetime(2027, 1, 1, 8, tzinfo=SHANGHAI)


def test_next_allowed_outside_quiet_hours_is_the_moment_itself() -> None:
    assert next_allowed(shanghai(8), SETTINGS) == shanghai(8)
    assert next_allowed(shanghai(20, 59, 59), SETTINGS) == shanghai(20, 59, 59)


def test_a_deferred_contact_may_go_when_next_allowed() -> None:
    held = planned("push", at=shanghai(23, 15))
    assert check(held, facts(), SETTINGS) is Suppression.QUIET_HOURS

    deferred = replace(held, at=next_allowed(held.at, SETTINGS))
    assert check(deferred, facts(), SETTINGS) is None


def test_next_allowed_within_a_window_that_does_not_wrap() -> None:
    siesta = PolicySettings(quiet_start=time(12), quiet_end=time(14))
    assert next_allowed(shanghai(13), siesta) == shanghai(14)


# refused input


def test_a_naive_time_is_refused() -> None:
    naive = datetime(2026, 11, 20, 22)
    with pytest.raises(ValueError, match="naive"):
        planned(at=naive)
    with pytest.raises(ValueError, match="naive"):
        next_allowed(naive, SETTINGS)


def test_the_store_asks_no_channel_consent_and_ignores_do_not_disturb_quiet_hours_and_the_cap() -> None:
    night = shanghai(23)
    alone = facts(
        consents={("sms", "marketing"): False},
        dnd_enabled=True,
        recent_contacts=[night - timedelta(hours=n) for n in range(1, 5)],
    )
    assert check(planned("store", at=night), alone, SETTINGS) is None
    assert check(planned("sms", at=night), alone, SETTINGS) is Suppression.CONSENT_WITHDRAWN


def test_the_store_offers_nothing_to_the_erased_or_to_a_customer_with_an_open_complaint() -> None:
    assert check(planned("store"), facts(erased=True), SETTINGS) is Suppression.ERASED
    assert check(planned("store", "service"), facts(erased=True), SETTINGS) is Suppression.ERASED
    assert check(planned("store"), facts(open_complaints=1), SETTINGS) is Suppression.OPEN_COMPLAINT
    assert check(planned("store", "service"), facts(open_complaints=1), SETTINGS) is None, "care still goes"
    lenient = replace(SETTINGS, exclude_open_complaints=False)
    assert check(planned("store"), facts(open_complaints=1), lenient) is None


def test_an_unknown_channel_or_purpose_is_refused() -> None:
    with pytest.raises(ValueError, match="channel"):
        planned(channel="fax")
    with pytest.raises(ValueError, match="purpose"):
        planned(purpose="Marketing")


def test_settings_refuse_an_unknown_quiet_channel_and_a_negative_cap() -> None:
    with pytest.raises(ValueError, match="quiet channels"):
        PolicySettings(quiet_channels=frozenset({"SMS"}))
    with pytest.raises(ValueError, match="cap"):
        PolicySettings(weekly_marketing_cap=-1)
