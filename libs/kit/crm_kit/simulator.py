"""A BOSS simulator (`crm simulate`): a provincial operator's subscribers, the billing events its BOSS would
push for them month by month, and a signed pusher that sends them at a chosen rate.

Deterministic for a seed: customer n draws from its own generator, so a smaller population is a prefix of a
larger one. Records are in the BOSS push format the adapter accepts, each customer's in time order (the adapter
keys Kafka by customer id); customer after customer, so no customer's story is split between concurrent pushes.

The generating process, which a churn model has to rediscover:
- Hidden traits per customer: price sensitivity, network exposure (its city's quality plus its own cells),
  payment reliability, a usage profile (data, voice, SMS, travel). Observable facts: individual or organisation
  (政企, several lines), city, plan (prepaid/postpaid, fee, allowance), contract end (合约到期), dealer, tenure.
- Each month competitors run port-out offers (携号转网优惠) in some cities and some cities have network trouble.
  Usage follows a mean-reverting engagement walk; bad network lowers it and, in the border cities, pushes phones
  onto Hong Kong/Macau networks (unwanted roaming days); a customer trying a competitor's SIM uses less month after
  month. Bills follow usage (overage, roaming); payments follow reliability: late and failed payments, overdue
  bills, collection (催缴 → 单停 → 双停 → 委外催收 → 坏账核销) with arrears barring and, at 90 days overdue,
  termination for arrears; prepaid lines recharge or are barred and, after 60 days, closed.
- Lines order add-ons (叠加包订购) as subscribers do: a data pack (流量包) some months when the month's data nears the
  plan's allowance, a roaming pack (漫游包) on the first day of some trips, now and then a voice pack when the minutes
  run short, an SMS pack or a value-added service (增值业务); a renewing monthly pack is ordered once. Add-ons are
  drawn from a generator of their own and change neither usage nor bills, so the other records stay as they were.
- Customers raise tickets (投诉/障碍申告) as the ticketing service would publish them (`ticket_events()`): network
  trouble reports and complaints, likelier the worse the customer's network that month; billing disputes, likelier
  after a bill shock; now and then something else (增值业务扣费, 业务咨询, 服务态度). A network ticket raised where the
  network is bad is often not fixed: held for weeks (挂起, 待优化/建站) or resolved, then reopened (重复投诉); a
  customer with a ticket still open goes to the regulator (工信部申诉) more often. Late tickets breach their SLA and
  are escalated; a satisfaction survey (满意度回访) scores low when it took long or was reopened. Ticket events come
  from a generator of their own, so the BOSS records move only through the churn hazard.
- On the first of each month a customer's churn hazard is sigmoid(CHURN_BASE + Σ CHURN_WEIGHTS × `Drivers` +
  N(0, CHURN_NOISE²)), unresolved complaints among the drivers; a churner leaves on a random day: every line
  `ported_out` (to the operator with the offer, likelier while one runs) or `terminated`. `churn_truth()` gives each
  customer's drivers and hazard per month, and its tickets as they really went.

After the run, `open_lines` says who is still here; `churn_score_events()` scores them as the churn service would
publish (churn.score.computed.v1, with the truth's 60-day churn probability), and `offer_responses()` is the market's
answer to a campaign (营销活动): which eligible customers move a line to an offered plan (升档) within the window, on
their own at a base rate and, among the contacted, at base rate + lift — a known effect a campaign's measured uplift
can be checked against.
"""

from __future__ import annotations

import asyncio
import gzip as gzip_codec
import heapq
import math
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import typer
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from crm_kit.presentation import SHANGHAI
from crm_kit.signing import DEV_SECRET, DEV_SOURCE, signed_headers

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = [
    "伟",
    "芳",
    "娜",
    "秀英",
    "敏",
    "静",
    "丽",
    "强",
    "磊",
    "军",
    "洋",
    "勇",
    "艳",
    "杰",
    "娟",
    "涛",
    "明",
    "超",
    "秀兰",
    "霞",
    "平",
    "刚",
    "桂英",
    "浩然",
    "子涵",
    "欣怡",
    "宇轩",
    "梓萱",
    "俊杰",
    "思远",
]
COMPANY_WORDS = [
    "腾达",
    "华信",
    "远航",
    "恒泰",
    "新源",
    "博雅",
    "金桥",
    "蓝海",
    "鸿运",
    "盛世",
    "天成",
    "嘉禾",
    "粤海",
    "南方",
    "宏图",
    "立信",
]
TRADES = ["科技", "物流", "贸易", "建设", "医药", "教育", "电子", "餐饮", "制造", "置业", "五金", "服饰"]


@dataclass(frozen=True)
class City:
    """A city of the province (归属地): its share of subscribers and its latent network badness."""

    code: str
    name: str
    area: str
    weight: int
    network: float
    border: bool


CITIES = (
    City("GD-GZ", "广州市", "440100", 20, -0.4, False),
    City("GD-SZ", "深圳市", "440300", 20, -0.2, True),
    City("GD-DG", "东莞市", "441900", 11, 0.0, False),
    City("GD-FS", "佛山市", "440600", 10, -0.2, False),
    City("GD-HZ", "惠州市", "441300", 6, 0.2, False),
    City("GD-ZH", "珠海市", "440400", 4, 0.1, True),
    City("GD-ZS", "中山市", "442000", 5, 0.1, False),
    City("GD-JM", "江门市", "440700", 4, 0.3, False),
    City("GD-ST", "汕头市", "440500", 6, 0.4, False),
    City("GD-ZJ", "湛江市", "440800", 6, 0.6, False),
    City("GD-MZ", "梅州市", "441400", 4, 0.8, False),
    City("GD-QY", "清远市", "441800", 4, 0.7, False),
)
CITY_WEIGHTS = [c.weight for c in CITIES]
BORN_ELSEWHERE = ("430100", "450100", "510100", "360100", "410100", "420100")
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
PREFIXES = ("133", "153", "173", "177", "180", "181", "189", "191", "193", "199")
COMPETITORS = ("china_mobile", "china_unicom", "china_broadnet")
COMPETITOR_SHARE = (6, 3, 1)
GB = 1024


@dataclass(frozen=True)
class Plan:
    """A tariff (资费套餐): monthly fee in fen and what it includes."""

    code: str
    name: str
    fee_fen: int
    minutes: int
    data_mb: int
    prepaid: bool

    def wire(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "monthly_fee_fen": self.fee_fen}


PLANS = (
    Plan("4G-BASIC-39", "4G畅聊套餐39元", 3900, 100, 10 * GB, False),
    Plan("5G-ULT-129", "5G畅享套餐129元", 12900, 500, 40 * GB, False),
    Plan("5G-ULT-199", "5G畅享套餐199元", 19900, 1000, 80 * GB, False),
    Plan("5G-FAM-269", "5G全家享套餐269元", 26900, 1500, 120 * GB, False),
    Plan("5G-BIZ-99", "5G商务套餐99元", 9900, 800, 30 * GB, False),
    Plan("PRE-CARD-19", "畅聊卡19元", 1900, 50, 5 * GB, True),
    Plan("PRE-DATA-29", "大流量卡29元", 2900, 30, 30 * GB, True),
)
PERSONAL_POSTPAID = PLANS[:4]
PREPAID = PLANS[5:]
DATA_FEN_PER_GB = 500  # 套外流量 5元/GB, each GB started
VOICE_FEN_PER_MINUTE = 15  # 套外语音 0.15元/分钟
ROAMING_DAY_FEN = 2500  # 漫游日租 25元/天, charged on any roaming data that day
ROAMING_VOICE_FEN_PER_MINUTE = 99
ORG_DISCOUNT = 0.1  # 集团优惠 on monthly fees
DUE_DAYS = 24  # bill issued on the 1st, due on the 25th (缴费截止日)
RECHARGE_BELOW_FEN = 1000
RECHARGE_AMOUNTS = (3000, 5000, 5000, 10000, 10000, 20000)
DUNNING = ((1, "reminded"), (15, "soft_suspended"), (45, "hard_suspended"), (90, "with_agency"), (180, "written_off"))
OVERDUE_NOTICES = (1, 30, 60, 90)
PREPAID_CLOSE_AFTER_DAYS = 60


@dataclass(frozen=True)
class Addon:
    """An add-on product (叠加包/增值业务): price in fen; `validity_days` None renews monthly until cancelled."""

    code: str
    name: str
    kind: str
    price_fen: int
    validity_days: int | None

    def wire(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "kind": self.kind,
            "price_fen": self.price_fen,
            "validity_days": self.validity_days,
        }


DATA_PACKS = (
    Addon("PACK-DATA-10G", "10GB流量包(月包)", "data_pack", 3000, None),
    Addon("PACK-DATA-30D-5G", "5GB流量包(30天)", "data_pack", 2000, 30),
    Addon("PACK-DATA-1D-2G", "2GB流量日包", "data_pack", 500, 1),
)
DATA_PACK_WEIGHTS = (2, 5, 3)
ROAMING_PACKS = (  # cheaper than the day rate (漫游日租) over the trip
    Addon("PACK-ROAM-3D", "境外漫游3天流量包", "roaming_pack", 3000, 3),
    Addon("PACK-ROAM-7D", "境外漫游7天流量包", "roaming_pack", 6000, 7),
)
VOICE_PACK = Addon("PACK-VOICE-100", "100分钟语音包(月包)", "voice_pack", 1000, None)
SMS_PACK = Addon("PACK-SMS-100", "100条短信包(月包)", "sms_pack", 500, None)
VALUE_ADDED = (
    Addon("VAS-VRBT", "视频彩铃(月包)", "value_added", 500, None),
    Addon("VAS-CLOUD", "天翼云盘会员(月包)", "value_added", 1000, None),
)
DATA_NEAR_CAP = 0.85  # a line whose month's data reached 85% of its allowance is near its cap
VOICE_NEAR_CAP = 0.9
DATA_PACK_TAKE = 0.35  # of the lines near their data cap in a month, those that order a data pack
ROAMING_PACK_TAKE = 0.45  # of the trips, those with a roaming pack
VOICE_PACK_TAKE = 0.05
SMS_PACK_A_MONTH = 0.002
VALUE_ADDED_A_MONTH = 0.004

CHURN_BASE = -9.5
CHURN_NOISE = 0.3
CHURN_WEIGHTS = {
    "usage_decline": 10.0,
    "bill_shock": 4.0,
    "contract_ending": 4.4,
    "payment_trouble": 1.4,
    "new_customer": 2.0,
    "long_tenure": -1.6,
    "overpaying": 2.0,
    "organisation": -2.4,
    "network": 1.0,
    "competitor_offer": 4.0,
    "unresolved_complaints": 1.8,
}
"""Strong enough that the drivers, more than chance, decide who leaves — as in operators' data, where churn models
reach a ROC-AUC of 0.85–0.9 — with the base rate set so about a quarter of the base leaves in a year. Knowing every
driver, hidden ones included, ranks the next two months' leavers at an AUC of about 0.9 (a month's hazard cannot
foresee the next month's, nor the closures for arrears, which follow payment behaviour)."""

TICKET_SOURCE = "/crm/ticketing"
NETWORK_TICKETS_A_MONTH = 0.012  # at network badness 0; × e^(1.3 × badness)
BILLING_DISPUTES_A_MONTH = (0.005, 0.1)  # base + per unit of bill shock
OTHER_TICKETS_A_MONTH = 0.01
NETWORK_TITLES = ("室内信号弱", "通话经常掉线", "手机无法上网", "5G信号不稳定")
BILLING_TITLES = ("本月话费异常偏高", "对套外流量费有异议", "对漫游费有异议")
OTHER_TICKETS = (  # ticket type, category, title
    ("complaint", "value_added_service", "未订购的增值业务被扣费"),
    ("inquiry", "service_activation", "套餐变更办理咨询"),
    ("inquiry", "handset_terminal", "手机VoLTE设置咨询"),
    ("complaint", "staff_complaint", "营业厅服务态度差"),
    ("inquiry", "number_portability", "携号转网资格查询"),
)
OTHER_TICKET_WEIGHTS = (3, 4, 2, 1, 1)
RESOLUTIONS = {
    "network_coverage": ("基站故障已修复", "已优化小区参数", "已开通VoWiFi并指导设置"),
    "billing_dispute": ("核实有误，已调账退费", "费用核实无误，已向客户解释"),
}
TICKET_CHANNELS = (("hotline", "app", "wechat", "web", "store"), (55, 20, 12, 5, 8))
SLA_TARGETS = {  # resolution targets (处理时限) of ticketing's default policies: (hours round the clock, business days)
    ("network_coverage", "high"): (8, 0),
    ("network_coverage", "medium"): (48, 0),
    ("billing_dispute", "high"): (0, 1),
    ("billing_dispute", "medium"): (0, 2),
    ("*", "high"): (0, 2),
    ("*", "medium"): (0, 5),
    ("*", "low"): (0, 10),
}
BUSINESS_DAY_HOURS = 9  # 09:00-18:00 on weekdays; public holidays are left out


@dataclass(frozen=True)
class Population:
    """Who is simulated: `customers` over `months` calendar months (China Standard Time), the first being the month
    of `start`."""

    customers: int = 200
    seed: int = 2026
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    months: int = 3


@dataclass(frozen=True, slots=True)
class Drivers:
    """What drives a customer's churn hazard in a month, as known on the month's first day.

    All but `network` and `competitor_offer` follow from the emitted records; those two are latent and show in them
    only indirectly (usage drops and unwanted roaming; port-outs bunching in a city). `unresolved_complaints`
    follows from the ticket events.
    """

    usage_decline: float  # 1 - last month's usage per line-day / mean of the up to 3 months before, floored at 0
    bill_shock: float  # last month's bill / mean of the up to 3 months before, minus 1.2, clipped to [0, 1.5]
    contract_ending: bool  # the contract ended in the last 2 months or ends this month (合约到期)
    payment_trouble: int  # failed payments, new overdue bills and arrears barrings in the last 3 months, up to 3
    tenure_months: int
    overpaying: bool  # last month under a quarter of the plans' data used, on a 129-yuan or dearer plan
    organisation: bool
    network: float  # the customer's network badness this month (latent)
    competitor_offer: float  # a competitor's offer in the city × the customer's price sensitivity (latent)
    unresolved_complaints: int  # complaints and trouble tickets open on the 1st or reopened in the 61 days before, ≤ 3

    def logit(self) -> float:
        w = CHURN_WEIGHTS
        return (
            CHURN_BASE
            + w["usage_decline"] * self.usage_decline
            + w["bill_shock"] * self.bill_shock
            + w["contract_ending"] * self.contract_ending
            + w["payment_trouble"] * self.payment_trouble
            + w["new_customer"] * (self.tenure_months < 6)
            + w["long_tenure"] * (self.tenure_months > 60)
            + w["overpaying"] * self.overpaying
            + w["organisation"] * self.organisation
            + w["network"] * max(self.network, 0.0)
            + w["competitor_offer"] * self.competitor_offer
            + w["unresolved_complaints"] * self.unresolved_complaints
        )


@dataclass(frozen=True, slots=True)
class MonthTruth:
    period: str  # YYYY-MM
    drivers: Drivers
    hazard: float  # the churn probability drawn against this month, noise included


@dataclass(frozen=True, slots=True)
class Complaint:
    """One ticket the customer raised (投诉/障碍申告), as its course was decided when it was raised; the ticket
    events tell it up to the simulation's end. Times are China Standard Time."""

    ticket_id: str
    ticket_type: str  # complaint 投诉, trouble 故障, inquiry 咨询
    category: str
    opened_at: datetime
    first_resolved_at: datetime
    reopened_at: datetime | None  # reopened (重新打开) after the first resolution: it was not fixed
    resolved_at: datetime  # the last resolution; first_resolved_at unless reopened
    sla_breached: bool
    csat: int | None  # the survey's score 1..5, None when not surveyed

    def open_at(self, at: datetime) -> bool:
        """Raised and not resolved at `at` (held and reopened count as open)."""
        if self.reopened_at is not None and self.reopened_at <= at < self.resolved_at:
            return True
        return self.opened_at <= at < self.first_resolved_at


@dataclass(slots=True)
class CustomerTruth:
    """The generating process's truth for one customer, for evaluating churn and bad-debt models."""

    customer_id: str
    churn_period: str | None = None  # YYYY-MM the customer left, None if still here at the end
    churn_kind: str | None = None  # ported_out, terminated (voluntary) or arrears (closed for debt)
    bad_debt: bool = False  # a bill reached 90 days overdue (委外催收) or a prepaid line was closed in arrears
    months: list[MonthTruth] = field(default_factory=list)
    complaints: list[Complaint] = field(default_factory=list)  # in the order raised, ticket number k = index + 1


@dataclass(frozen=True, slots=True)
class LineAtEnd:
    """A line still open when the simulation ends (barred ones included): what a plan change on it must name."""

    customer_id: str
    account_id: str
    subscription_id: str
    msisdn: str
    plan: Plan
    organisation: bool  # the customer is an organisation (政企)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def id_card(rng: random.Random, area: str, born: date) -> str:
    """A syntactically valid 18-digit resident ID (GB 11643 check digit); not a real person's."""
    body = f"{area}{born:%Y%m%d}{rng.randint(0, 999):03d}"
    check = "10X98765432"[sum(int(d) * w for d, w in zip(body, ID_WEIGHTS, strict=True)) % 11]
    return body + check


def _iccid(n: int, line_no: int, card: int) -> str:
    """A 20-digit China Telecom ICCID (8986 03 …) with a Luhn check digit, unique per line and card."""
    body = f"898603{n:08d}{line_no:02d}{card:03d}"
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return body + str(-total % 10)


@dataclass(frozen=True, slots=True)
class _Day:
    iso: str
    compact: str
    recorded_at: str  # the day's usage summary is recorded at 01:30 the next morning
    data_factor: float
    voice_factor: float


@dataclass(frozen=True, slots=True)
class _Month:
    index: int
    period: str
    first: date
    next_first: date
    days: tuple[_Day, ...]


def _calendar(population: Population) -> list[_Month]:
    """The simulated months, with the strings every record of a day shares made once."""
    local = population.start.astimezone(SHANGHAI)
    months = []
    year, month = local.year, local.month
    for index in range(population.months):
        first = date(year, month, 1)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        next_first = date(year, month, 1)
        days = []
        for k in range((next_first - first).days):
            d = first + timedelta(days=k)
            weekend = d.weekday() >= 5
            days.append(
                _Day(
                    d.isoformat(),
                    f"{d:%Y%m%d}",
                    f"{d + timedelta(days=1)}T01:30:00+08:00",
                    1.15 if weekend else 1.0,
                    0.7 if weekend else 1.08,
                )
            )
        months.append(_Month(index, f"{first:%Y-%m}", first, next_first, tuple(days)))
    return months


def _at(day: date, minute: int) -> str:
    return f"{day.isoformat()}T{minute // 60:02d}:{minute % 60:02d}:00+08:00"


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)


def _hours(hours: float) -> timedelta:
    """Whole minutes, at least one: ticket times carry no fractions of a second, and every step takes time."""
    return timedelta(minutes=max(round(hours * 60), 1))


def _move(from_state: str, to_state: str, reason: str | None) -> dict[str, Any]:
    return {"from_state": from_state, "to_state": to_state, "reason": reason}


def _business_due(at: datetime, days: int) -> datetime:
    """`days` business days (9 h each, 09:00-18:00 on weekdays) after `at`, counted from the next opening when
    `at` is outside hours: a back-office SLA's due time (处理时限)."""
    opening = at.replace(hour=9, minute=0, second=0)
    if at >= opening.replace(hour=18):
        at = opening + timedelta(days=1)
    elif at < opening:
        at = opening
    while at.weekday() >= 5:
        at = (at + timedelta(days=1)).replace(hour=9, minute=0, second=0)
    for _ in range(days):
        at += timedelta(days=1)
        while at.weekday() >= 5:
            at += timedelta(days=1)
    return at


class _Market:
    """Per city and month: a competitor's port-out offer (operator, strength) and network trouble."""

    def __init__(self, seed: int, months: int) -> None:
        self.offer: dict[str, list[tuple[str, float] | None]] = {}
        self.trouble: dict[str, list[float]] = {}
        for city in CITIES:
            rng = random.Random(f"{seed}:market:{city.code}")
            offers: list[tuple[str, float] | None] = []
            troubles: list[float] = []
            offer: tuple[str, float] | None = None
            offer_left = trouble_left = 0
            trouble = 0.0
            for _ in range(months):
                if offer_left == 0:
                    offer = None
                    if rng.random() < 0.12:
                        offer = (rng.choices(COMPETITORS, COMPETITOR_SHARE)[0], rng.uniform(0.6, 1.4))
                        offer_left = rng.randint(1, 3)
                if trouble_left == 0:
                    trouble = 0.0
                    if rng.random() < 0.08:
                        trouble, trouble_left = rng.uniform(0.8, 2.0), rng.randint(1, 2)
                offers.append(offer)
                troubles.append(trouble)
                offer_left = max(offer_left - 1, 0)
                trouble_left = max(trouble_left - 1, 0)
            self.offer[city.code] = offers
            self.trouble[city.code] = troubles


class _Line:
    """One subscription (用户/号码) and its running counters for the month being simulated; what an add-on order
    looks at: the days of use, the day the data (or minutes) neared the plan's allowance, the trip's roaming days."""

    __slots__ = (
        "activated",
        "balance",
        "barred_days",
        "card",
        "close_day",
        "closed",
        "data_cap_day",
        "data_mean",
        "data_over_fen",
        "data_used",
        "fee_days",
        "held",
        "ids",
        "line_no",
        "plan",
        "roaming_fen",
        "sms_mean",
        "sub_id",
        "trip_days",
        "used_days",
        "voice_cap_day",
        "voice_mean",
        "voice_over_fen",
    )

    def __init__(self, n: int, line_no: int, msisdn: str, plan: Plan, activated: date) -> None:
        self.line_no = line_no
        self.sub_id = f"SUB{n:07d}{line_no:02d}"
        self.ids = {
            "customer_id": f"CUST{n:07d}",
            "account_id": f"ACCT{n:07d}",
            "subscription_id": self.sub_id,
            "msisdn": msisdn,
        }
        self.plan = plan
        self.activated = activated
        self.card = 0
        self.closed = False
        self.close_day: int | None = None
        self.balance = 0
        self.barred_days = -1  # prepaid: days barred for arrears, -1 when not barred
        self.data_mean = self.voice_mean = self.sms_mean = 0.0
        self.fee_days = self.data_used = self.data_over_fen = self.voice_over_fen = self.roaming_fen = 0
        self.held: set[Addon] = set()  # renewing add-ons (月包) ordered: not ordered again
        self.used_days: list[int] = []
        self.trip_days: list[int] = []
        self.data_cap_day: int | None = None
        self.voice_cap_day: int | None = None


@dataclass(slots=True)
class _Invoice:
    invoice_id: str
    amount: int
    due: date
    paid_on: date | None


class _Customer:
    """One customer's hidden traits, state and story. `month()` yields the month's records in time order."""

    def __init__(self, n: int, sim: Simulation) -> None:
        self.n = n
        self.sim = sim
        pop = sim.population
        rng = self.rng = random.Random(pop.seed * 1_000_003 + n)
        self.cid, self.aid = f"CUST{n:07d}", f"ACCT{n:07d}"
        city = self.city = rng.choices(CITIES, CITY_WEIGHTS)[0]
        self.org = rng.random() < 0.08
        self.price_sensitivity = rng.random() ** 0.8
        self.exposure = city.network + rng.gauss(0, 0.5)
        u = rng.random()
        self.reliability = (
            rng.uniform(0.88, 0.995) if u < 0.8 else rng.uniform(0.55, 0.88) if u < 0.95 else 0.1 + 0.45 * rng.random()
        )
        self.trip_rate = 0.0 if rng.random() < 0.7 else rng.uniform(0.05, 0.35)
        self.engagement = 0.0
        self.switching = False
        first = sim.calendar[0].first
        self.joined_in: int | None = None
        if rng.random() < 0.12 and pop.months > 1:
            self.joined_in = rng.randrange(1, pop.months)
            mon = sim.calendar[self.joined_in]
            joined = mon.first + timedelta(days=rng.randrange(len(mon.days)))
        else:
            joined = first - timedelta(days=int(rng.expovariate(1 / 1300)) + rng.randint(1, 60))
        self.contract_end: date | None = None
        if not self.org and rng.random() < 0.35:
            if self.joined_in is None:
                self.contract_end = first + timedelta(days=rng.randint(-90, 700))
                joined = min(joined, self.contract_end - timedelta(days=730))
            else:
                self.contract_end = joined + timedelta(days=rng.choice((365, 730)))
        self.joined = joined
        self.postpaid = self.org or rng.random() < 0.72
        self.dealer = f"DLR-{city.code}-{rng.randint(1, 60):03d}" if self.org or rng.random() < 0.5 else None
        channels = ("bank_transfer", "counter") if self.org else ("wechat_pay", "alipay", "app", "counter")
        self.channel = rng.choices(channels, (8, 2) if self.org else (40, 32, 18, 10))[0]
        self.auto_debit = self.postpaid and rng.random() < (0.3 if self.org else 0.25)
        self.credit_limit = (100_000 if self.org else rng.choice((5_000, 10_000, 20_000))) if self.postpaid else 0
        if self.org:
            self.party: dict[str, Any] = {
                "name": f"{city.name}{rng.choice(COMPANY_WORDS)}{rng.choice(TRADES)}有限公司",
                "type": "organization",
                "region": city.code,
            }
        else:
            born = date(rng.randint(1955, 2006), rng.randint(1, 12), rng.randint(1, 28))
            area = city.area if rng.random() < 0.7 else rng.choice(BORN_ELSEWHERE)
            self.party = {
                "name": rng.choice(SURNAMES) + rng.choice(GIVEN),
                "type": "individual",
                "region": city.code,
                "id_card_no": id_card(rng, area, born),
            }
        count = rng.randint(2, 8) if self.org else rng.choices((1, 2, 3), (75, 20, 5))[0]
        heavy = rng.lognormvariate(0, 0.5)
        self.lines: list[_Line] = []
        for line_no in range(1, count + 1):
            data_mean = 450 * heavy * rng.lognormvariate(0, 0.6)
            if self.org:
                plan = PLANS[4] if rng.random() < 0.7 else rng.choice(PERSONAL_POSTPAID[1:3])
            else:
                plan = self._fitting_plan(data_mean * 30)
            msisdn = rng.choice(PREFIXES) + f"{(n * 100 + line_no) * 73_939_133 % 100_000_000:08d}"
            line = _Line(n, line_no, msisdn, plan, joined)
            line.data_mean = data_mean
            line.voice_mean = (12 if self.org else 6) * rng.lognormvariate(0, 0.7)
            line.sms_mean = rng.uniform(0.2, 2.5)
            line.balance = rng.randint(500, 6000) if plan.prepaid else 0
            self.lines.append(line)
        self.seq = 0
        self.agenda: list[tuple[date, int, int, str, Any]] = []
        self.invoices: list[_Invoice] = []
        self.episode: tuple[date, date | None] | None = None
        self.pending_invoice: dict[str, Any] | None = None
        self.activity: list[float] = []
        self.spend: list[int] = []
        self.trouble: list[int] = []
        self.data_ratio = 1.0
        self.truth = CustomerTruth(self.cid)
        self.done = False
        self.barred = False  # postpaid lines barred for arrears (单停/双停)
        self.status = "normal"
        self.others: list[tuple[int, int, int, dict[str, Any]]] = []
        self.trouble_now = 0
        self.complaint_rng = random.Random(f"{pop.seed}:complaints:{n}")
        self.addon_rng = random.Random(f"{pop.seed}:addons:{n}")
        self.ticket_log: list[tuple[datetime, int, dict[str, Any]]] = []

    def _fitting_plan(self, monthly_mb: float) -> Plan:
        """Most pick the plan their usage fits; some pay for far more than they use, some far less."""
        rng = self.rng
        if not self.postpaid:
            return PREPAID[1] if monthly_mb > 6 * GB else PREPAID[0]
        if rng.random() < 0.3:
            return rng.choice(PERSONAL_POSTPAID)
        return next((p for p in PERSONAL_POSTPAID if p.data_mb >= monthly_mb * 0.8), PERSONAL_POSTPAID[-1])

    def _id(self, code: str) -> str:
        self.seq += 1
        return f"SIM-{code}-{self.n:07d}-{self.seq}"

    def _line_record(self, line: _Line, kind: str, day: date, minute: int, **extra: Any) -> dict[str, Any]:
        data = {**line.ids, "occurred_at": _at(day, minute), **extra}
        return {"event_id": self._id(kind[:3].upper()), "event_type": f"subscription.{kind}", "data": data}

    def _account_record(self, event_type: str, day: date, minute: int, **extra: Any) -> dict[str, Any]:
        code = "".join(part[:2] for part in event_type.split(".")).upper()
        data = {"customer_id": self.cid, "account_id": self.aid, "occurred_at": _at(day, minute), **extra}
        return {"event_id": self._id(code), "event_type": event_type, "data": data}

    def _plan_later(self, day: date, minute: int, action: str, payload: Any = None) -> None:
        self.seq += 1
        heapq.heappush(self.agenda, (day, minute, self.seq, action, payload))

    # -- the month ------------------------------------------------------------------------------------------------

    def month(self, mon: _Month) -> Iterator[dict[str, Any]]:
        """The order of a month: activation, last month's bill, churn draw, what falls due (payments, dunning),
        plan and credit changes, SIM swaps, daily usage (prepaid balance with it), add-on orders on that use, leaving,
        month-end bill."""
        if self.done or (self.joined_in is not None and mon.index < self.joined_in):
            return
        self.others = []
        self.trouble_now = 0
        first_day = 0
        if mon.index == (self.joined_in or 0):
            first_day = max((self.joined - mon.first).days, 0)
            minute = self.rng.randint(540, 1200)
            for line in self.lines:
                self._activate(line, mon, first_day if self.joined_in is not None else -1, minute)
        full_month = mon.index > (self.joined_in or -1)
        self._issue_invoice(mon)
        churn_day, kind, operator = self._churn(mon) if full_month and self._open_lines() else (None, None, None)
        for line in self.lines:
            line.close_day = churn_day if not line.closed else None
        blocked = self._dunning(mon)
        if churn_day is not None and all(line.closed or line.close_day != churn_day for line in self.lines):
            churn_day = None  # closed for arrears first
        if full_month:
            self._plan_changes(mon)
            self._credit_limit(mon)
        self._sim_swaps(mon, churn_day if kind == "ported_out" else None)
        usage: list[list[dict[str, Any]]] = [[] for _ in mon.days] if self.sim.usage else []
        totals = [0, 0]
        for line in self.lines:
            if not line.closed or line.close_day is not None:
                self._use(line, mon, first_day, blocked, usage, totals)
        self._addons(mon)
        if churn_day is not None:
            self._leave(mon, churn_day, kind, operator)
        ends = [len(mon.days) if line.close_day is None else line.close_day for line in self.lines if line.fee_days > 0]
        self._complain(mon, first_day, max(ends, default=0))
        self._close_month(mon, full_month, totals)
        yield from self._merged(usage)

    def _merged(self, usage: list[list[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
        """Usage of day i is recorded at 01:30 on day i+1, before anything else that day."""
        others = sorted(self.others, key=lambda o: o[:3])
        j = 0
        while j < len(others) and others[j][0] < 0:
            yield others[j][3]
            j += 1
        for i in range(len(usage) + 1 if usage else 0):
            if i:
                yield from usage[i - 1]
            while j < len(others) and others[j][0] == i:
                yield others[j][3]
                j += 1
        for o in others[j:]:
            yield o[3]

    def _add(self, day_index: int, minute: int, record: dict[str, Any]) -> None:
        self.seq += 1
        self.others.append((day_index, minute, self.seq, record))

    def _add_apart(self, day_index: int, minute: int, record: dict[str, Any]) -> None:
        """As `_add`, but taking no sequence number, which the other records' ids use: a record drawn apart leaves
        them as they were."""
        self.others.append((day_index, minute, -len(self.others) - 1, record))

    def _open_lines(self) -> list[_Line]:
        return [line for line in self.lines if not line.closed]

    def _activate(self, line: _Line, mon: _Month, day_index: int, minute: int) -> None:
        data: dict[str, Any] = {
            **line.ids,
            "occurred_at": _at(line.activated, minute),
            "customer": self.party,
            "plan": line.plan.wire(),
            "payment_mode": "prepaid" if line.plan.prepaid else "postpaid",
        }
        if self.contract_end:
            data["contract_end"] = self.contract_end.isoformat()
        if self.dealer:
            data["dealer_code"] = self.dealer
        self._add(
            day_index,
            minute,
            {"event_id": f"SIM-ACT-{line.sub_id}", "event_type": "subscription.activated", "data": data},
        )

    # -- churn ------------------------------------------------------------------------------------------------------

    def _network(self, mon: _Month) -> float:
        """The customer's network badness this month: its own cells plus its city's trouble."""
        return self.exposure + self.sim.market.trouble[self.city.code][mon.index]

    def _bill_shock(self) -> float:
        if len(self.spend) < 2:
            return 0.0
        before = self.spend[-4:-1]
        usual = sum(before) / len(before)
        return min(max(self.spend[-1] / usual - 1.2, 0.0), 1.5) if usual > 0 else 0.0

    def _unresolved(self, mon: _Month) -> int:
        """Complaints and trouble tickets open on the 1st or reopened in the 61 days before it, up to 3."""
        if not self.truth.complaints:
            return 0
        first = _midnight(mon.first)
        since = first - timedelta(days=61)
        return min(
            sum(
                c.ticket_type != "inquiry"
                and (c.open_at(first) or (c.reopened_at is not None and since <= c.reopened_at < first))
                for c in self.truth.complaints
            ),
            3,
        )

    def drivers(self, mon: _Month) -> Drivers:
        decline = 0.0
        if len(self.activity) >= 2:
            before = self.activity[-4:-1]
            usual = sum(before) / len(before)
            decline = max(0.0, 1.0 - self.activity[-1] / usual) if usual > 0 else 0.0
        offer = self.sim.market.offer[self.city.code][mon.index]
        end = self.contract_end
        return Drivers(
            usage_decline=round(decline, 4),
            bill_shock=round(self._bill_shock(), 4),
            contract_ending=end is not None and mon.first - timedelta(days=61) <= end < mon.next_first,
            payment_trouble=min(sum(self.trouble[-3:]), 3),
            tenure_months=(mon.first - self.joined).days // 30,
            overpaying=self.data_ratio < 0.25 and max(line.plan.fee_fen for line in self._open_lines()) >= 12900,
            organisation=self.org,
            network=round(self._network(mon), 4),
            competitor_offer=round(offer[1] * self.price_sensitivity, 4) if offer else 0.0,
            unresolved_complaints=self._unresolved(mon),
        )

    def _churn(self, mon: _Month) -> tuple[int | None, str | None, str | None]:
        """Draw this month's churn against the hazard; move the engagement walk and the competitor trial."""
        rng = self.rng
        d = self.drivers(mon)
        hazard = _sigmoid(d.logit() + rng.gauss(0, CHURN_NOISE))
        self.truth.months.append(MonthTruth(mon.period, d, round(hazard, 6)))
        if self.switching:
            self.switching = rng.random() > 0.2
        elif rng.random() < 0.3 * d.competitor_offer + 0.01 * max(d.network, 0.0):
            self.switching = True
        self.engagement = 0.75 * self.engagement + rng.gauss(0, 0.08) - (0.3 if self.switching else 0.0)
        if rng.random() >= hazard:
            return None, None, None
        offer = self.sim.market.offer[self.city.code][mon.index]
        day = rng.randrange(len(mon.days))
        if rng.random() < (0.75 if offer else 0.4):
            operator = offer[0] if offer and rng.random() < 0.8 else rng.choices(COMPETITORS, COMPETITOR_SHARE)[0]
            return day, "ported_out", operator
        return day, "terminated", None

    def _leave(self, mon: _Month, day_index: int, kind: str | None, operator: str | None) -> None:
        minute = self.rng.randint(600, 1080)
        day = mon.first + timedelta(days=day_index)
        for line in self.lines:
            if line.close_day != day_index or line.closed:
                continue
            extra = {"recipient_operator": operator} if kind == "ported_out" else {"reason": "customer_request"}
            self._add(day_index, minute, self._line_record(line, str(kind), day, minute, **extra))
            line.closed = True
        self._gone(mon, str(kind))

    def _gone(self, mon: _Month, kind: str) -> None:
        if self.truth.churn_period is None and not self._open_lines():
            self.truth.churn_period, self.truth.churn_kind = mon.period, kind

    # -- tickets (投诉/障碍申告) ---------------------------------------------------------------------------------------

    def _complain(self, mon: _Month, start: int, end: int) -> None:
        """The tickets raised on days [start, end) of the month, the days the customer has a line, in time order."""
        if end <= start:
            return
        rng = self.complaint_rng
        raised: list[tuple[str, str, str, str]] = []
        if rng.random() < 1 - math.exp(-NETWORK_TICKETS_A_MONTH * math.exp(1.3 * self._network(mon))):
            outage = self.sim.market.trouble[self.city.code][mon.index] > 0
            ticket_type = "trouble" if rng.random() < 0.7 else "complaint"  # 障碍申告 or 投诉
            raised.append((ticket_type, "network_coverage", rng.choice(NETWORK_TITLES), "high" if outage else "medium"))
        shock = self._bill_shock()
        base, per_shock = BILLING_DISPUTES_A_MONTH
        if rng.random() < base + per_shock * shock:
            raised.append(
                ("complaint", "billing_dispute", rng.choice(BILLING_TITLES), "high" if shock >= 1 else "medium")
            )
        if rng.random() < OTHER_TICKETS_A_MONTH:
            ticket_type, category, title = rng.choices(OTHER_TICKETS, OTHER_TICKET_WEIGHTS)[0]
            raised.append((ticket_type, category, title, "low" if ticket_type == "inquiry" else "medium"))
        moments = [
            _midnight(mon.first + timedelta(days=rng.randrange(start, end))) + timedelta(minutes=rng.randint(480, 1320))
            for _ in raised
        ]
        for opened, what in sorted(zip(moments, raised, strict=True)):
            self._ticket(mon, opened, what)

    def _ticket(self, mon: _Month, opened: datetime, what: tuple[str, str, str, str]) -> None:
        """Raise one ticket at `opened` and decide its whole course through the TMF621 states.

        An inquiry is answered in the call. A network ticket where the network is bad is often not fixed: held for
        weeks (挂起, waiting for optimisation or a new site) or resolved and reopened within days (重复投诉), then
        resolved for good weeks later. The resolution clock breaches if it runs past its due time (超时升级)."""
        rng = self.complaint_rng
        ticket_type, category, title, priority = what
        ticket_id = f"TT-SIM-{self.n:07d}-{len(self.truth.complaints) + 1}"
        channel = rng.choices(*TICKET_CHANNELS)[0]
        if ticket_type != "inquiry" and any(c.open_at(opened) for c in self.truth.complaints) and rng.random() < 0.25:
            ticket_type, channel, priority = "complaint", "regulator", "high"  # 越级申诉 to the MIIT
        hours, business_days = SLA_TARGETS.get((category, priority)) or SLA_TARGETS["*", priority]
        due = _business_due(opened, business_days) if business_days else opened + timedelta(hours=hours)
        target = (hours or business_days * BUSINESS_DAY_HOURS) * 3600
        story: list[tuple[datetime, str, dict[str, Any]]] = [
            (
                opened,
                "created",
                {
                    "ticket_type": ticket_type,
                    "category": category,
                    "title": title,
                    "priority": priority,
                    "state": "acknowledged",
                    "sla_due_at": due.isoformat(),
                    "channel": channel,
                },
            )
        ]
        held_at = reopened_at = None
        breached = False
        if ticket_type == "inquiry":
            first_resolved = resolved = opened + _hours(rng.uniform(0.05, 0.4))
            state = "acknowledged"
        else:
            responded = opened + _hours(rng.uniform(0.1, 3))
            assignee = f"AGT-{self.city.code}-{rng.randint(1, 80):03d}"
            story.append((responded, "state_changed", _move("acknowledged", "inProgress", "派单处理")))
            state = "inProgress"
            median = 0.3 * (due - opened).total_seconds() / 3600  # most are fixed well within the SLA
            first_resolved = max(opened + _hours(rng.lognormvariate(math.log(median), 0.8)), responded + _hours(0.2))
            if category == "network_coverage":
                not_fixed = min(max(0.1 + 0.3 * self._network(mon), 0.05), 0.85)
            else:
                not_fixed = 0.05 if category == "billing_dispute" else 0.0
            if rng.random() < not_fixed:
                if category == "network_coverage" and rng.random() < 0.5:
                    held_at = responded + _hours(rng.uniform(4, 48))
                    first_resolved = held_at + _hours(24 * rng.uniform(14, 75) + rng.uniform(4, 72))
                else:
                    reopened_at = first_resolved + _hours(rng.uniform(12, 120))
            stop = held_at or first_resolved
            breached = stop > due
            if breached:
                story.append(
                    (
                        due,
                        "sla_breached",
                        {
                            "clock": "resolution",
                            "due_at": due.isoformat(),
                            "elapsed_seconds": target,
                            "target_seconds": target,
                            "priority": priority,
                            "category": category,
                            "escalation_level": 1,
                            "queue": "supervisors",
                            "assignee": assignee,
                        },
                    )
                )
            if held_at is not None:
                story.append((held_at, "state_changed", _move("inProgress", "held", "等待网络优化/新建基站")))
                back = first_resolved - _hours(rng.uniform(4, 72))
                story.append((back, "state_changed", _move("held", "inProgress", "优化完成，复测")))
            resolved = first_resolved
            if reopened_at is not None:
                resolved = reopened_at + _hours(24 * rng.uniform(3, 30))
        reason = rng.choice(RESOLUTIONS.get(category, ("已处理并答复客户",)))
        facts = {
            "ticket_type": ticket_type,
            "category": category,
            "priority": priority,
            "channel": channel,
            "created_at": opened.isoformat(),
            "sla_met": not breached,
            "reason": reason,
        }
        for at, again in ((first_resolved, False), (resolved, True)) if reopened_at else ((resolved, False),):
            if again:
                story.append((reopened_at, "state_changed", _move("resolved", "inProgress", "客户反映问题仍未解决")))
            story.append((at, "state_changed", _move(state, "resolved", reason)))
            seconds = int((at - opened).total_seconds())
            first_contact = not (breached or again)  # an escalation is a transfer
            story.append(
                (
                    at,
                    "resolved",
                    {**facts, "resolution_seconds": seconds, "first_contact": first_contact, "reopened": again},
                )
            )
            state = "inProgress"
        confirmed = reopened_at is None and rng.random() < 0.5
        closed = resolved + (_hours(rng.uniform(1, 24)) if confirmed else timedelta(hours=72))
        why = "客户确认已解决" if confirmed else "回访期满自动关闭"
        story.append((closed, "state_changed", _move("resolved", "closed", why)))
        story.append((closed, "closed", {"category": category, "resolved_at": resolved.isoformat(), "reason": why}))
        csat = None
        if rng.random() < (0.3 if ticket_type == "inquiry" else 0.6):
            days = (resolved - opened).total_seconds() / 86400
            mood = 4.7 - 0.35 * math.log1p(days) - 1.2 * (reopened_at is not None) - 0.6 * (held_at is not None)
            csat = min(max(round(mood - 0.6 * breached + rng.gauss(0, 0.6)), 1), 5)
            comment = None
            if csat <= 2:
                comment = "问题一直没解决" if reopened_at or held_at else "处理太慢了"
            story.append((resolved + _hours(rng.uniform(2, 30)), "csat_recorded", {"score": csat, "comment": comment}))
        self._publish(ticket_id, story)
        self.truth.complaints.append(
            Complaint(ticket_id, ticket_type, category, opened, first_resolved, reopened_at, resolved, breached, csat)
        )

    def _publish(self, ticket_id: str, story: list[tuple[datetime, str, dict[str, Any]]]) -> None:
        """A ticket's story as the CloudEvents ticketing publishes, keyed (subject) by the customer."""
        for j, (at, verb, data) in enumerate(story, 1):
            stamp = at.isoformat()
            event = {
                "specversion": "1.0",
                "id": f"{ticket_id}-{j}",
                "source": TICKET_SOURCE,
                "type": f"ticketing.ticket.{verb}.v1",
                "subject": self.cid,
                "time": stamp,
                "datacontenttype": "application/json",
                "data": {"ticket_id": ticket_id, "customer_id": self.cid, "occurred_at": stamp, **data},
            }
            self.ticket_log.append((at, len(self.ticket_log), event))

    def tickets(self, until: datetime) -> list[dict[str, Any]]:
        """The ticket events published before `until`, in time order."""
        return [event for at, _, event in sorted(self.ticket_log, key=lambda t: t[:2]) if at < until]

    # -- bills, payments, collection ---------------------------------------------------------------------------------

    def _issue_invoice(self, mon: _Month) -> None:
        """Last month's bill on the 1st at 02:00; when and whether it will be paid is decided now."""
        bill, self.pending_invoice = self.pending_invoice, None
        if bill is None:
            return
        rng = self.rng
        due = mon.first + timedelta(days=DUE_DAYS)
        invoice_id = f"INV{self.n:07d}{bill['period'].replace('-', '')}"
        amount = max(sum(item["amount_fen"] for item in bill["items"]), 0)
        self._add(
            0,
            120,
            self._account_record(
                "invoice.issued",
                mon.first,
                120,
                invoice_id=invoice_id,
                billing_period=bill["period"],
                issued_at=_at(mon.first, 120),
                due_date=due.isoformat(),
                currency="CNY",
                amount_due_fen=amount,
                items=bill["items"],
            ),
        )
        if amount <= 0:
            return
        r = self.reliability
        if self.episode is not None and (self.episode[1] is None or self.episode[1] > mon.first):
            paid_on = self.episode[1]
        else:
            if self.auto_debit:
                attempt = mon.first + timedelta(days=4)
                if rng.random() < 0.6 + 0.4 * r:
                    paid_on = attempt
                else:
                    reason = rng.choices(("insufficient_funds", "card_expired", "bank_rejected"), (7, 2, 1))[0]
                    self._plan_later(attempt, 360, "failed", (invoice_id, amount, reason, "auto_debit"))
                    paid_on = self._manual_payment(mon.first + timedelta(days=5), due, r * 0.9)
            else:
                paid_on = self._manual_payment(mon.first + timedelta(days=1), due, r)
            if paid_on is None or paid_on > due:
                self.episode = (due, paid_on)
                for k, status in DUNNING:
                    when = due + timedelta(days=k)
                    if paid_on is None or when < paid_on:
                        self._plan_later(when, 540, "dunning", (k, status))
                if paid_on is not None:
                    self._plan_later(paid_on, 1400, "settled")
        invoice = _Invoice(invoice_id, amount, due, paid_on)
        self.invoices.append(invoice)
        if paid_on is not None:
            self._plan_later(paid_on, rng.randint(420, 1380), "paid", invoice)
        for k in OVERDUE_NOTICES:
            when = due + timedelta(days=k)
            if paid_on is None or when < paid_on:
                self._plan_later(when, 480, "overdue", (invoice, k))

    def _manual_payment(self, earliest: date, due: date, reliability: float) -> date | None:
        rng = self.rng
        if rng.random() < reliability:
            return earliest + timedelta(days=rng.randint(0, max((due - earliest).days, 0)))
        if rng.random() < (1 - reliability) ** 2 * 0.3:
            return None
        late = due + timedelta(days=1 + int(rng.expovariate(1 / (4 + 45 * (1 - reliability)))))
        return late if (late - due).days < 180 else None

    def _dunning(self, mon: _Month) -> list[bool] | None:
        """Run what falls due this month: payments, overdue notices, collection steps with barring and closing.

        Returns, per day, whether the postpaid lines are barred (单停/双停), or None when they never are."""
        barred_since = 0 if self.episode is not None and self.barred else None
        blocked: list[bool] | None = [False] * len(mon.days) if barred_since is not None else None
        while self.agenda and self.agenda[0][0] < mon.next_first:
            day, minute, _, action, payload = heapq.heappop(self.agenda)
            i = (day - mon.first).days
            if action == "paid":
                self._pay(i, day, minute, payload)
            elif action == "failed":
                invoice_id, amount, reason, channel = payload
                self.trouble_now += 1
                self._add(
                    i,
                    minute,
                    self._account_record(
                        "payment.failed",
                        day,
                        minute,
                        payment_id=f"PF{self.n:07d}{self.seq:05d}",
                        amount_fen=amount,
                        channel=channel,
                        invoice_id=invoice_id,
                        reason=reason,
                        attempted_at=_at(day, minute),
                    ),
                )
            elif action == "refund":
                self._add(i, minute, self._account_record("payment.refunded", day, minute, **payload))
            elif action == "overdue":
                invoice, k = payload
                if k == 1:
                    self.trouble_now += 1
                self._add(
                    i,
                    minute,
                    self._account_record(
                        "payment.overdue",
                        day,
                        minute,
                        invoice_id=invoice.invoice_id,
                        amount_overdue_fen=invoice.amount,
                        days_overdue=k,
                        due_date=invoice.due.isoformat(),
                    ),
                )
            elif action == "dunning":
                k, status = payload
                self._collection(i, day, minute, status)
                if status == "soft_suspended":
                    self.barred = True
                    for line in self.lines:
                        if not line.closed and (line.close_day is None or line.close_day > i):
                            self._add(
                                i, minute + 1, self._line_record(line, "suspended", day, minute + 1, reason="arrears")
                            )
                    barred_since = i
                elif status == "with_agency":
                    self.truth.bad_debt = True
                    for line in self.lines:
                        if not line.closed and (line.close_day is None or line.close_day > i):
                            self._add(
                                i, minute + 1, self._line_record(line, "terminated", day, minute + 1, reason="arrears")
                            )
                            line.close_day = i
                            line.closed = True
                    self._gone(mon, "arrears")
                elif status == "written_off":
                    self.invoices.clear()
                    self.episode = None
            elif action == "settled":
                self.episode = None
                self._collection(i, day, minute, "normal")
                if self.barred:
                    self.barred = False
                    for line in self.lines:
                        if not line.closed and (line.close_day is None or line.close_day > i):
                            self._add(i, minute + 1, self._line_record(line, "resumed", day, minute + 1))
                    if barred_since is not None:
                        blocked = blocked or [False] * len(mon.days)
                        for k in range(max(barred_since, 0), i + 1):
                            blocked[k] = True
                        barred_since = None
        if barred_since is not None:
            blocked = blocked or [False] * len(mon.days)
            for k in range(max(barred_since, 0), len(mon.days)):
                blocked[k] = True
        return blocked

    def _collection(self, i: int, day: date, minute: int, status: str) -> None:
        if status == self.status:
            return
        self.status = status
        outstanding = sum(inv.amount for inv in self.invoices)
        self._add(
            i,
            minute,
            self._account_record(
                "account.collection_status_changed", day, minute, status=status, outstanding_fen=outstanding
            ),
        )

    def _pay(self, i: int, day: date, minute: int, invoice: _Invoice) -> None:
        if invoice not in self.invoices:
            return
        self.invoices.remove(invoice)
        rng = self.rng
        channel = (
            "auto_debit" if self.auto_debit and day == invoice.due - timedelta(days=DUE_DAYS - 4) else self.channel
        )
        if channel != "auto_debit" and rng.random() < 0.01:
            self.trouble_now += 1
            self._add(
                i,
                minute - 3,
                self._account_record(
                    "payment.failed",
                    day,
                    minute - 3,
                    payment_id=f"PF{self.n:07d}{self.seq:05d}",
                    amount_fen=invoice.amount,
                    channel=channel,
                    invoice_id=invoice.invoice_id,
                    reason="timeout",
                    attempted_at=_at(day, minute - 3),
                ),
            )
        payment_id = f"PAY{self.n:07d}{self.seq:05d}"
        paid = {
            "payment_id": payment_id,
            "amount_fen": invoice.amount,
            "channel": channel,
            "invoice_id": invoice.invoice_id,
            "paid_at": _at(day, minute),
        }
        self._add(i, minute, self._account_record("payment.received", day, minute, **paid))
        if rng.random() < 0.004 and minute < 1430:
            twice = {**paid, "payment_id": f"PAY{self.n:07d}{self.seq:05d}", "paid_at": _at(day, minute + 2)}
            self._add(i, minute + 2, self._account_record("payment.received", day, minute + 2, **twice))
            back = day + timedelta(days=rng.randint(3, 10))
            refund = {
                "payment_id": twice["payment_id"],
                "refund_id": f"RF{self.n:07d}{self.seq:05d}",
                "amount_fen": invoice.amount,
                "reason": "重复缴费退费",
                "refunded_at": _at(back, 660),
            }
            self._plan_later(back, 660, "refund", refund)

    def _credit_limit(self, mon: _Month) -> None:
        """Lowered after payment trouble, raised now and then for a clean record (星级提升)."""
        if not self.postpaid or not self._open_lines():
            return
        new, reason = self.credit_limit, ""
        if self.trouble and self.trouble[-1] and self.credit_limit > 2_000:
            new, reason = self.credit_limit // 2, "欠费降低信用额度"
        elif len(self.trouble) >= 6 and not any(self.trouble[-6:]) and self.rng.random() < 0.04:
            new, reason = self.credit_limit * 3 // 2, "星级提升"
        if new != self.credit_limit:
            day = mon.first + timedelta(days=2)
            self._add(
                2,
                600,
                self._account_record(
                    "account.credit_limit_changed",
                    day,
                    600,
                    from_limit_fen=self.credit_limit,
                    to_limit_fen=new,
                    reason=reason,
                ),
            )
            self.credit_limit = new

    # -- lines ------------------------------------------------------------------------------------------------------

    def _plan_changes(self, mon: _Month) -> None:
        """Taking effect on the 1st, decided on last month's bill: up after overage, down when paying for air."""
        rng = self.rng
        for line in self._open_lines():
            family = PREPAID if line.plan.prepaid else PERSONAL_POSTPAID if not self.org else (PLANS[4], *PLANS[1:3])
            others = [p for p in family if p != line.plan]
            roll = rng.random()
            if line.data_over_fen >= 3_000 and roll < 0.2:
                bigger = [p for p in others if p.data_mb > line.plan.data_mb]
                new = min(bigger, key=lambda p: p.fee_fen) if bigger else None
            elif self.data_ratio < 0.25 and roll < 0.05 * (0.5 + self.price_sensitivity):
                smaller = [p for p in others if p.fee_fen < line.plan.fee_fen]
                new = max(smaller, key=lambda p: p.fee_fen) if smaller else None
            elif roll > 0.996:
                new = rng.choice(others)
            else:
                new = None
            if new is not None:
                record = self._line_record(
                    line, "plan_changed", mon.first, 150, from_plan_code=line.plan.code, plan=new.wire()
                )
                self._add(0, 150, record)
                line.plan = new

    def _sim_swaps(self, mon: _Month, port_out_day: int | None) -> None:
        """New SIM cards (补换卡) now and then; before some port-outs, the known fraud pattern."""
        rng = self.rng
        for line in self._open_lines():
            day_index = None
            if port_out_day is not None and port_out_day >= 3 and rng.random() < 0.06:
                day_index = port_out_day - rng.randint(1, 3)
                reason = "lost"
            elif rng.random() < 0.008:
                day_index = rng.randrange(len(mon.days))
                reason = rng.choices(("lost", "damaged", "upgrade_5g", "esim_conversion"), (3, 2, 3, 2))[0]
            if day_index is None or (line.close_day is not None and line.close_day <= day_index):
                continue
            if day_index < max((line.activated - mon.first).days + 1, 0):
                continue
            day = mon.first + timedelta(days=day_index)
            minute = rng.randint(600, 1200)
            channel = (
                "online" if reason == "esim_conversion" else rng.choices(("store", "online", "hotline"), (6, 3, 1))[0]
            )
            extra: dict[str, Any] = {
                "new_iccid": _iccid(self.n, line.line_no, line.card + 1),
                "previous_iccid": _iccid(self.n, line.line_no, line.card),
                "reason": reason,
                "channel": channel,
            }
            if channel == "store":
                extra["dealer_code"] = f"DLR-{self.city.code}-{rng.randint(1, 60):03d}"
            line.card += 1
            self._add(day_index, minute, self._line_record(line, "sim_swapped", day, minute, **extra))

    def _addons(self, mon: _Month) -> None:
        """The month's add-on orders (叠加包订购), decided on the month's use of each line: a data pack on the day the
        data neared the allowance, a roaming pack on a trip's first day, a voice pack when the minutes neared theirs,
        now and then an SMS pack or a value-added service on a day of use; never on the day the line opened."""
        rng = self.addon_rng
        for line in self.lines:
            if not line.used_days:
                continue
            orders: list[tuple[int, Addon]] = []
            holds_data = any(a.kind == "data_pack" for a in line.held)
            if line.data_cap_day is not None and not holds_data and rng.random() < DATA_PACK_TAKE:
                orders.append((line.data_cap_day, rng.choices(DATA_PACKS, DATA_PACK_WEIGHTS)[0]))
            if line.trip_days and rng.random() < ROAMING_PACK_TAKE:
                orders.append((line.trip_days[0], ROAMING_PACKS[len(line.trip_days) > 3]))
            if line.voice_cap_day is not None and VOICE_PACK not in line.held and rng.random() < VOICE_PACK_TAKE:
                orders.append((line.voice_cap_day, VOICE_PACK))
            if SMS_PACK not in line.held and rng.random() < SMS_PACK_A_MONTH:
                orders.append((rng.choice(line.used_days), SMS_PACK))
            if rng.random() < VALUE_ADDED_A_MONTH:
                service = rng.choice(VALUE_ADDED)
                if service not in line.held:
                    orders.append((rng.choice(line.used_days), service))
            opened = (line.activated - mon.first).days
            for i, addon in orders:
                minute = rng.randint(420, 1380)
                if i <= opened:
                    continue
                if addon.validity_days is None:
                    line.held.add(addon)
                day = mon.days[i]
                data = {**line.ids, "occurred_at": _at(mon.first + timedelta(days=i), minute), "addon": addon.wire()}
                event_id = f"SIM-ADD-{line.sub_id}-{day.compact}-{addon.code}"
                self._add_apart(
                    i, minute, {"event_id": event_id, "event_type": "subscription.addon_ordered", "data": data}
                )

    def _use(
        self,
        line: _Line,
        mon: _Month,
        first_day: int,
        blocked: list[bool] | None,
        usage: list[list[dict[str, Any]]],
        totals: list[int],
    ) -> None:
        """Daily usage (日话单汇总) of one line; for prepaid lines also the balance, recharges and barring."""
        rng = self.rng
        rnd = rng.random
        network = max(self._network(mon), 0.0)
        level = math.exp(self.engagement + rng.gauss(0, 0.08))
        d_mean = line.data_mean * level * math.exp(-0.3 * network)
        v_mean = line.voice_mean * level * math.exp(-0.15 * network)
        s_mean = line.sms_mean * 2.0
        days = mon.days
        trip: set[int] = set()
        if self.trip_rate and rnd() < self.trip_rate:
            start = rng.randrange(len(days))
            trip = set(range(start, min(start + rng.randint(2, 9), len(days))))
        stray = 0.02 * network if self.city.border else 0.0
        plan = line.plan
        allowance, minutes = plan.data_mb, plan.minutes
        prepaid = plan.prepaid
        start_day = max(first_day, (line.activated - mon.first).days)
        end_day = line.close_day if line.close_day is not None else len(days)
        line.fee_days = max(end_day - start_day, 0)
        fee = plan.fee_fen * line.fee_days // len(days)
        if prepaid:
            line.balance -= fee
        data_used = voice_used = over_gb = data_over = voice_over = roaming_fen = 0
        activity = line_days = 0
        used_days: list[int] = []
        trip_days: list[int] = []
        data_cap_day = voice_cap_day = None
        data_near, voice_near = allowance * DATA_NEAR_CAP, minutes * VOICE_NEAR_CAP
        emit = self.sim.usage
        ids = line.ids
        cid, aid, sub, msisdn = ids["customer_id"], ids["account_id"], ids["subscription_id"], ids["msisdn"]
        for i in range(start_day, end_day):
            if prepaid and not self._prepaid_day(line, mon, i):
                if line.closed:
                    line.fee_days = i - start_day
                    break
                continue
            if blocked is not None and blocked[i]:
                continue
            day = days[i]
            data = int(d_mean * day.data_factor * (0.3 + 1.4 * rnd()))
            voice = int(v_mean * day.voice_factor * (0.2 + 1.6 * rnd()))
            sms = int(s_mean * rnd())
            charged = 0
            roaming = False
            r_voice = r_data = 0
            used_days.append(i)
            if i in trip:
                trip_days.append(i)
                roaming = True
                r_voice, r_data = voice, data
                charged = (ROAMING_DAY_FEN if data else 0) + voice * ROAMING_VOICE_FEN_PER_MINUTE
                roaming_fen += charged
            elif stray and rnd() < stray:
                roaming = True
                r_data = 1 + int(data * 0.3 * rnd())
                data = max(data, r_data)
                charged = ROAMING_DAY_FEN
                roaming_fen += charged
            data_used += data - r_data
            if data_cap_day is None and data_used >= data_near:
                data_cap_day = i
            if data_used > allowance:
                gb = (data_used - allowance + GB - 1) // GB
                if gb > over_gb:
                    extra = (gb - over_gb) * DATA_FEN_PER_GB
                    charged += extra
                    data_over += extra
                    over_gb = gb
            voice_used += voice - r_voice
            if voice_cap_day is None and voice_used >= voice_near:
                voice_cap_day = i
            if voice_used > minutes:
                extra = min(voice - r_voice, voice_used - minutes) * VOICE_FEN_PER_MINUTE
                charged += extra
                voice_over += extra
            if prepaid:
                line.balance -= charged
            activity += data + 10 * voice
            line_days += 1
            if emit:
                summary = {
                    "customer_id": cid,
                    "account_id": aid,
                    "subscription_id": sub,
                    "msisdn": msisdn,
                    "occurred_at": day.recorded_at,
                    "usage_date": day.iso,
                    "voice_minutes": voice,
                    "sms_count": sms,
                    "data_mb": data,
                    "roaming": roaming,
                }
                if roaming:
                    summary["roaming_voice_minutes"] = r_voice
                    summary["roaming_data_mb"] = r_data
                summary["charged_fen"] = charged
                usage[i].append(
                    {"event_id": f"SIM-USE-{sub}-{day.compact}", "event_type": "usage.recorded", "data": summary}
                )
        line.data_used = data_used
        line.used_days, line.trip_days = used_days, trip_days
        line.data_cap_day, line.voice_cap_day = data_cap_day, voice_cap_day
        line.data_over_fen, line.voice_over_fen, line.roaming_fen = data_over, voice_over, roaming_fen
        totals[0] += activity
        totals[1] += line_days

    def _prepaid_day(self, line: _Line, mon: _Month, i: int) -> bool:
        """Start of a prepaid line's day: top up when low (if reliable), barred below zero, closed after 60 days
        barred. Whether the line can be used today."""
        rng = self.rng
        day = mon.first + timedelta(days=i)
        if line.barred_days >= 0:
            if rng.random() < 0.1 + 0.4 * self.reliability:
                minute = rng.randint(480, 1320)
                self._recharge(line, i, day, minute, -line.balance + line.plan.fee_fen)
                self._add(i, minute + 1, self._line_record(line, "resumed", day, minute + 1))
                line.barred_days = -1
                return True
            line.barred_days += 1
            if line.barred_days > PREPAID_CLOSE_AFTER_DAYS:
                self._add(i, 600, self._line_record(line, "terminated", day, 600, reason="arrears"))
                line.closed = True
                line.close_day = i
                self.truth.bad_debt = True
                self._gone(mon, "arrears")
            return False
        if line.balance < RECHARGE_BELOW_FEN:
            if rng.random() < self.reliability:
                self._recharge(line, i, day, rng.randint(480, 1320), 0)
            elif line.balance < 0:
                self.trouble_now += 1
                self._add(i, 130, self._line_record(line, "suspended", day, 130, reason="arrears"))
                line.barred_days = 0
                return False
        return True

    def _recharge(self, line: _Line, i: int, day: date, minute: int, at_least: int) -> None:
        amount = max(self.rng.choice(RECHARGE_AMOUNTS), -(-at_least // 1000) * 1000)
        line.balance += amount
        channel = self.rng.choices(("wechat_pay", "alipay", "recharge_card", "app", "counter"), (40, 30, 10, 12, 8))[0]
        record = self._account_record(
            "payment.recharged",
            day,
            minute,
            subscription_id=line.sub_id,
            msisdn=line.ids["msisdn"],
            recharge_id=f"RC{self.n:07d}{self.seq:05d}",
            amount_fen=amount,
            channel=channel,
            balance_after_fen=line.balance,
            recharged_at=_at(day, minute),
        )
        self._add(i, minute, record)

    # -- month end --------------------------------------------------------------------------------------------------

    def _close_month(self, mon: _Month, full_month: bool, totals: list[int]) -> None:
        """Bill the month (issued on the next 1st) and keep what next month's drivers look back on."""
        items: list[dict[str, Any]] = []
        spend = 0
        for line in self.lines:
            if line.fee_days <= 0:
                continue
            fee = line.plan.fee_fen * line.fee_days // len(mon.days)
            spend += fee + line.data_over_fen + line.voice_over_fen + line.roaming_fen
            if line.plan.prepaid:
                continue
            items.append(
                {
                    "subscription_id": line.sub_id,
                    "code": "MONTHLY_FEE",
                    "description": f"{line.plan.name}月租",
                    "amount_fen": fee,
                }
            )
            if self.org and fee:
                discount = -int(fee * ORG_DISCOUNT)
                items.append(
                    {
                        "subscription_id": line.sub_id,
                        "code": "DISCOUNT",
                        "description": "集团优惠",
                        "amount_fen": discount,
                    }
                )
                spend += discount
            for code, text, amount in (
                ("DATA_OVERAGE", "套外流量费", line.data_over_fen),
                ("VOICE_OVERAGE", "套外语音费", line.voice_over_fen),
                ("ROAMING", "漫游费", line.roaming_fen),
            ):
                if amount:
                    items.append(
                        {"subscription_id": line.sub_id, "code": code, "description": text, "amount_fen": amount}
                    )
        if items:
            self.pending_invoice = {"period": mon.period, "items": items}
        allowance = sum(line.plan.data_mb * line.fee_days for line in self.lines) / len(mon.days)
        used = sum(line.data_used for line in self.lines)
        for line in self.lines:
            line.fee_days = line.data_used = line.data_over_fen = line.voice_over_fen = line.roaming_fen = 0
            line.used_days, line.trip_days, line.data_cap_day, line.voice_cap_day = [], [], None, None
        if full_month:
            if totals[1]:
                self.activity.append(totals[0] / totals[1])
                self.spend.append(spend)
                self.data_ratio = used / allowance if allowance else 1.0
            self.trouble.append(self.trouble_now)
        if not self._open_lines() and not self.invoices and self.pending_invoice is None and not self.agenda:
            self.done = True


class Simulation:
    """One run over a population: iterate it for the BOSS records; `truth` and `tickets` fill in as customers are
    simulated.

    `tickets` are the ticketing.ticket CloudEvents (as dicts) the ticketing service would have published by the end
    of the last month, customer after customer, each customer's in time order; a customer's are there once its
    records have all been yielded. With `usage=False` the daily usage records are not built (everything else, the
    truth and the tickets, is the same): what a quick look at churn needs.

    `open_lines` gives, per customer id, the lines still open at the end, in line order (customers with none are
    absent): who a score or a campaign can still reach.
    """

    def __init__(self, population: Population, *, usage: bool = True) -> None:
        self.population = population
        self.usage = usage
        self.calendar = _calendar(population)
        self.market = _Market(population.seed, population.months)
        self.end = _midnight(self.calendar[-1].next_first)  # the simulation's end, China Standard Time
        self.truth: dict[str, CustomerTruth] = {}
        self.tickets: list[dict[str, Any]] = []
        self.open_lines: dict[str, list[LineAtEnd]] = {}
        self._fresh_hazard: dict[str, float] = {}  # joiners of the last month, who had no churn draw
        self._ended = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for n in range(1, self.population.customers + 1):
            customer = _Customer(n, self)
            self.truth[customer.cid] = customer.truth
            for mon in self.calendar:
                yield from customer.month(mon)
            self.tickets.extend(customer.tickets(self.end))
            self._at_end(customer)
        self._ended = True

    def _at_end(self, customer: _Customer) -> None:
        """Keep the customer's open lines; for a joiner of the last month, never drawn against, the hazard its
        drivers give at the end (no noise): a score needs one."""
        still = [
            LineAtEnd(**line.ids, plan=line.plan, organisation=customer.org)
            for line in customer.lines
            if not line.closed
        ]
        if not still:
            return
        self.open_lines[customer.cid] = still
        if not customer.truth.months:
            drivers = customer.drivers(self.calendar[-1])
            self._fresh_hazard[customer.cid] = round(_sigmoid(replace(drivers, tenure_months=0).logit()), 6)

    def last_hazard(self, customer_id: str) -> float:
        """The churn hazard of the customer's last simulated month: what the truth knows of its risk at the end."""
        months = self.truth[customer_id].months
        return months[-1].hazard if months else self._fresh_hazard[customer_id]


def records(population: Population) -> Iterator[dict[str, Any]]:
    """Every customer's BOSS records, customer after customer, each customer's in time order."""
    return iter(Simulation(population))


def churn_truth(population: Population) -> dict[str, CustomerTruth]:
    """Per customer id: the churn month and kind (or None), bad debt, the drivers and hazard of every month, and
    the tickets raised."""
    sim = Simulation(population, usage=False)
    for _ in sim:
        pass
    return sim.truth


def ticket_events(population: Population) -> list[dict[str, Any]]:
    """The ticketing.ticket events of the population's complaints, customer after customer, each in time order:
    what the churn feature store learns of tickets, beside the BOSS records."""
    sim = Simulation(population, usage=False)
    for _ in sim:
        pass
    return sim.tickets


# -- what a campaign meets: churn scores and the market's answer to an offer ---------------------------------------

CHURN_SOURCE = "/crm/churn"
SCORE_HORIZON_MONTHS = 2  # the churn model's 60 days
SIM_NAMESPACE = uuid.UUID("5f0c1e52-7b8e-4c1a-9d0b-0a5c2f3e8d11")  # of the uuid5 ids of the events made here


def _require_end(sim: Simulation) -> None:
    if not sim._ended:
        raise RuntimeError("iterate the simulation to its end first: open lines and truth fill in as it runs")


def _aware(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, got {value!r}")
    return value


def churn_score_events(
    sim: Simulation,
    scored_at: datetime,
    *,
    high_share: float = 0.1,
    medium_share: float = 0.2,
    model_version: str = "sim-churn-1",
) -> list[dict[str, Any]]:
    """The churn.score.computed.v1 events (as dicts) a perfect churn model would publish at `scored_at` for every
    customer with a line open at the end, in customer order: score = the truth's chance of leaving within 60 days,
    1 - (1 - h)², h the hazard of the customer's last month. Bands by rank, as a campaign sizes its 维系 list: the
    top `high_share` high (高危), the next `medium_share` medium (中危), ties by customer id.

    Reasons stay empty: the truth's drivers include latent ones no feature store has. Ids are uuid5 of what decides
    the event, so the same run gives the same stream."""
    _require_end(sim)
    _aware(scored_at, "scored_at")
    for name, share in (("high_share", high_share), ("medium_share", medium_share)):
        if not 0 <= share <= 1:
            raise ValueError(f"{name} must be within [0, 1], got {share!r}")
    if high_share + medium_share > 1:
        raise ValueError(f"high_share + medium_share must be at most 1, got {high_share + medium_share!r}")
    if not 1 <= len(model_version) <= 64:
        raise ValueError("model_version must be 1 to 64 characters")
    scores = {cid: Decimal(f"{1 - (1 - sim.last_hazard(cid)) ** SCORE_HORIZON_MONTHS:.4f}") for cid in sim.open_lines}
    ranked = sorted(scores, key=lambda cid: (-scores[cid], cid))
    high = round(high_share * len(ranked))
    medium = round((high_share + medium_share) * len(ranked)) - high
    band = {cid: "high" if i < high else "medium" if i < high + medium else "low" for i, cid in enumerate(ranked)}
    stamp = scored_at.astimezone(SHANGHAI).isoformat()
    pop = sim.population
    run = f"{pop.seed}:{pop.customers}:{pop.start.isoformat()}:{pop.months}:{high_share}:{medium_share}"
    events = []
    for cid in sim.open_lines:
        events.append(
            {
                "specversion": "1.0",
                "id": str(uuid.uuid5(SIM_NAMESPACE, f"churn-score:{run}:{model_version}:{stamp}:{cid}")),
                "source": CHURN_SOURCE,
                "type": "churn.score.computed.v1",
                "subject": cid,
                "time": stamp,
                "datacontenttype": "application/json",
                "data": {
                    "customer_id": cid,
                    "occurred_at": stamp,
                    "model_kind": "churn",
                    "score": str(scores[cid]),
                    "risk_band": band[cid],
                    "model_version": model_version,
                    "reasons": [],
                    "scored_at": stamp,
                },
            }
        )
    return events


def _offered(plan_code: str, name: str = "plan_code") -> Plan:
    plan = next((p for p in PLANS if p.code == plan_code), None)
    if plan is None or plan.prepaid:
        postpaid = ", ".join(p.code for p in PLANS if not p.prepaid)
        raise ValueError(f"{name} must be a postpaid plan ({postpaid}), got {plan_code!r}")
    return plan


@dataclass(frozen=True)
class OfferEffect:
    """The effect the simulated market gives a plan offer (套餐升档营销): of the eligible, `base_rate` move a line to
    `plan_code` within `window_days` on their own; of the contacted, base_rate + lift. `lift` is what a campaign's
    uplift (treatment - control) should measure. `seed` draws the outcomes, apart from the population's."""

    plan_code: str
    base_rate: float
    lift: float
    window_days: int = 30
    seed: int = 7

    def __post_init__(self) -> None:
        _offered(self.plan_code)
        if not 0 <= self.base_rate <= 1:
            raise ValueError(f"base_rate must be within [0, 1], got {self.base_rate!r}")
        if not 0 <= self.lift <= 1:
            raise ValueError(f"lift must be within [0, 1], got {self.lift!r}")
        if self.base_rate + self.lift > 1:
            raise ValueError(f"base_rate + lift must be at most 1, got {self.base_rate + self.lift!r}")
        if isinstance(self.window_days, bool) or not isinstance(self.window_days, int) or self.window_days < 1:
            raise ValueError(f"window_days must be a whole number of days, at least 1, got {self.window_days!r}")

    @property
    def window(self) -> timedelta:
        return timedelta(days=self.window_days)


def _first_eligible(lines: list[LineAtEnd], plan_code: str) -> LineAtEnd | None:
    return next((line for line in lines if not line.plan.prepaid and line.plan.code != plan_code), None)


def eligible_for_offer(sim: Simulation, plan_code: str) -> set[str]:
    """Customers with a postpaid line open at the end that is not on `plan_code`: who can take the offer.
    Individuals and organisations (政企) alike, barred lines included; choosing among them is the campaign's
    audience, not the market's. Prepaid lines cannot change to a postpaid plan here (that is a 预转后, not 升档)."""
    _require_end(sim)
    _offered(plan_code)
    return {cid for cid, lines in sim.open_lines.items() if _first_eligible(lines, plan_code) is not None}


def offer_responses(
    sim: Simulation, effect: OfferEffect, contacted: Mapping[str, datetime], since: datetime
) -> list[dict[str, Any]]:
    """The BOSS plan_changed records of the eligible customers who take `effect.plan_code` within
    [since, since + window), in time order: what the campaign's attribution (效果归因) will see.

    Each eligible customer takes it on their own with probability base_rate, at a uniform time in the window; a
    contacted one (`contacted`: customer id → when the contact was sent) who does not, takes it with probability
    lift / (1 - base_rate) at a uniform time between the contact and the window's end, so P(take | contacted) is
    base_rate + lift. One record per customer, on its first eligible line. Each customer draws from a generator of
    its own (effect seed, population seed, plan, customer number): its outcome does not depend on who else is in the
    population or contacted, and the organic takers are the same whatever the lift. Contacts of customers who are
    not eligible are ignored.

    `since` must not be before the simulation's end (the lines are as they are at the end) and every contact must
    fall in the window; times must be aware."""
    _require_end(sim)
    _aware(since, "since")
    if since < sim.end:
        raise ValueError(f"since must not be before the simulation's end {sim.end.isoformat()}, got {since!r}")
    end = since + effect.window
    for cid, sent in contacted.items():
        _aware(sent, f"contacted[{cid!r}]")
        if not since <= sent < end:
            raise ValueError(f"contacted[{cid!r}] = {sent.isoformat()} is outside the window [since, since + window)")
    plan = _offered(effect.plan_code)
    pop = sim.population
    offer = f"{effect.plan_code}:{effect.base_rate}:{effect.lift}:{effect.window_days}:{effect.seed}"
    tag = uuid.uuid5(SIM_NAMESPACE, f"offer:{offer}:{pop.seed}:{since.astimezone(UTC).isoformat()}").hex[:8]
    convinced = effect.lift / (1 - effect.base_rate) if effect.lift else 0.0
    taken: list[tuple[datetime, int, dict[str, Any]]] = []
    for cid, lines in sim.open_lines.items():
        line = _first_eligible(lines, effect.plan_code)
        if line is None:
            continue
        n = int(cid.removeprefix("CUST"))
        rng = random.Random(f"{effect.seed}:{pop.seed}:offer:{effect.plan_code}:{n}")
        organic, organic_at, persuaded, persuaded_at = rng.random(), rng.random(), rng.random(), rng.random()
        sent = contacted.get(cid)
        if organic < effect.base_rate:
            start, fraction = since, organic_at
        elif sent is not None and persuaded < convinced:
            start, fraction = sent, persuaded_at
        else:
            continue
        at = start + timedelta(seconds=math.floor(fraction * (end - start).total_seconds()))
        data = {
            "customer_id": line.customer_id,
            "account_id": line.account_id,
            "subscription_id": line.subscription_id,
            "msisdn": line.msisdn,
            "occurred_at": at.astimezone(SHANGHAI).isoformat(),
            "from_plan_code": line.plan.code,
            "plan": plan.wire(),
        }
        record = {"event_id": f"SIM-OFR-{n:07d}-{tag}", "event_type": "subscription.plan_changed", "data": data}
        taken.append((at, n, record))
    taken.sort(key=lambda t: t[:2])
    return [record for _, _, record in taken]


# -- sending ----------------------------------------------------------------------------------------------------------

MAX_BATCH = 5000
BOSS_EVENTS = "/boss/v1/events"
NDJSON = "application/x-ndjson"


@dataclass(frozen=True, slots=True)
class Batch:
    """A ready-to-send NDJSON push body. `follows`: its first customer goes on from the previous batch, so it must
    not overtake that one."""

    body: bytes
    records: int
    follows: bool = False


def ndjson_batches(records: Iterable[dict[str, Any]], batch_size: int = MAX_BATCH) -> Iterator[Batch]:
    """Serialise once, cut at customer boundaries: a customer's records share one batch unless they alone fill one
    (then the next batch `follows`), so concurrent pushes never reorder a customer's events."""
    dumps = orjson.dumps
    lines: list[bytes] = []
    follows = False
    current = None
    start = 0
    for record in records:
        customer = record["data"]["customer_id"]
        if customer != current:
            current, start = customer, len(lines)
        lines.append(dumps(record))
        if len(lines) >= batch_size:
            if start:
                yield Batch(b"\n".join(lines[:start]) + b"\n", start, follows)
                lines, start, follows = lines[start:], 0, False
            else:
                yield Batch(b"\n".join(lines) + b"\n", len(lines), follows)
                lines, follows = [], True
    if lines:
        yield Batch(b"\n".join(lines) + b"\n", len(lines), follows)


class RateLimiter:
    """A token bucket in events/s: tokens accrue at `rate` up to one second's worth, a batch takes its size and
    may leave the bucket in debt, which the next taker waits out. The rate holds over seconds; a sender that fell
    behind catches up by at most one second's worth."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        self.tokens = 0.0
        self.updated = clock()

    async def take(self, n: int) -> None:
        now = self.clock()
        self.tokens = min(self.rate, self.tokens + (now - self.updated) * self.rate) - n
        self.updated = now
        if self.tokens < 0:
            await self.sleep(-self.tokens / self.rate)


@dataclass(frozen=True)
class PushSummary:
    sent: int
    accepted: int
    duplicates: int
    rejected: int
    seconds: float
    rate: float  # records sent per second


class PushRefused(Exception):
    """The receiver refused a batch as a whole (bad signature, bad body, still busy after retries)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


class _Busy(Exception):
    def __init__(self, wait: float) -> None:
        super().__init__(f"503, retry after {wait:g} s")
        self.wait = wait


def retry_after_seconds(value: str | None, *, default: float = 1.0, limit: float = 60.0) -> float:
    """A Retry-After header in seconds, from delta-seconds or an HTTP date; `default` when absent or unreadable."""
    if not value:
        return default
    value = value.strip()
    if value.isdigit():
        return min(float(value), limit)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        return default
    return min(max((when - datetime.now(UTC)).total_seconds(), 0.0), limit)


def _wait(state: RetryCallState) -> float:
    """503: as long as the receiver asked; a connection error: exponential backoff, 0.2 s doubling up to 5 s."""
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, _Busy):
        return error.wait
    return min(0.2 * 2 ** (state.attempt_number - 1), 5.0)


async def _send(
    client: httpx.AsyncClient, url: str, body: bytes, *, source: str, secret: str, gzip: bool, attempts: int
) -> dict[str, Any]:
    headers = {"Content-Type": NDJSON}
    if gzip:
        headers["Content-Encoding"] = "gzip"
    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(attempts),
            wait=_wait,
            retry=retry_if_exception_type((_Busy, httpx.TransportError)),
            reraise=True,
        ):
            with attempt:
                signed = {**headers, **signed_headers(source, secret, body)}  # signed afresh: the timestamp is checked
                response = await client.post(url, content=body, headers=signed)
                if response.status_code == 503:
                    raise _Busy(retry_after_seconds(response.headers.get("Retry-After")))
    except _Busy as busy:
        raise PushRefused(503, f"still unavailable after {attempts} attempts") from busy
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if response.status_code in (202, 422) and isinstance(answer, dict) and "accepted" in answer:
        return answer
    detail = answer.get("detail") if isinstance(answer, dict) else None
    raise PushRefused(response.status_code, str(detail or response.text[:500]))


class _EventsPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:,.0f} events/s", style="progress.data.speed")


async def push(
    url: str,
    batches: Iterable[Batch],
    *,
    source: str = DEV_SOURCE,
    secret: str = DEV_SECRET,
    rate: float | None = None,
    concurrency: int = 4,
    gzip: bool = False,
    progress: bool = True,
    attempts: int = 10,
) -> PushSummary:
    """Send signed `POST {url}/boss/v1/events` pushes, `concurrency` at a time, holding `rate` events/s if given.

    A 503 is retried after its Retry-After, a connection error with backoff; a batch that `follows` waits for
    the one before it. Counts accepted/duplicate/rejected from the receipts; PushRefused if a batch is refused.
    """
    endpoint = url.rstrip("/") + BOSS_EVENTS
    limiter = RateLimiter(rate) if rate else None
    pending = iter(batches)
    previous: asyncio.Event | None = None
    totals = {"sent": 0, "accepted": 0, "duplicates": 0, "rejected": 0}
    columns = (TextColumn("BOSS push"), BarColumn(), TextColumn("{task.completed:,.0f} events"), _EventsPerSecond())
    started = time.monotonic()
    with Progress(*columns, TimeElapsedColumn(), disable=not progress) as bar:
        task = bar.add_task("push", total=None)
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:

            async def worker() -> None:
                nonlocal previous
                for batch in pending:
                    done, before = asyncio.Event(), previous
                    previous = done
                    try:
                        if batch.follows and before is not None:
                            await before.wait()
                        if limiter:
                            await limiter.take(batch.records)
                        body = gzip_codec.compress(batch.body, 1) if gzip else batch.body
                        receipt = await _send(
                            client, endpoint, body, source=source, secret=secret, gzip=gzip, attempts=attempts
                        )
                    finally:
                        done.set()
                    totals["sent"] += batch.records
                    for key in ("accepted", "duplicates", "rejected"):
                        totals[key] += int(receipt[key])
                    bar.advance(task, batch.records)

            try:
                async with asyncio.TaskGroup() as group:
                    for _ in range(concurrency):
                        group.create_task(worker())
            except ExceptionGroup as failed:
                raise failed.exceptions[0] from None
    seconds = time.monotonic() - started
    return PushSummary(**totals, seconds=seconds, rate=totals["sent"] / seconds if seconds else 0.0)


def simulate(
    url: Annotated[
        str, typer.Option(help="Where to push: the gateway or the billing adapter")
    ] = "http://127.0.0.1:8000",
    customers: Annotated[int, typer.Option(min=1, help="How many customers")] = 1000,
    months: Annotated[int, typer.Option(min=1, max=120, help="How many calendar months of events")] = 3,
    seed: Annotated[int, typer.Option(help="Same seed, same records")] = 2026,
    rate: Annotated[
        float | None, typer.Option(min=1, help="Events per second to hold; as fast as taken if unset")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=MAX_BATCH, help="Records per push")] = MAX_BATCH,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Pushes in flight")] = 4,
    source: Annotated[str, typer.Option(help="The BOSS source name (X-Boss-Source)")] = DEV_SOURCE,
    secret: Annotated[
        str, typer.Option(envvar="CRM_BOSS_SECRET", show_default=False, help="The source's signing secret")
    ] = DEV_SECRET,
    gzip: Annotated[bool, typer.Option(help="Send (or write) gzip-compressed")] = False,
    out: Annotated[Path | None, typer.Option(help="Write NDJSON to this file instead of pushing")] = None,
) -> None:
    """Generate the population's BOSS events and push them signed (or write them to a file)."""
    batches = ndjson_batches(records(Population(customers=customers, seed=seed, months=months)), batch_size)
    if out is not None:
        count = 0
        with gzip_codec.open(out, "wb") if gzip else out.open("wb") as f:
            for batch in batches:
                f.write(batch.body)
                count += batch.records
        typer.echo(f"{count:,} records written to {out}")
        return
    try:
        summary = asyncio.run(
            push(url, batches, source=source, secret=secret, rate=rate, concurrency=concurrency, gzip=gzip)
        )
    except PushRefused as refused:
        typer.echo(f"push refused: {refused}", err=True)
        raise typer.Exit(1) from refused
    except httpx.TransportError as error:
        typer.echo(f"cannot reach {url}: {error!r}", err=True)
        raise typer.Exit(1) from error
    typer.echo(
        f"{summary.sent:,} records in {summary.seconds:.1f} s ({summary.rate:,.0f}/s): {summary.accepted:,} accepted, "
        f"{summary.duplicates:,} duplicates, {summary.rejected:,} rejected"
    )
    if summary.rejected:
        typer.echo("rejected records are in the adapter's quarantine (GET /boss/v1/quarantine)", err=True)
        raise typer.Exit(1)
