"""Contact policy (触达规则): may this planned contact reach this customer now, and if not, why.

Plain rules over facts the caller has loaded, so dispatch, previews and reports judge alike. The reason is stored
with the suppressed contact and counted in the campaign report. Times are timezone-aware; the wall-clock rules
(quiet hours) are read in Asia/Shanghai."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum

from crm_kit.presentation import SHANGHAI

CHANNELS = ("sms", "email", "push", "outbound_call", "store")
IN_PERSON = frozenset({"store"})
"""Offered at the counter (厅店推荐) when the customer next comes in, not sent to them: no channel consent to ask
(there is no such channel to refuse), nothing to disturb or keep from the night, and not counted by the cap on
what reaches customers unasked. An erased customer and one with an open complaint still get no offer."""
PURPOSES = ("marketing", "service")
OBJECTIVES = ("retention", "upsell", "cross_sell", "win_back", "care")
CAP_WINDOW = timedelta(days=7)
"""The frequency cap counts the marketing contacts sent in the rolling week before the planned one."""


class Suppression(StrEnum):
    """Why a contact did not go out; the values are stored and reported, so they never change."""

    ERASED = "erased"
    NO_CONSENT = "no_consent"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    DO_NOT_DISTURB = "do_not_disturb"
    OPEN_COMPLAINT = "open_complaint"
    QUIET_HOURS = "quiet_hours"
    FREQUENCY_CAP = "frequency_cap"
    OUTRANKED = "outranked"


def purpose_for(objective: str) -> str:
    """Care (关怀) informs under the service contract (服务通知); every other objective sells (营销)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown campaign objective {objective!r}; expected one of {', '.join(OBJECTIVES)}")
    return "service" if objective == "care" else "marketing"


@dataclass(frozen=True)
class PolicySettings:
    """The operator's contact rules; the defaults are the house policy."""

    quiet_start: time = time(21, 0)
    """Shanghai wall clock. A start after the end wraps midnight; a start equal to the end: no quiet hours."""
    quiet_end: time = time(8, 0)
    quiet_channels: frozenset[str] = frozenset({"sms", "push", "outbound_call"})
    """The channels that interrupt; an email waits in the inbox, so it is not held back."""
    weekly_marketing_cap: int = 2
    """Marketing contacts per customer in any rolling 7 days, all campaigns together."""
    exclude_open_complaints: bool = True

    def __post_init__(self) -> None:
        unknown = self.quiet_channels - set(CHANNELS)
        if unknown:
            raise ValueError(f"unknown quiet channels {sorted(unknown)}; a misspelt channel would never be quiet")
        if self.weekly_marketing_cap < 0:
            raise ValueError("weekly_marketing_cap cannot be negative")


@dataclass(frozen=True)
class CustomerFacts:
    """What the caller knows of one customer when the contact is judged."""

    customer_id: str
    consents: Mapping[tuple[str, str], bool] = field(default_factory=dict)
    """(channel, purpose) → granted, as the customer last said; a missing key: never asked."""
    dnd_enabled: bool = False
    dnd_until: datetime | None = None
    """When do-not-disturb (免打扰) ends by itself; None: when the customer lifts it."""
    open_complaints: int = 0
    recent_contacts: Sequence[datetime] = ()
    """When marketing contacts were sent to the customer, by any campaign; service messages are left out."""
    erased: bool = False


@dataclass(frozen=True)
class PlannedContact:
    """One contact a campaign means to send to one customer."""

    campaign_id: str
    channel: str
    purpose: str
    at: datetime

    def __post_init__(self) -> None:
        if self.channel not in CHANNELS:
            raise ValueError(f"unknown channel {self.channel!r}; expected one of {', '.join(CHANNELS)}")
        if self.purpose not in PURPOSES:
            raise ValueError(f"unknown purpose {self.purpose!r}; an unknown purpose must not escape the consent rules")
        _require_aware(self.at)


def check(contact: PlannedContact, customer: CustomerFacts, settings: PolicySettings) -> Suppression | None:
    """Why `contact` may not go at `contact.at`, or None when it may.

    The rules, in this order; the first that applies is the reason reported:

    1. erased — an erased customer (PIPL) is never contacted, whatever else is on record.
    2. consent — marketing is opt-in: it needs an explicit grant on the channel (never asked → no_consent, refused →
       consent_withdrawn). A service notice goes under the service contract, which PIPL allows without a
       separate consent, so only an explicit refusal stops it (consent_withdrawn).
    3. do_not_disturb — while in force, silences marketing on every channel; service notices still go.
    4. open_complaint — no marketing to a customer with an open complaint (有未结投诉不营销): an offer then angers.
    5. quiet_hours — the interrupting channels wait out the night, for every purpose (Shanghai wall clock).
    6. frequency_cap — marketing only, counted over all campaigns in (at − 7 days, at].

    An in-person channel (the store, `IN_PERSON`) is judged on erasure and open complaints only.

    The customer's own word comes before the house rules, and quiet hours, the one reason dispatch defers on
    (`next_allowed`) rather than drops, comes after every lasting reason, so a deferred contact is not one that
    would be refused anyway. The cap is judged last; a deferred contact is checked again when it goes.
    """
    marketing = contact.purpose == "marketing"
    if customer.erased:
        return Suppression.ERASED
    if contact.channel in IN_PERSON:
        return Suppression.OPEN_COMPLAINT if _complaint_stops(contact, customer, settings) else None
    consent = customer.consents.get((contact.channel, contact.purpose))
    if consent is False:
        return Suppression.CONSENT_WITHDRAWN
    if consent is None and marketing:
        return Suppression.NO_CONSENT
    if marketing and _dnd_in_force(customer, contact.at):
        return Suppression.DO_NOT_DISTURB
    if _complaint_stops(contact, customer, settings):
        return Suppression.OPEN_COMPLAINT
    if contact.channel in settings.quiet_channels and _is_quiet(contact.at.astimezone(SHANGHAI).time(), settings):
        return Suppression.QUIET_HOURS
    if marketing and _marketing_sent_before(customer, contact.at) >= settings.weekly_marketing_cap:
        return Suppression.FREQUENCY_CAP
    return None


def next_allowed(at: datetime, settings: PolicySettings) -> datetime:
    """When a contact held back by quiet hours may go, in UTC: the window's end in Shanghai, today if that is still
    ahead, else tomorrow. Dispatch defers to it rather than drop the contact; outside the window, `at` itself."""
    local = _require_aware(at).astimezone(SHANGHAI)
    if not _is_quiet(local.time(), settings):
        return at.astimezone(UTC)
    day = local.date() if local.time() < settings.quiet_end else local.date() + timedelta(days=1)
    return datetime.combine(day, settings.quiet_end, SHANGHAI).astimezone(UTC)


def _complaint_stops(contact: PlannedContact, customer: CustomerFacts, settings: PolicySettings) -> bool:
    return contact.purpose == "marketing" and settings.exclude_open_complaints and customer.open_complaints > 0


def _dnd_in_force(customer: CustomerFacts, at: datetime) -> bool:
    """An `until` already past has lifted do-not-disturb by itself, even if the flag was never turned off."""
    return customer.dnd_enabled and (customer.dnd_until is None or customer.dnd_until > at)


def _marketing_sent_before(customer: CustomerFacts, at: datetime) -> int:
    """Contacts sent after `at` (a later run already went) are not the past of this one, so they do not count."""
    return sum(1 for sent in customer.recent_contacts if at - CAP_WINDOW < sent <= at)


def _is_quiet(local: time, settings: PolicySettings) -> bool:
    if settings.quiet_start <= settings.quiet_end:
        return settings.quiet_start <= local < settings.quiet_end
    return local >= settings.quiet_start or local < settings.quiet_end


def _require_aware(at: datetime) -> datetime:
    """A naive time has no instant; read in the server's zone it would move quiet hours by hours, silently."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("naive datetime; the contact policy judges only timezone-aware times")
    return at
