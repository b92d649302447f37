"""Features of a customer as of a moment (特征), computed from the feature store's facts and daily usage.

One function serves training and scoring: `compute(history, snapshots)` gives one row per customer and snapshot
from the rows of `history` that happened before the snapshot, and nothing after it — a training row built today for
last March sees only what was known last March (point-in-time), and a score online sees what it would have seen in
training. Windows are whole Shanghai days before the snapshot's day: usage of a day is known the next morning.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

from crm_churn.domain.store import COLLECTION_STAGES, NETWORK_CATEGORIES, FactKind, local_day

DAY = 86_400
EPOCH = date(1970, 1, 1)


def _yuan(fen: float) -> str:
    return f"{fen / 100:.0f} yuan"


def _pct(x: float) -> str:
    return f"{abs(x) * 100:.0f}%"


def _trend(what: str, zh: str) -> Callable[[float], str]:
    def describe(x: float) -> str:
        direction = "down" if x < 0 else "up"
        return f"{what} {direction} {_pct(x)} on the month before ({zh})"

    return describe


@dataclass(frozen=True)
class Feature:
    """A feature, and how to say a customer's value of it to an agent."""

    name: str
    describe: Callable[[float], str]


FEATURES: tuple[Feature, ...] = (
    Feature("voice_minutes_7d", lambda x: f"{x:.0f} call minutes in the last 7 days (通话)"),
    Feature("voice_minutes_30d", lambda x: f"{x:.0f} call minutes in 30 days (通话)"),
    Feature("voice_minutes_90d", lambda x: f"{x:.0f} call minutes in 90 days (通话)"),
    Feature("sms_30d", lambda x: f"{x:.0f} text messages in 30 days (短信)"),
    Feature("sms_90d", lambda x: f"{x:.0f} text messages in 90 days (短信)"),
    Feature("data_mb_7d", lambda x: f"{x / 1024:.1f} GB of data in the last 7 days (流量)"),
    Feature("data_mb_30d", lambda x: f"{x / 1024:.1f} GB of data in 30 days (流量)"),
    Feature("data_mb_90d", lambda x: f"{x / 1024:.1f} GB of data in 90 days (流量)"),
    Feature("data_mb_per_line_30d", lambda x: f"{x / 1024:.1f} GB of data per line in 30 days (户均流量)"),
    Feature("active_days_30d", lambda x: f"used the phone on {x:.0f} of the last 30 days (活跃天数)"),
    Feature("roaming_days_30d", lambda x: f"roamed on {x:.0f} days in 30 days (漫游)"),
    Feature("roaming_days_90d", lambda x: f"roamed on {x:.0f} days in 90 days (漫游)"),
    Feature("overage_fen_30d", lambda x: f"{_yuan(x)} charged beyond the plan in 30 days (套外费用)"),
    Feature("data_trend_30d", _trend("Data use", "流量下降/上升")),
    Feature("voice_trend_30d", _trend("Call minutes", "通话量变化")),
    Feature("usage_7d_vs_30d", _trend("Last week's data use against the month's", "近期用量变化")),
    Feature("activity_per_line_day_30d", lambda x: f"{x:.0f} units of use per line a day in 30 days (日均使用量)"),
    Feature(
        "activity_decline",
        lambda x: (
            f"use down {_pct(x)} on the three months before (用量下滑)" if x > 0 else "use not falling (用量平稳)"
        ),
    ),
    Feature("recharges_90d", lambda x: f"{x:.0f} top-ups in 90 days (充值次数)"),
    Feature("recharge_fen_90d", lambda x: f"{_yuan(x)} topped up in 90 days (充值金额)"),
    Feature("days_since_recharge", lambda x: f"last top-up {x:.0f} days ago (距上次充值)"),
    Feature("arpu_fen", lambda x: f"ARPU {_yuan(x)} a month over 3 months (ARPU)"),
    Feature("arpu_trend", _trend("Monthly revenue", "ARPU变化")),
    Feature("last_bill_fen", lambda x: f"last bill {_yuan(x)} (上月账单)"),
    Feature("bill_shock", lambda x: f"last bill {_pct(x)} {'above' if x >= 0 else 'below'} the usual (账单突增)"),
    Feature("plan_fee_fen", lambda x: f"plans worth {_yuan(x)} a month (套餐月费)"),
    Feature("prepaid_share", lambda x: f"{_pct(x)} of lines prepaid (预付费)"),
    Feature("late_payments_90d", lambda x: f"{x:.0f} bills paid late in 90 days (逾期缴费)"),
    Feature("failed_payments_90d", lambda x: f"{x:.0f} failed payments in 90 days (扣款失败)"),
    Feature(
        "payment_trouble_90d",
        lambda x: f"{x:.0f} payment troubles in 90 days: failed, overdue or barred (缴费异常)",
    ),
    Feature("max_days_overdue_90d", lambda x: f"a bill {x:.0f} days overdue (欠费天数)"),
    Feature("outstanding_fen", lambda x: f"{_yuan(x)} owed (欠费余额)"),
    Feature("collection_stage", lambda x: f"in collection: {COLLECTION_STAGES[int(x)]} (催缴)"),
    Feature("arrears_suspensions_90d", lambda x: f"barred for arrears {x:.0f} times in 90 days (欠费停机)"),
    Feature("tenure_months", lambda x: f"on the network {x:.0f} months (在网时长)"),
    Feature("lines_open", lambda x: f"{x:.0f} lines open (在用号码)"),
    Feature("lines_closed_90d", lambda x: f"{x:.0f} lines closed in 90 days (部分离网)"),
    Feature(
        "contract_months_left",
        lambda x: (
            f"contract ends in {x:.0f} months (合约到期)"
            if x >= 0
            else f"contract ended {-x:.0f} months ago (合约已到期)"
        ),
    ),
    Feature("plan_changes_90d", lambda x: f"{x:.0f} plan changes in 90 days (套餐变更)"),
    Feature("plan_downgrades_90d", lambda x: f"{x:.0f} plan downgrades in 90 days (降档)"),
    Feature("sim_swaps_90d", lambda x: f"{x:.0f} SIM swaps in 90 days (换卡)"),
    Feature("addons_30d", lambda x: f"{x:.0f} add-ons ordered in 30 days (叠加包订购)"),
    Feature("addons_90d", lambda x: f"{x:.0f} add-ons ordered in 90 days (叠加包订购)"),
    Feature("addon_fen_90d", lambda x: f"{_yuan(x)} spent on add-ons in 90 days (叠加包消费)"),
    Feature("organisation", lambda x: "an organisation customer (政企客户)" if x else "an individual (个人客户)"),
    Feature("tickets_30d", lambda x: f"{x:.0f} tickets in 30 days (工单)"),
    Feature("complaints_90d", lambda x: f"{x:.0f} complaints in 90 days (投诉)"),
    Feature("network_complaints_90d", lambda x: f"{x:.0f} network complaints in 90 days (网络投诉)"),
    Feature("open_tickets", lambda x: f"{x:.0f} tickets still open (未解决工单)"),
    Feature("open_network_tickets", lambda x: f"{x:.0f} network problems still unresolved (网络问题未解决)"),
    Feature("reopened_tickets_90d", lambda x: f"{x:.0f} tickets reopened in 90 days (重复投诉)"),
    Feature("sla_breaches_90d", lambda x: f"{x:.0f} tickets past their deadline in 90 days (超时工单)"),
    Feature("last_csat", lambda x: f"last satisfaction score {x:.0f} of 5 (满意度)"),
    Feature("contacts_30d", lambda x: f"contacted by {x:.0f} campaigns in 30 days (营销触达)"),
    Feature("offers_accepted_90d", lambda x: f"accepted {x:.0f} offers in 90 days (接受优惠)"),
    Feature(
        "region_port_outs_per_1000",
        lambda x: f"{x:.1f} port-outs per 1000 lines in the region in 30 days (区域携转)",
    ),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
BY_NAME = {f.name: f for f in FEATURES}


def describe(name: str, value: float) -> str:
    """What a feature's value means for this customer; a feature from a file has no words, so its name and value."""
    if value != value:  # NaN
        return f"{name}: unknown"
    feature = BY_NAME.get(name)
    return feature.describe(value) if feature is not None else f"{name} = {value:g}"


Table = Mapping[str, Any]
"""Columns by name, each an array (or a pandas Series) of one value per row."""


@dataclass
class History:
    """What the feature store holds about some customers, as tables of columns.

    Days are days since 1970-01-01 (Shanghai calendar), times seconds since 1970 (UTC), None where unknown.
    `usage`: customer_id, day, voice_minutes, sms_count, data_mb, roaming_lines, charged_fen; one row per line and
    day or per customer and day.
    `facts`: customer_id, occurred_at, kind, amount_fen, quantity, detail, ref.
    `lines`: customer_id, subscription_id, activated_at, closed_at, payment_mode, contract_end (a day).
    `profiles`: customer_id, customer_type, region.
    `region_port_outs`: per snapshot (its position) and region, port-outs in the 30 days before it per 1000 open
    lines of the region, or None to compute them from these customers alone (when `facts` and `lines` are the whole
    base's).
    """

    usage: Table
    facts: Table
    lines: Table
    profiles: Table
    region_port_outs: dict[tuple[int, str], float] | None = None


def as_objects(column: Any) -> np.ndarray:
    return np.asarray(column, dtype=object)


def as_floats(column: Any) -> np.ndarray:
    """Numbers (days, seconds, amounts) as floats, NaN where unknown (None)."""
    return np.asarray(column, dtype=np.float64)


def snapshot_seconds(as_of: pd.Series) -> np.ndarray:
    """Snapshot instants as UTC epoch seconds."""
    return np.asarray((pd.to_datetime(as_of, utc=True) - pd.Timestamp(0, tz=UTC)) / pd.Timedelta(seconds=1))


def snapshot_day(moment: datetime) -> int:
    """The snapshot's Shanghai day, as days since 1970-01-01: usage windows end the day before it."""
    return (local_day(moment) - EPOCH).days


USAGE_MEASURES = ("voice_minutes", "sms_count", "data_mb", "roaming_lines", "charged_fen")
_DAY_KEY = 1_000_000
"""Customer position and day packed in one integer (position × _DAY_KEY + day) to group usage rows by both."""


def _ends(group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows sorted by `group`: which rows start a group and which end one."""
    change = group[1:] != group[:-1]
    return np.r_[True, change], np.r_[change, True]


def _codes(values: np.ndarray) -> np.ndarray:
    """Each value as a small integer (equal values, equal integers); None is −1."""
    return pd.factorize(values)[0]


class _Columns:
    """`history`'s columns as arrays with each row's customer as a position in the sorted customer ids.

    Usage is summed per customer and day, with the line-days counted: the store keeps a row per line and day (a
    corrected summary replaces its line's), features are per customer and compare use per line-day, as lines come
    and go."""

    def __init__(self, history: History) -> None:
        u, f, ln, p = history.usage, history.facts, history.lines, history.profiles
        tables = (p, ln, f, u)
        sizes = np.cumsum([0, *(len(t["customer_id"]) for t in tables)])
        codes, self.customers = pd.factorize(np.concatenate([as_objects(t["customer_id"]) for t in tables]), sort=True)
        self.p_code, self.l_code, self.f_code, u_code = (codes[a:b] for a, b in pairwise(sizes))
        self.n = len(self.customers)
        key = u_code.astype(np.int64) * _DAY_KEY + as_floats(u["day"]).astype(np.int64)
        days, per_day = np.unique(key, return_inverse=True)
        self.u_code = days // _DAY_KEY
        self.u_day = (days % _DAY_KEY).astype(np.float64)

        def summed(values: np.ndarray) -> np.ndarray:
            return np.bincount(per_day, weights=values, minlength=len(days))

        self.u = {m: summed(as_floats(u[m])) for m in USAGE_MEASURES}
        self.u["roaming"] = (self.u.pop("roaming_lines") > 0).astype(np.float64)
        self.u["line_days"] = np.bincount(per_day, minlength=len(days)).astype(np.float64)
        self.u["activity"] = self.u["data_mb"] + 10.0 * self.u["voice_minutes"]
        self.u["active"] = ((self.u["voice_minutes"] + self.u["sms_count"] + self.u["data_mb"]) > 0).astype(np.float64)
        self.f_at = as_floats(f["occurred_at"])
        self.f_kind = as_objects(f["kind"])
        self.f_amount = as_floats(f["amount_fen"])
        self.f_quantity = as_floats(f["quantity"])
        self.f_detail = as_objects(f["detail"])
        self.f_ref = as_objects(f["ref"])
        self.l_open = as_floats(ln["activated_at"])
        self.l_close = as_floats(ln["closed_at"])
        self.l_prepaid = (as_objects(ln["payment_mode"]) == "prepaid").astype(np.float64)
        self.l_sub = as_objects(ln["subscription_id"])
        self.l_contract_end = as_floats(ln["contract_end"])
        self.kind_masks = {k: self.f_kind == k.value for k in FactKind}

    def sum_usage(self, measure: str, lo: int, hi: int) -> np.ndarray:
        """Per customer, the measure summed over days lo ≤ day < hi."""
        mask = (self.u_day >= lo) & (self.u_day < hi)
        return np.bincount(self.u_code[mask], weights=self.u[measure][mask], minlength=self.n)

    def facts(self, kind: FactKind, lo: float, hi: float) -> np.ndarray:
        """Which facts are of `kind` and happened lo ≤ at < hi."""
        return self.kind_masks[kind] & (self.f_at >= lo) & (self.f_at < hi)

    def count(self, mask: np.ndarray) -> np.ndarray:
        return np.bincount(self.f_code[mask], minlength=self.n).astype(np.float64)

    def total(self, mask: np.ndarray, values: np.ndarray) -> np.ndarray:
        return np.bincount(self.f_code[mask], weights=np.nan_to_num(values[mask]), minlength=self.n)

    def latest(self, mask: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Per customer, the value of its latest fact in `mask` (NaN when none)."""
        out = np.full(self.n, np.nan)
        idx = np.flatnonzero(mask)
        if len(idx):
            order = idx[np.lexsort((self.f_at[idx], self.f_code[idx]))]
            out[self.f_code[order]] = values[order]  # later rows overwrite earlier ones
        return out

    def maximum(self, mask: np.ndarray, values: np.ndarray) -> np.ndarray:
        out = np.full(self.n, -np.inf)
        np.maximum.at(out, self.f_code[mask], values[mask])
        out[np.isinf(out)] = np.nan
        return out


def _per(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    """total / count, NaN where there is nothing counted."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, total / count, np.nan)


def _ratio(now: np.ndarray, before: np.ndarray) -> np.ndarray:
    """now / before − 1, clipped to [-1, 5]; NaN where there is nothing to compare with."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(before > 0, now / before - 1.0, np.nan)
    return np.clip(r, -1.0, 5.0)


def _open_tickets(c: _Columns, at: float) -> tuple[np.ndarray, np.ndarray]:
    """Per customer, its tickets whose latest event before `at` leaves them open (opened or reopened, not resolved
    or closed since), and how many of those are network problems (by the category the ticket was opened with)."""
    kinds = (FactKind.TICKET_OPENED, FactKind.TICKET_REOPENED, FactKind.TICKET_RESOLVED, FactKind.TICKET_CLOSED)
    mask = np.logical_or.reduce([c.kind_masks[k] for k in kinds]) & (c.f_at < at)
    idx = np.flatnonzero(mask)
    ticket = _codes(c.f_ref[idx])
    idx, ticket = idx[ticket >= 0], ticket[ticket >= 0]
    if not len(idx):
        return np.zeros(c.n), np.zeros(c.n)
    order = np.lexsort((c.f_at[idx], ticket))
    rows, ticket = idx[order], ticket[order]
    _, last = _ends(ticket)
    is_open = np.isin(c.f_kind[rows[last]], (FactKind.TICKET_OPENED.value, FactKind.TICKET_REOPENED.value))
    opened = c.f_kind[rows] == FactKind.TICKET_OPENED.value
    first_opened, _ = _ends(ticket[opened])
    network = np.zeros(int(last.sum()), dtype=bool)
    network[np.searchsorted(ticket[last], ticket[opened][first_opened])] = np.isin(
        c.f_detail[rows[opened][first_opened]], NETWORK_CATEGORIES
    )
    codes = c.f_code[rows[last]]
    return (
        np.bincount(codes[is_open], minlength=c.n).astype(np.float64),
        np.bincount(codes[is_open & network], minlength=c.n).astype(np.float64),
    )


def _region_port_outs(c: _Columns, regions: np.ndarray, at: float) -> dict[str, float]:
    """Port-outs (携号转网) in the 30 days before `at` per 1000 lines open at `at`, by region."""
    ported = c.facts(FactKind.LINE_PORTED_OUT, at - 30 * DAY, at)
    open_lines = (c.l_open < at) & ~(c.l_close < at)
    ported_by = pd.Series(regions[c.f_code[ported]]).value_counts()
    lines_by = pd.Series(regions[c.l_code[open_lines]]).value_counts()
    return {
        str(r): 1000.0 * float(ported_by.get(r, 0)) / float(n) for r, n in lines_by.items() if n > 0 and r is not None
    }


def compute(history: History, snapshots: Sequence[datetime], customers: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per customer with a line open at the snapshot, per snapshot: the columns of `FEATURE_NAMES`
    (float32, NaN where unknown) and `customer_id`, `as_of` (the snapshot instant, UTC).

    `customers` limits the rows (default: every customer in `history`)."""
    c = _Columns(history)
    regions = np.full(c.n, None, dtype=object)
    regions[c.p_code] = as_objects(history.profiles["region"])
    organisation = np.zeros(c.n)
    organisation[c.p_code] = as_objects(history.profiles["customer_type"]) == "organization"
    wanted = np.ones(c.n, dtype=bool) if customers is None else np.isin(c.customers, list(customers))
    frames = []
    for position, snapshot in enumerate(snapshots):
        at = snapshot.astimezone(UTC).timestamp()
        day = snapshot_day(snapshot)
        cols = _snapshot(c, at, day, organisation)
        if history.region_port_outs is not None:
            rates = {r: v for (p, r), v in history.region_port_outs.items() if p == position}
        else:
            rates = _region_port_outs(c, regions, at)
        cols["region_port_outs_per_1000"] = np.asarray([rates.get(r, 0.0) for r in regions], dtype=np.float64)
        keep = wanted & (cols.pop("_lines_open_now") > 0)
        matrix = np.empty((int(keep.sum()), len(FEATURE_NAMES)), dtype=np.float32)
        for j, name in enumerate(FEATURE_NAMES):
            matrix[:, j] = cols[name][keep]
        frame = pd.DataFrame(matrix, columns=list(FEATURE_NAMES), copy=False)
        frame.insert(0, "as_of", pd.Timestamp(snapshot.astimezone(UTC)))
        frame.insert(0, "customer_id", c.customers[keep])
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["customer_id", "as_of", *FEATURE_NAMES])
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _snapshot(c: _Columns, at: float, day: int, organisation: np.ndarray) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    u = c.sum_usage
    for w in (7, 30, 90):
        out[f"voice_minutes_{w}d"] = u("voice_minutes", day - w, day)
        out[f"data_mb_{w}d"] = u("data_mb", day - w, day)
    out["sms_30d"] = u("sms_count", day - 30, day)
    out["sms_90d"] = u("sms_count", day - 90, day)
    out["active_days_30d"] = u("active", day - 30, day)
    out["roaming_days_30d"] = u("roaming", day - 30, day)
    out["roaming_days_90d"] = u("roaming", day - 90, day)
    out["overage_fen_30d"] = u("charged_fen", day - 30, day)
    out["data_trend_30d"] = _ratio(out["data_mb_30d"], u("data_mb", day - 60, day - 30))
    out["voice_trend_30d"] = _ratio(out["voice_minutes_30d"], u("voice_minutes", day - 60, day - 30))
    out["usage_7d_vs_30d"] = _ratio(out["data_mb_7d"] * 30 / 7, out["data_mb_30d"])
    per_line_day = [
        _per(u("activity", day - 30 * (k + 1), day - 30 * k), u("line_days", day - 30 * (k + 1), day - 30 * k))
        for k in range(4)
    ]
    out["activity_per_line_day_30d"] = per_line_day[0]
    before = np.vstack(per_line_day[1:])
    usual = _per(np.nansum(before, axis=0), np.sum(~np.isnan(before), axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        out["activity_decline"] = np.where(usual > 0, np.maximum(0.0, 1.0 - per_line_day[0] / usual), np.nan)

    d90, d30 = at - 90 * DAY, at - 30 * DAY
    recharges = c.facts(FactKind.RECHARGED, d90, at)
    out["recharges_90d"] = c.count(recharges)
    out["recharge_fen_90d"] = c.total(recharges, c.f_amount)
    last_recharge = c.latest(c.facts(FactKind.RECHARGED, -np.inf, at), c.f_at)
    out["days_since_recharge"] = (at - last_recharge) / DAY

    invoices_90 = c.facts(FactKind.INVOICE_ISSUED, d90, at)
    revenue_90 = c.total(invoices_90, c.f_amount) + out["recharge_fen_90d"]
    out["arpu_fen"] = revenue_90 / 3.0
    revenue_30 = c.total(c.facts(FactKind.INVOICE_ISSUED, d30, at), c.f_amount) + c.total(
        c.facts(FactKind.RECHARGED, d30, at), c.f_amount
    )
    out["arpu_trend"] = _ratio(revenue_30, (revenue_90 - revenue_30) / 2.0)
    out["last_bill_fen"], out["bill_shock"] = _bills(c, at)

    open_now = (c.l_open < at) & ~(c.l_close < at)
    out["_lines_open_now"] = np.bincount(c.l_code[open_now], minlength=c.n).astype(np.float64)
    out["lines_open"] = out["_lines_open_now"]
    out["plan_fee_fen"] = _plan_fees(c, at, open_now)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["prepaid_share"] = np.where(
            out["lines_open"] > 0,
            np.bincount(c.l_code[open_now], weights=c.l_prepaid[open_now], minlength=c.n) / out["lines_open"],
            np.nan,
        )
        out["data_mb_per_line_30d"] = np.where(out["lines_open"] > 0, out["data_mb_30d"] / out["lines_open"], np.nan)

    overdue = c.facts(FactKind.PAYMENT_OVERDUE, d90, at)
    out["late_payments_90d"] = c.count(overdue & (c.f_quantity <= 1))
    out["failed_payments_90d"] = c.count(c.facts(FactKind.PAYMENT_FAILED, d90, at))
    out["max_days_overdue_90d"] = np.nan_to_num(c.maximum(overdue, c.f_quantity), nan=0.0)
    ever = -np.inf
    owed = (
        c.total(c.facts(FactKind.INVOICE_ISSUED, ever, at), c.f_amount)
        - c.total(c.facts(FactKind.PAYMENT_RECEIVED, ever, at), c.f_amount)
        + c.total(c.facts(FactKind.PAYMENT_REFUNDED, ever, at), c.f_amount)
    )
    out["outstanding_fen"] = np.maximum(owed, 0.0)
    stage = np.asarray([COLLECTION_STAGES.index(s) if s in COLLECTION_STAGES else 0 for s in c.f_detail], dtype=float)
    out["collection_stage"] = np.nan_to_num(c.latest(c.facts(FactKind.COLLECTION_STATUS, ever, at), stage), nan=0.0)
    suspended = c.facts(FactKind.LINE_SUSPENDED, d90, at) & (c.f_detail == "arrears")
    out["arrears_suspensions_90d"] = c.count(suspended)
    out["payment_trouble_90d"] = np.minimum(
        out["failed_payments_90d"] + out["late_payments_90d"] + out["arrears_suspensions_90d"], 3.0
    )

    first_line = np.full(c.n, np.inf)
    np.minimum.at(first_line, c.l_code[c.l_open < at], c.l_open[c.l_open < at])
    out["tenure_months"] = np.where(np.isfinite(first_line), (at - first_line) / (DAY * 30.44), np.nan)
    closed_90 = (c.l_close >= d90) & (c.l_close < at)
    out["lines_closed_90d"] = np.bincount(c.l_code[closed_90], minlength=c.n).astype(np.float64)
    months_left = np.full(c.n, np.inf)
    has_contract = open_now & ~np.isnan(c.l_contract_end)
    np.minimum.at(months_left, c.l_code[has_contract], (c.l_contract_end[has_contract] - day) / 30.44)
    out["contract_months_left"] = np.where(np.isfinite(months_left), months_left, np.nan)

    changes = c.facts(FactKind.PLAN_CHANGED, d90, at)
    out["plan_changes_90d"] = c.count(changes)
    out["plan_downgrades_90d"] = _downgrades(c, d90, at)
    out["sim_swaps_90d"] = c.count(c.facts(FactKind.SIM_SWAPPED, d90, at))
    addons_90 = c.facts(FactKind.ADDON_ORDERED, d90, at)  # buying beyond the plan: engaged, an upsell candidate
    out["addons_30d"] = c.count(c.facts(FactKind.ADDON_ORDERED, d30, at))
    out["addons_90d"] = c.count(addons_90)
    out["addon_fen_90d"] = c.total(addons_90, c.f_amount)
    out["organisation"] = organisation

    opened_30 = c.facts(FactKind.TICKET_OPENED, d30, at)
    opened_90 = c.facts(FactKind.TICKET_OPENED, d90, at)
    out["tickets_30d"] = c.count(opened_30)
    out["complaints_90d"] = c.count(opened_90 & (c.f_quantity == 1))
    out["network_complaints_90d"] = c.count(opened_90 & np.isin(c.f_detail, NETWORK_CATEGORIES))
    out["open_tickets"], out["open_network_tickets"] = _open_tickets(c, at)
    out["reopened_tickets_90d"] = c.count(c.facts(FactKind.TICKET_REOPENED, d90, at))
    out["sla_breaches_90d"] = c.count(c.facts(FactKind.TICKET_SLA_BREACHED, d90, at))
    out["last_csat"] = c.latest(c.facts(FactKind.CSAT, ever, at), c.f_quantity)
    out["contacts_30d"] = c.count(c.facts(FactKind.CONTACT_SENT, d30, at))
    out["offers_accepted_90d"] = c.count(c.facts(FactKind.CONTACT_RESPONDED, d90, at) & (c.f_detail == "accepted"))
    return out


def _bills(c: _Columns, at: float) -> tuple[np.ndarray, np.ndarray]:
    """The last bill before `at` (within 45 days) and how far it stands above the mean of up to 3 bills before it."""
    idx = np.flatnonzero(c.facts(FactKind.INVOICE_ISSUED, at - 135 * DAY, at))
    last_bill = np.full(c.n, np.nan)
    shock = np.full(c.n, np.nan)
    if not len(idx):
        return last_bill, shock
    rows = idx[np.lexsort((c.f_at[idx], c.f_code[idx]))]
    code, amount = c.f_code[rows], np.nan_to_num(c.f_amount[rows])
    _, last = _ends(code)
    recent = last & (c.f_at[rows] >= at - 45 * DAY)
    last_bill[code[recent]] = amount[recent]
    before = ~last
    usual = _per(
        np.bincount(code[before], weights=amount[before], minlength=c.n),
        np.bincount(code[before], minlength=c.n).astype(np.float64),
    )
    shocked = code[recent][~np.isnan(usual[code[recent]])]
    shock[shocked] = _ratio(last_bill[shocked], usual[shocked])
    return last_bill, shock


def _plan_history(c: _Columns, at: float) -> tuple[np.ndarray, np.ndarray]:
    """The activations and plan changes before `at` by line and time (ties as they came), and each row's line."""
    idx = np.flatnonzero((c.kind_masks[FactKind.LINE_ACTIVATED] | c.kind_masks[FactKind.PLAN_CHANGED]) & (c.f_at < at))
    line = _codes(c.f_ref[idx])
    idx, line = idx[line >= 0], line[line >= 0]
    order = np.lexsort((c.f_at[idx], line))
    return idx[order], line[order]


def _downgrades(c: _Columns, lo: float, at: float) -> np.ndarray:
    """Plan changes lo ≤ at < `at` to a cheaper plan (降档) than the line had: the plan-change event names only the
    old plan's code, so the old fee is the line's previous activation or change."""
    rows, line = _plan_history(c, at)
    if not len(rows):
        return np.zeros(c.n)
    fee = c.f_amount[rows]
    first, _ = _ends(line)
    before = np.where(first, np.nan, np.r_[np.nan, fee[:-1]])
    down = (c.f_kind[rows] == FactKind.PLAN_CHANGED.value) & (c.f_at[rows] >= lo) & (fee < before)
    return np.bincount(c.f_code[rows[down]], minlength=c.n).astype(np.float64)


def _plan_fees(c: _Columns, at: float, open_now: np.ndarray) -> np.ndarray:
    """The monthly fees of the plans of the lines open at `at`, each line's latest plan (activation or change)."""
    rows, line = _plan_history(c, at)
    if not len(rows):
        return np.zeros(c.n)
    _, last = _ends(line)
    latest = rows[last]
    known = len(latest)
    codes = _codes(np.concatenate([c.f_ref[latest], c.l_sub[open_now]]))
    fee_of = np.zeros(codes.max() + 1)
    fee_of[codes[:known]] = np.nan_to_num(c.f_amount[latest])
    opened = codes[known:]
    fees = np.where((opened >= 0) & (opened < known), fee_of[opened], 0.0)
    return np.bincount(c.l_code[open_now], weights=fees, minlength=c.n)
