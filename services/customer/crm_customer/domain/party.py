"""The party model entered in the CRM (客户建档): customers, their contact media and characteristics, group
account hierarchies (集团→分支账户), and how a search term finds a customer fast (index range scans)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from crm_customer.models import BillingAccount, ContactMedium, Customer, CustomerCharacteristic, Subscription
from crm_kit.db import utcnow
from crm_kit.errors import Conflict, InvalidInput, NotFound

ID_CARD_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CARD_CHECK = "10X98765432"
USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
RESERVED_CHARACTERISTICS = frozenset(
    {"customerType", "region", "idCardNumber", "registrationNo", "gender", "birthDate", "industry"}
)
"""Characteristics the resource fills from the customer's own columns; a free one may not shadow them."""
MAX_DEPTH = 10
"""How deep a group's account tree may go (集团 → 省 → 市 → … ), and how deep a hierarchy read goes."""


def id_card_no(value: str, field_name: str = "idCardNo") -> str:
    """An 18-character PRC resident ID (GB 11643): 17 digits, a real birth date, and the ISO 7064 MOD 11-2
    check character (0-9 or X)."""
    number = value.strip().upper()
    if not re.fullmatch(r"\d{17}[\dX]", number):
        raise InvalidInput("An ID card number is 17 digits and a check digit (0-9 or X)", field=field_name)
    try:
        date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise InvalidInput("The ID card number's birth date is not a date", field=field_name) from None
    total = sum(int(d) * w for d, w in zip(number[:17], ID_CARD_WEIGHTS, strict=True))
    if ID_CARD_CHECK[total % 11] != number[17]:
        raise InvalidInput("The ID card number's check digit is wrong (typo?)", field=field_name)
    return number


def registration_no(value: str, field_name: str = "registrationNo") -> str:
    """An 18-character unified social credit code (GB 32100): its alphabet has no I, O, S, V, Z, and the last
    character is a MOD 31 check."""
    code = value.strip().upper()
    if len(code) != 18 or any(c not in USCC_CHARS for c in code):
        raise InvalidInput(
            "A unified social credit code is 18 characters of 0-9 and A-Y without I O S V Z", field=field_name
        )
    total = sum(USCC_CHARS.index(c) * w for c, w in zip(code[:17], USCC_WEIGHTS, strict=True))
    if USCC_CHARS[(31 - total % 31) % 31] != code[17]:
        raise InvalidInput("The unified social credit code's check character is wrong (typo?)", field=field_name)
    return code


def new_customer_id() -> str:
    """CRM-entered customers get their own id space: BOSS-fed customers keep the BOSS's ids (C + digits)."""
    return f"CRM-{uuid.uuid4().hex[:16].upper()}"


def new_account_id() -> str:
    return f"ACRM-{uuid.uuid4().hex[:12].upper()}"


@dataclass
class Medium:
    medium_type: str
    value: str
    preferred: bool


@dataclass
class Trait:
    name: str
    value: str
    value_type: str


@dataclass
class PartyFields:
    """What a create or a patch sets; `present` says which members a merge-patch carried."""

    values: dict[str, Any]
    media: list[Medium] | None = None
    traits: list[Trait] | None = None
    present: set[str] = field(default_factory=set)


PARTY_COLUMNS = ("name", "region", "id_card_no", "registration_no", "gender", "birth_date", "industry")
NOT_NULL = ("name", "region")


def _check(customer_type: str | None, values: dict[str, Any], traits: list[Trait] | None) -> None:
    if values.get("id_card_no") is not None:
        if customer_type == "organization":
            raise InvalidInput("An organisation has a registrationNo, not an idCardNo", field="idCardNo")
        values["id_card_no"] = id_card_no(values["id_card_no"])
    if values.get("registration_no") is not None:
        if customer_type != "organization":
            raise InvalidInput("Only an organisation has a registrationNo", field="registrationNo")
        values["registration_no"] = registration_no(values["registration_no"])
    if customer_type == "organization":
        for name, wire in (("gender", "gender"), ("birth_date", "birthDate")):
            if values.get(name) is not None:
                raise InvalidInput(f"An organisation has no {wire}", field=wire)
    if values.get("birth_date") is not None and values["birth_date"] > date.today():
        raise InvalidInput("birthDate is in the future", field="birthDate")
    for key in NOT_NULL:
        if key in values and values[key] is None:
            raise InvalidInput(f"{key} cannot be removed", field=key)
    if traits is not None:
        names = [t.name for t in traits]
        clash = RESERVED_CHARACTERISTICS.intersection(names)
        if clash:
            raise InvalidInput(f"Characteristic {sorted(clash)[0]} is a field of the customer", field="characteristic")
        if len(set(names)) != len(names):
            raise InvalidInput("Each characteristic name appears once", field="characteristic")


async def _replace_media(session: AsyncSession, customer_id: str, media: list[Medium], now: datetime) -> None:
    await session.execute(delete(ContactMedium).where(ContactMedium.customer_id == customer_id))
    session.add_all(
        ContactMedium(
            customer_id=customer_id, medium_type=m.medium_type, value=m.value, preferred=m.preferred, created_at=now
        )
        for m in media
    )


async def _replace_traits(session: AsyncSession, customer_id: str, traits: list[Trait]) -> None:
    await session.execute(delete(CustomerCharacteristic).where(CustomerCharacteristic.customer_id == customer_id))
    session.add_all(
        CustomerCharacteristic(customer_id=customer_id, name=t.name, value=t.value, value_type=t.value_type)
        for t in traits
    )


async def create_customer(session: AsyncSession, customer_type: str, fields: PartyFields) -> Customer:
    """A customer entered by an agent (source crm): no lines yet, so inactive until the BOSS activates one."""
    _check(customer_type, fields.values, fields.traits)
    now = utcnow()
    customer = Customer(
        id=new_customer_id(),
        customer_type=customer_type,
        status="inactive",
        source="crm",
        created_at=now,
        updated_at=now,
        key_account=False,
        **{k: fields.values.get(k) for k in PARTY_COLUMNS},
    )
    customer.name_key = customer.name.lower() if customer.name else None
    session.add(customer)
    await session.flush()
    await _replace_media(session, customer.id, fields.media or [], now)
    await _replace_traits(session, customer.id, fields.traits or [])
    await session.flush()
    return customer


async def patch_customer(session: AsyncSession, customer: Customer, fields: PartyFields) -> bool:
    """Apply a merge-patch; True when anything changed (then `updated_at` moves and an event is due)."""
    values = {k: v for k, v in fields.values.items() if k in fields.present}
    _check(customer.customer_type, values, fields.traits)
    merged = {k: getattr(customer, k) for k in PARTY_COLUMNS} | values
    now = utcnow()
    changed = False
    for key in PARTY_COLUMNS:
        if merged[key] != getattr(customer, key):
            setattr(customer, key, merged[key])
            changed = True
    customer.name_key = customer.name.lower() if customer.name else None
    if fields.media is not None:
        before = await _media_of(session, customer.id)
        if before != [(m.medium_type, m.value, m.preferred) for m in fields.media]:
            await _replace_media(session, customer.id, fields.media, now)
            changed = True
    if fields.traits is not None:
        before_traits = await _traits_of(session, customer.id)
        if before_traits != sorted((t.name, t.value, t.value_type) for t in fields.traits):
            await _replace_traits(session, customer.id, fields.traits)
            changed = True
    if changed:
        customer.updated_at = now
    await session.flush()
    return changed


async def _media_of(session: AsyncSession, customer_id: str) -> list[tuple[str, str, bool]]:
    rows = await session.execute(
        select(ContactMedium.medium_type, ContactMedium.value, ContactMedium.preferred)
        .where(ContactMedium.customer_id == customer_id)
        .order_by(ContactMedium.id)
    )
    return [(t, v, p) for t, v, p in rows.all()]


async def _traits_of(session: AsyncSession, customer_id: str) -> list[tuple[str, str, str]]:
    rows = await session.execute(
        select(CustomerCharacteristic.name, CustomerCharacteristic.value, CustomerCharacteristic.value_type)
        .where(CustomerCharacteristic.customer_id == customer_id)
        .order_by(CustomerCharacteristic.name)
    )
    return [(n, v, t) for n, v, t in rows.all()]


# --- search (客户查询): which column a term is, and a prefix as an index range --------------------------------------

SEARCH_BY = ("auto", "name", "phone", "id_card", "account", "registration_no")
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def guess_by(term: str) -> str:
    """What an agent typed: a (start of a) mobile number, an ID card number, a credit code, an account id, or a
    name."""
    if re.fullmatch(r"\d{1,11}", term):
        return "phone"
    if re.fullmatch(r"\d{12,18}|\d{17}[Xx]", term):
        return "id_card"
    if re.fullmatch(r"\d[0-9A-Z]{14,17}", term):
        return "registration_no"
    if re.fullmatch(r"A(CRM-)?\d[0-9A-Za-z_-]*|ACRM-[0-9A-F]*", term):
        return "account"
    return "name"


def normalise_term(term: str, by: str) -> str:
    """The term as the column stores it, or 422 naming `q` when it cannot be one."""
    term = term.strip()
    minimum = 1 if by == "name" and CJK.search(term) else 2
    if len(term) < minimum:
        raise InvalidInput("q needs at least 2 characters (1 Chinese character for a name)", field="q")
    if by == "name":
        return term.lower()
    if by == "phone" and not term.isdigit():
        raise InvalidInput("A phone number search takes digits only", field="q")
    if by == "id_card":
        term = term.upper()
        if not re.fullmatch(r"\d{1,17}[\dX]?", term):
            raise InvalidInput("An ID card search takes digits (and a final X)", field="q")
    if by == "registration_no":
        term = term.upper()
        if any(c not in USCC_CHARS for c in term):
            raise InvalidInput("A credit code search takes 0-9 and A-Y without I O S V Z", field="q")
    if by == "account" and not re.fullmatch(r"[A-Za-z0-9_-]+", term):
        raise InvalidInput("An account id has letters, digits, - and _ only", field="q")
    return term


def digit_successor(prefix: str) -> str | None:
    """The smallest digit string above every string starting with `prefix` ("1389" → "139"); None after "99…"."""
    stripped = prefix.rstrip("9")
    if not stripped:
        return None
    return stripped[:-1] + chr(ord(stripped[-1]) + 1)


def byte_successor(prefix: str) -> str:
    """The string right above every string starting with `prefix`, in byte (code point) order."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def prefix_upper(prefix: str, *, digits: bool) -> str | None:
    """The smallest value above every value starting with `prefix`; None when there is none ("99…")."""
    return digit_successor(prefix) if digits and prefix.isdigit() else byte_successor(prefix)


def portfolio(manager: Any) -> ColumnElement[bool]:
    """The key accounts (大客户) `manager` (a name, or a bound parameter for one) looks after."""
    return Customer.key_account.is_(True) & (Customer.account_manager == manager)


def sold_by(partner: Any) -> ColumnElement[bool]:
    """The customers with a line the partner (代理商, its id a dealer code; a name or a bound parameter) sold."""
    line = aliased(Subscription)  # the search by number joins the lines already: correlate on the customer only
    return exists().where(line.customer_id == Customer.id, line.dealer_code == partner)


def prefix_range(column: Any, prefix: str, *, digits: bool) -> ColumnElement[bool]:
    """`column >= prefix AND column < successor`: a range the column's index answers without a scan.

    Digit-only values sort the same in every collation, so a digit successor is safe on any column; other
    values need a byte-ordered column ("C" collation on PostgreSQL, SQLite's default BINARY)."""
    upper = prefix_upper(prefix, digits=digits)
    lower_bound = column >= prefix
    return lower_bound if upper is None else lower_bound & (column < upper)


# --- billing account hierarchy (集团→分支) ------------------------------------------------------------------------


async def ancestors(session: AsyncSession, account_id: str | None) -> list[str]:
    """The account and those above it, nearest first, up to one more than the depth limit."""
    chain: list[str] = []
    current = account_id
    while current is not None and len(chain) <= MAX_DEPTH:
        chain.append(current)
        current = await session.scalar(select(BillingAccount.parent_id).where(BillingAccount.id == current))
    return chain


async def check_parent(session: AsyncSession, account: BillingAccount, parent_id: str) -> None:
    """A parent must exist, be a group or branch account of the same customer or of a group (organisation)
    customer, and must not sit below the account (no cycles); the tree stays within the depth limit."""
    parent = await session.get(BillingAccount, parent_id)
    if parent is None:
        raise InvalidInput(f"No account {parent_id}", field="parentId")
    if parent.account_type not in ("group", "branch"):
        raise InvalidInput(f"Account {parent_id} is an individual account, not a group or branch", field="parentId")
    if parent.customer_id != account.customer_id:
        owner = await session.get(Customer, parent.customer_id)
        if owner is None or owner.customer_type != "organization":
            raise InvalidInput(
                f"Account {parent_id} belongs to another customer that is not a group customer", field="parentId"
            )
    chain = await ancestors(session, parent_id)
    if account.id in chain:
        raise Conflict(f"Account {parent_id} is below {account.id}: that would make a cycle", field="parentId")
    if len(chain) >= MAX_DEPTH:
        raise InvalidInput(f"An account hierarchy is at most {MAX_DEPTH} levels deep", field="parentId")


async def create_account(
    session: AsyncSession, customer_id: str, name: str, account_type: str, parent_id: str | None
) -> BillingAccount:
    now = utcnow()
    account = BillingAccount(
        id=new_account_id(),
        customer_id=customer_id,
        name=name,
        account_type=account_type,
        status="active",
        created_at=now,
        updated_at=now,
    )
    if parent_id is not None:
        await check_parent(session, account, parent_id)
        account.parent_id = parent_id
    session.add(account)
    await session.flush()
    return account


async def patch_account(session: AsyncSession, account: BillingAccount, values: dict[str, Any]) -> None:
    if "name" in values and values["name"] is None:
        raise InvalidInput("name cannot be removed", field="name")
    if "status" in values and values["status"] is None:
        raise InvalidInput("status cannot be removed", field="status")
    if values.get("parent_id") is not None and values["parent_id"] != account.parent_id:
        await check_parent(session, account, values["parent_id"])
    for key, value in values.items():
        setattr(account, key, value)
    account.updated_at = utcnow()
    await session.flush()


@dataclass
class Node:
    account: BillingAccount
    line_count: int
    children: list[Node] = field(default_factory=list)
    truncated: bool = False


async def hierarchy(session: AsyncSession, root: BillingAccount) -> Node:
    """The tree below `root`, one query per level, at most MAX_DEPTH levels below it."""
    top = Node(root, 0)
    level = {root.id: top}
    nodes = [top]
    for depth in range(MAX_DEPTH + 1):
        children = (
            await session.scalars(
                select(BillingAccount).where(BillingAccount.parent_id.in_(list(level))).order_by(BillingAccount.id)
            )
        ).all()
        if depth == MAX_DEPTH:
            for child in children:
                level[child.parent_id or ""].truncated = True
            break
        below: dict[str, Node] = {}
        for child in children:
            node = Node(child, 0)
            level[child.parent_id or ""].children.append(node)
            below[child.id] = node
            nodes.append(node)
        if not below:
            break
        level = below
    counts = dict(
        (
            await session.execute(
                select(Subscription.account_id, func.count())
                .where(Subscription.account_id.in_([n.account.id for n in nodes]))
                .group_by(Subscription.account_id)
            )
        ).all()
    )
    for node in nodes:
        node.line_count = counts.get(node.account.id, 0)
    return top


async def account_or_404(session: AsyncSession, account_id: str, *, for_update: bool = False) -> BillingAccount:
    query = select(BillingAccount).where(BillingAccount.id == account_id)
    account = await session.scalar(query.with_for_update() if for_update else query)
    if account is None:
        raise NotFound(f"No account {account_id}", field="account_id")
    return account
