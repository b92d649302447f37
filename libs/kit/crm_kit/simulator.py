"""A BOSS simulator: the subscription events an operator's billing system would push for a population.

Deterministic for a seed, so `make run` loads the same demo customers every time (re-pushing them is
harmless: the adapter answers `duplicate`). Records are in the BOSS push format the adapter accepts.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from crm_kit.presentation import SHANGHAI

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
COMPANIES = ["腾达科技", "华信物流", "远航贸易", "恒泰建设", "新源医药", "博雅教育", "金桥电子", "蓝海餐饮"]
REGIONS = ["GD-SZ", "GD-GZ", "GD-DG", "BJ", "SH", "ZJ-HZ", "JS-NJ", "SC-CD"]
CITY = {
    "GD-SZ": "深圳市",
    "GD-GZ": "广州市",
    "GD-DG": "东莞市",
    "BJ": "北京市",
    "SH": "上海市",
    "ZJ-HZ": "杭州市",
    "JS-NJ": "南京市",
    "SC-CD": "成都市",
}
AREA_CODES = {
    "GD-SZ": "440300",
    "GD-GZ": "440100",
    "GD-DG": "441900",
    "BJ": "110101",
    "SH": "310101",
    "ZJ-HZ": "330100",
    "JS-NJ": "320100",
    "SC-CD": "510100",
}
PLANS = [
    ("4G-BASIC-39", "4G畅聊套餐39元", 3900),
    ("5G-ULT-129", "5G畅享套餐129元", 12900),
    ("5G-ULT-199", "5G畅享套餐199元", 19900),
    ("5G-FAM-269", "5G全家享套餐269元", 26900),
    ("IOT-10", "物联网卡10元", 1000),
]
PREFIXES = ["133", "135", "138", "139", "150", "153", "177", "180", "186", "189", "199"]
OPERATORS = ["china_mobile", "china_unicom", "china_broadnet"]
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


@dataclass(frozen=True)
class Population:
    customers: int = 200
    seed: int = 2026
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)


def id_card(rng: random.Random, region: str, born: datetime) -> str:
    """A syntactically valid 18-digit resident ID (GB 11643 check digit); not a real person's."""
    body = f"{AREA_CODES[region]}{born:%Y%m%d}{rng.randint(0, 999):03d}"
    check = "10X98765432"[sum(int(d) * w for d, w in zip(body, ID_WEIGHTS, strict=True)) % 11]
    return body + check


def records(population: Population) -> Iterator[dict[str, Any]]:
    """Each customer's events in time order: activation, then perhaps a plan change, suspension, churn."""
    rng = random.Random(population.seed)
    for n in range(1, population.customers + 1):
        yield from _customer_story(rng, n, population.start)


def _customer_story(rng: random.Random, n: int, start: datetime) -> Iterator[dict[str, Any]]:
    region = rng.choice(REGIONS)
    organisation = rng.random() < 0.12
    party: dict[str, Any] = {"type": "organization" if organisation else "individual", "region": region}
    if organisation:
        party["name"] = f"{CITY[region]}{rng.choice(COMPANIES)}有限公司"
    else:
        party["name"] = rng.choice(SURNAMES) + rng.choice(GIVEN)
        born = datetime(rng.randint(1955, 2004), rng.randint(1, 12), rng.randint(1, 28), tzinfo=UTC)
        party["id_card_no"] = id_card(rng, region, born)
    customer_id, account_id = f"CUST{n:07d}", f"ACCT{n:07d}"
    for line_no in range(1, (rng.randint(2, 6) if organisation else rng.choice((1, 1, 1, 2))) + 1):
        sub_id = f"SUB{n:07d}{line_no:02d}"
        msisdn = rng.choice(PREFIXES) + f"{rng.randint(0, 99_999_999):08d}"
        at = start + timedelta(days=rng.randint(0, 300), minutes=rng.randint(0, 1440))
        base = {"customer_id": customer_id, "account_id": account_id, "subscription_id": sub_id, "msisdn": msisdn}
        code, name, fee = rng.choice(PLANS[:4])
        activated = {
            **base,
            "occurred_at": _iso(at),
            "customer": party,
            "plan": {"code": code, "name": name, "monthly_fee_fen": fee},
            "payment_mode": "postpaid" if rng.random() < 0.7 else "prepaid",
        }
        if rng.random() < 0.3:
            activated["contract_end"] = (at + timedelta(days=730)).date().isoformat()
        if rng.random() < 0.4:
            activated["dealer_code"] = f"DLR-{region}-{rng.randint(1, 40):03d}"
        yield _record(sub_id, "activated", 0, activated)
        roll = rng.random()
        if roll < 0.25:
            new_code, new_name, new_fee = rng.choice([p for p in PLANS[:4] if p[0] != code])
            at += timedelta(days=rng.randint(20, 60))
            yield _record(
                sub_id,
                "plan_changed",
                1,
                {
                    **base,
                    "occurred_at": _iso(at),
                    "from_plan_code": code,
                    "plan": {"code": new_code, "name": new_name, "monthly_fee_fen": new_fee},
                },
            )
        elif roll < 0.35:
            at += timedelta(days=rng.randint(30, 90))
            yield _record(sub_id, "suspended", 1, {**base, "occurred_at": _iso(at), "reason": "arrears"})
            if rng.random() < 0.5:
                at += timedelta(days=rng.randint(2, 20))
                yield _record(sub_id, "resumed", 2, {**base, "occurred_at": _iso(at)})
        elif roll < 0.40:
            at += timedelta(days=rng.randint(30, 200))
            yield _record(
                sub_id, "ported_out", 1, {**base, "occurred_at": _iso(at), "recipient_operator": rng.choice(OPERATORS)}
            )
        elif roll < 0.44:
            at += timedelta(days=rng.randint(30, 200))
            yield _record(sub_id, "terminated", 1, {**base, "occurred_at": _iso(at), "reason": "customer_request"})


def _record(sub_id: str, kind: str, seq: int, data: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": f"SIM-{sub_id}-{seq}", "event_type": f"subscription.{kind}", "data": data}


def _iso(moment: datetime) -> str:
    """The BOSS speaks local time with its offset."""
    return moment.astimezone(SHANGHAI).isoformat()
