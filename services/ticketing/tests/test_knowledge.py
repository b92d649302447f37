"""The knowledge base (知识库) over HTTP, on a small corpus of an operator's articles: search in Chinese and English
ranks the right article first (the same order on SQLite and PostgreSQL), drafts, retired and agent-only articles stay
out of sight, the index follows every change, suggestions follow a ticket, and bad input is a problem+json."""

from __future__ import annotations

import json
from typing import Any

import pytest

from crm_kit.testing import assert_problem, bearer

ARTICLES = "/api/v1/knowledge/articles"
ANSWERS = "/api/v1/knowledge/answers"
SUPERVISOR = bearer("sup-wang", roles=("supervisor",))
ADMIN = bearer("admin-1", roles=("admin",))
KAM = bearer("kam-li", roles=("key_account_manager",))
SELF_SERVICE = bearer("app-selfservice", roles=())
"""The app's self-service channel: an authenticated caller with no staff role."""

CORPUS: dict[str, dict[str, Any]] = {
    "los": {
        "title": "宽带无法上网：光猫 LOS 红灯排查",
        "category": "broadband_fault",
        "keywords": ["光猫", "LOS", "断网", "ONT"],
        "audience": "public",
        "body": "客户反映宽带无法上网时，先请客户查看光猫指示灯。若 LOS 灯亮红灯或闪烁，说明光信号中断，"
        "多为入户光纤弯折或断开：请客户检查尾纤是否松动，重新插拔后仍亮红灯则登记障碍单，预约装维上门。"
        "PON 灯不亮时请重启光猫（ONT reboot）。",
    },
    "slow": {
        "title": "宽带网速慢与 Wi-Fi 信号优化",
        "category": "broadband_fault",
        "keywords": ["网速慢", "测速", "路由器"],
        "audience": "public",
        "body": "宽带能上网但网速慢：先用网线直连测速，达到签约速率则问题在无线。将路由器放在开阔处，"
        "避开微波炉，改用 5GHz 频段；老旧路由器建议更换千兆路由器。",
    },
    "vas": {
        "title": "话费异常扣费：查询并退订增值业务",
        "category": "value_added_service",
        "keywords": ["退订", "SP业务", "乱扣费", "包月"],
        "audience": "public",
        "body": "客户发现话费异常、每月多扣几元至几十元，多为订购了增值业务（SP 包月）。发送 0000 到 10086 "
        "可查询已订购业务，按短信提示回复序号即可退订；也可在 App「已订业务」中一键退订。",
    },
    "refund": {
        "title": "计费争议退费审批口径（内部）",
        "category": "billing_dispute",
        "keywords": ["退费", "审批", "争议"],
        "audience": "agent",
        "body": "核实为系统误扣费的，坐席可直接退费 50 元以内；50 至 500 元需班长审批；超过 500 元提交计费中心。"
        "客户未主动订购的增值业务，退订后按双倍返还。",
    },
    "portability": {
        "title": "携号转网授权码获取",
        "category": "number_portability",
        "keywords": ["授权码", "SQXH", "转出"],
        "audience": "public",
        "body": "办理携号转网前，编辑短信 SQXH#姓名#证件号 发送至 10086 查询是否具备转网条件并获取授权码，"
        "授权码有效期 48 小时。存在合约期内业务或欠费时不能转出。",
    },
    "5g": {
        "title": "5G信号差：弱覆盖排查与投诉受理",
        "category": "network_coverage",
        "keywords": ["5G", "弱覆盖", "signal"],
        "audience": "public",
        "body": "客户反映 5G 信号差、频繁回落 4G：确认终端支持 5G SA 且已开启 5G 开关；记录客户常驻地址，"
        "查询覆盖地图，确属弱覆盖的登记网络投诉，由网优中心在 3 个工作日内回复。Poor 5G signal indoors is "
        "usually coverage, not the handset.",
    },
    "roaming": {
        "title": "国际漫游开通与资费 International roaming",
        "category": "service_activation",
        "keywords": ["漫游", "出境", "roaming"],
        "audience": "public",
        "body": "出境前请确认国际漫游已开通：发送 KTMY 到 10086 或在 App 开通。International roaming is activated "
        "by SMS or in the app; daily data packs cap the roaming charges abroad.",
    },
    "handset": {
        "title": "手机无法开机或反复重启",
        "category": "handset_terminal",
        "keywords": ["死机", "开不了机"],
        "audience": "public",
        "body": "请客户长按电源键 15 秒强制重启；仍无法开机的，充电 30 分钟后再试；在保修期内的引导至售后网点检测。",
    },
    "staff": {
        "title": "服务态度投诉处理流程（内部）",
        "category": "staff_complaint",
        "keywords": ["服务态度", "致歉"],
        "audience": "agent",
        "body": "受理服务态度投诉后 24 小时内由班长回访致歉，核实录音，按考核办法处理相关人员。",
    },
    "hours": {
        "title": "营业厅营业时间与预约",
        "category": None,
        "keywords": ["营业厅", "预约"],
        "audience": "public",
        "body": "营业厅一般 9:00 至 18:00 营业，节假日时间以门店公告为准；可在 App 预约到店办理，免排队。",
    },
    "bill": {
        "title": "账单查询与流量费用说明",
        "category": "billing_dispute",
        "keywords": ["账单", "流量费"],
        "audience": "public",
        "body": "每月 1 日出上月账单，可在 App 查询明细。套餐外流量按 5 元/GB 计费，日封顶 60 元。",
    },
    "esim": {
        "title": "eSIM 手表开通指引",
        "category": "service_activation",
        "keywords": ["eSIM", "手表"],
        "audience": "public",
        "status": "draft",
        "body": "eSIM 一号双终端业务正在编写中。",
    },
    "wcdma": {
        "title": "3G WCDMA 退网说明",
        "category": "network_coverage",
        "keywords": ["WCDMA", "退网"],
        "audience": "public",
        "status": "retired",
        "body": "WCDMA 网络已逐步退网，请客户更换 4G/5G 终端。",
    },
}


async def write(service: Any, article: dict[str, Any], headers: dict[str, str] = SUPERVISOR) -> dict[str, Any]:
    r = await service.http.post(ARTICLES, json=article, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def corpus(service: Any) -> dict[str, str]:
    """The corpus written by a supervisor, published unless it says otherwise: its ids by key."""
    ids = {}
    for key, article in CORPUS.items():
        ids[key] = (await write(service, {"status": "published", **article}))["id"]
    return ids


async def search(service: Any, q: str, **params: str) -> tuple[list[dict[str, Any]], int]:
    r = await service.http.get(ARTICLES, params={"q": q, **params})
    assert r.status_code == 200, r.text
    hits: list[dict[str, Any]] = r.json()
    assert int(r.headers["X-Result-Count"]) == len(hits)
    return hits, int(r.headers["X-Total-Count"])


async def found(service: Any, q: str, ids: dict[str, str], **params: str) -> list[str]:
    """The corpus keys a search finds, best first."""
    keys = {v: k for k, v in ids.items()}
    hits, _ = await search(service, q, **params)
    return [keys.get(h["id"], h["id"]) for h in hits]


def merge_patch(body: dict[str, Any]) -> dict[str, Any]:
    return {"content": json.dumps(body), "headers": {**SUPERVISOR, "Content-Type": "application/merge-patch+json"}}


async def test_searches_in_chinese_and_english_rank_the_answering_article_first(service):
    ids = await corpus(service)

    assert (await found(service, "光猫红灯", ids))[0] == "los"
    assert (await found(service, "宽带无法上网 光猫红灯", ids))[0] == "los"
    assert (await found(service, "宽带网速慢", ids))[0] == "slow"
    assert (await found(service, "话费异常扣费 增值业务退订", ids))[0] == "vas"
    assert (await found(service, "携号转网 授权码", ids))[0] == "portability"
    assert (await found(service, "5G信号差", ids))[0] == "5g"
    assert (await found(service, "５Ｇ signal", ids))[0] == "5g"
    assert (await found(service, "国际漫游开通", ids))[0] == "roaming"
    assert await found(service, "International ROAMING", ids) == ["roaming"]


async def test_two_character_queries_find_their_articles(service):
    ids = await corpus(service)

    assert (await found(service, "退订", ids))[:2] == ["vas", "refund"]
    assert await found(service, "光猫", ids) == ["los"]
    assert await found(service, "预约", ids) == ["hours", "los"]
    assert set(await found(service, "宽带", ids)) == {"los", "slow"}


async def test_a_search_is_scored_snippeted_paged_and_the_same_on_every_database(service):
    ids = await corpus(service)

    hits, total = await search(service, "宽带无法上网")
    keys = {v: k for k, v in ids.items()}
    assert [keys[h["id"]] for h in hits] == ["los", "slow", "handset"]
    assert total == 3
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True) and scores[-1] > 0
    top = hits[0]
    assert top["href"] == f"{ARTICLES}/{ids['los']}"
    assert top["title"] == CORPUS["los"]["title"]
    assert top["status"] == "published" and top["audience"] == "public" and top["category"] == "broadband_fault"
    assert "客户反映<mark>宽带无法上网</mark>时" in top["snippet"]

    page, total = await search(service, "宽带无法上网", offset="1", limit="1")
    assert [h["id"] for h in page] == [hits[1]["id"]] and total == 3
    only, _ = await search(service, "宽带无法上网", category="handset_terminal")
    assert [h["id"] for h in only] == [ids["handset"]]


async def test_drafts_and_retired_articles_are_not_found(service):
    await corpus(service)

    assert await search(service, "eSIM 手表") == ([], 0)
    assert await search(service, "WCDMA 退网") == ([], 0)


async def test_self_service_answers_hold_only_public_articles(service):
    ids = await corpus(service)

    agents = await found(service, "退费审批", ids)
    assert agents[0] == "refund"

    r = await service.http.get(ANSWERS, params={"q": "退费审批 退订"}, headers=SELF_SERVICE)
    assert r.status_code == 200, r.text
    answers = r.json()
    assert [a["id"] for a in answers] == [ids["vas"]]
    assert answers[0]["body"] == CORPUS["vas"]["body"]
    assert "<mark>退订</mark>" in answers[0]["snippet"]
    assert r.headers["X-Total-Count"] == "1"

    r = await service.http.get(ANSWERS, params={"q": "服务态度"}, headers=SELF_SERVICE)
    assert r.json() == []
    r = await service.http.get(ANSWERS, params={"q": "光猫"})
    assert [a["id"] for a in r.json()] == [ids["los"]]
    assert_problem(await service.http.get(ANSWERS, params={"q": "光猫"}, headers={"Authorization": "Bearer x"}), 401)


async def test_who_reads_what(service):
    ids = await corpus(service)

    for key in ("refund", "los"):
        assert (await service.http.get(f"{ARTICLES}/{ids[key]}")).status_code == 200
    assert_problem(await service.http.get(f"{ARTICLES}/{ids['esim']}"), 404, "id")
    assert_problem(await service.http.get(f"{ARTICLES}/{ids['refund']}", headers=SELF_SERVICE), 404, "id")
    assert (await service.http.get(f"{ARTICLES}/{ids['los']}", headers=SELF_SERVICE)).status_code == 200
    assert (await service.http.get(f"{ARTICLES}/{ids['esim']}", headers=SUPERVISOR)).status_code == 200
    assert (await service.http.get(f"{ARTICLES}/{ids['refund']}", headers=KAM)).status_code == 200
    assert_problem(await service.http.get(ARTICLES, params={"q": "光猫"}, headers=SELF_SERVICE), 403)

    r = await service.http.get(ARTICLES, params={"status": "draft"}, headers=SUPERVISOR)
    assert [a["id"] for a in r.json()] == [ids["esim"]]
    assert r.json()[0]["score"] is None and r.json()[0]["snippet"] == CORPUS["esim"]["body"]
    r = await service.http.get(ARTICLES, headers=SUPERVISOR)
    assert r.headers["X-Total-Count"] == str(len(CORPUS))
    r = await service.http.get(ARTICLES, params={"category": "broadband_fault"})
    assert {a["id"] for a in r.json()} == {ids["los"], ids["slow"]}
    r = await service.http.get(ARTICLES)
    assert r.headers["X-Total-Count"] == str(len(CORPUS) - 2)
    assert_problem(await service.http.get(ARTICLES, params={"status": "retired"}), 403, "status")


async def test_suggestions_for_a_broadband_fault_put_the_broadband_article_first(service):
    ids = await corpus(service)
    ticket = await service.create(
        name="家里宽带断网",
        description="客户称今早起宽带无法上网，光猫上有个灯一直亮红灯，重启路由器无效",
        category="broadband_fault",
        ticketType="trouble",
    )

    r = await service.http.get(f"/api/v1/tickets/{ticket['id']}/suggested-articles")

    assert r.status_code == 200, r.text
    keys = {v: k for k, v in ids.items()}
    suggested = [keys[a["id"]] for a in r.json()]
    assert suggested[:2] == ["los", "slow"]
    assert "refund" not in suggested[:2]
    assert len(suggested) <= 5

    r = await service.http.get(f"/api/v1/tickets/{ticket['id']}/suggested-articles", params={"limit": "1"})
    assert [a["id"] for a in r.json()] == [ids["los"]]
    assert_problem(await service.http.get(f"/api/v1/tickets/{ticket['id']}/suggested-articles", headers=KAM), 404)
    assert_problem(await service.http.get("/api/v1/tickets/TT-NOPE/suggested-articles"), 404)


async def test_the_ticket_category_lifts_its_articles(service):
    ids = await corpus(service)
    complaint = "扣费有疑问，要求退订并退费"
    assert (await found(service, complaint, ids))[:2] == ["vas", "refund"]
    billing = await service.create(description=complaint, category="billing_dispute", name=None)
    vas = await service.create(description=complaint, category="value_added_service", name=None)

    def first(r: Any) -> str:
        return {v: k for k, v in ids.items()}[r.json()[0]["id"]]

    assert first(await service.http.get(f"/api/v1/tickets/{billing['id']}/suggested-articles")) == "refund"
    assert first(await service.http.get(f"/api/v1/tickets/{vas['id']}/suggested-articles")) == "vas"


async def test_an_article_is_written_published_changed_and_the_index_follows(service):
    service.clock.advance(hours=1)
    created = await write(
        service,
        {
            "title": "停机保号办理",
            "body": "客户出国期间可办理停机保号，每月收取 5 元。",
            "keywords": ["保号", "Suspend", "suspend"],
        },
    )
    assert created["status"] == "draft" and created["audience"] == "agent" and created["category"] is None
    assert created["keywords"] == ["保号", "Suspend"]
    assert created["author"] == "sup-wang" and created["version"] == 1
    assert created["helpful"] == 0 and created["notHelpful"] == 0
    assert created["creationDate"] == created["lastUpdate"] == "2026-11-23T11:00:00+08:00"
    one = f"{ARTICLES}/{created['id']}"
    assert await search(service, "停机保号") == ([], 0)

    r = await service.http.patch(one, **merge_patch({"status": "published", "category": "service_activation"}))
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2
    assert [h["id"] for h in (await search(service, "停机保号"))[0]] == [created["id"]]
    assert [h["id"] for h in (await search(service, "suspend"))[0]] == [created["id"]]

    service.clock.advance(minutes=5)
    r = await service.http.patch(
        one, **merge_patch({"title": "号码暂停服务", "body": "出境期间可申请暂停服务，保留号码。", "keywords": []})
    )
    assert r.status_code == 200, r.text
    changed = r.json()
    assert changed["version"] == 3 and changed["lastUpdate"] == "2026-11-23T11:05:00+08:00"
    assert changed["author"] == "sup-wang" and changed["category"] == "service_activation"
    assert await search(service, "停机") == ([], 0)
    assert await search(service, "suspend") == ([], 0)
    assert [h["id"] for h in (await search(service, "暂停服务"))[0]] == [created["id"]]

    r = await service.http.patch(one, **merge_patch({"category": None}))
    assert r.json()["category"] is None and r.json()["version"] == 4

    r = await service.http.patch(one, **merge_patch({"status": "retired"}))
    assert r.json()["status"] == "retired"
    assert await search(service, "暂停服务") == ([], 0)


async def test_a_deleted_article_leaves_the_index(service):
    ids = await corpus(service)
    one = f"{ARTICLES}/{ids['portability']}"

    assert_problem(await service.http.delete(one, headers=SUPERVISOR), 403)
    r = await service.http.delete(one, headers=ADMIN)
    assert r.status_code == 204, r.text

    assert "portability" not in await found(service, "携号转网 授权码", ids)
    assert await search(service, "SQXH") == ([], 0)
    assert_problem(await service.http.get(one, headers=ADMIN), 404, "id")
    assert_problem(await service.http.delete(one, headers=ADMIN), 404, "id")
    later = await write(service, {"title": "携号转网授权码", "body": "获取授权码。", "status": "published"})
    assert [h["id"] for h in (await search(service, "SQXH 授权码"))[0]] == [later["id"]]


async def test_feedback_is_counted_on_published_articles(service):
    ids = await corpus(service)
    feedback = f"{ARTICLES}/{ids['los']}/feedback"

    r = await service.http.post(feedback, json={"helpful": True})
    assert r.status_code == 200, r.text
    assert r.json() == {"id": ids["los"], "helpful": 1, "notHelpful": 0}
    await service.http.post(feedback, json={"helpful": True}, headers=SELF_SERVICE)
    r = await service.http.post(feedback, json={"helpful": False}, headers=SELF_SERVICE)
    assert r.json() == {"id": ids["los"], "helpful": 2, "notHelpful": 1}

    article = (await service.http.get(f"{ARTICLES}/{ids['los']}")).json()
    assert (article["helpful"], article["notHelpful"], article["version"]) == (2, 1, 1)
    assert_problem(await service.http.post(feedback, json={"helpful": "yes"}), 422, "helpful")
    assert_problem(await service.http.post(feedback, json={}), 422, "helpful")
    assert_problem(
        await service.http.post(f"{ARTICLES}/{ids['refund']}/feedback", json={"helpful": True}, headers=SELF_SERVICE),
        404,
    )
    assert_problem(
        await service.http.post(f"{ARTICLES}/{ids['esim']}/feedback", json={"helpful": True}, headers=SUPERVISOR),
        409,
        "status",
        slug="article-not-published",
    )


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"q": ""}, "q"),
        ({"q": "！？。 a"}, "q"),
        ({"q": "宽" * 201}, "q"),
        ({"q": "宽带", "category": "broadband"}, "category"),
        ({"q": "宽带", "status": "draft"}, "status"),
        ({"status": "archived"}, "status"),
        ({"q": "宽带", "limit": "101"}, "limit"),
        ({"q": "宽带", "offset": "-1"}, "offset"),
    ],
)
async def test_bad_searches_are_problems(service, params, field):
    assert_problem(await service.http.get(ARTICLES, params=params), 422, field)


async def test_bad_answers_queries_are_problems(service):
    assert_problem(await service.http.get(ANSWERS, headers=SELF_SERVICE), 422, "q")
    assert_problem(await service.http.get(ANSWERS, params={"q": " "}, headers=SELF_SERVICE), 422, "q")
    assert_problem(await service.http.get(ANSWERS, params={"q": "宽带", "limit": "21"}), 422, "limit")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"title": "宽" * 201}, "title"),
        ({"title": "   "}, "title"),
        ({"body": "x" * 20_001}, "body"),
        ({"category": "broadband"}, "category"),
        ({"audience": "everyone"}, "audience"),
        ({"status": "archived"}, "status"),
        ({"keywords": ["k"] * 21}, "keywords"),
        ({"keywords": ["光" * 33]}, "keywords[0]"),
        ({"keywords": "光猫"}, "keywords"),
        ({"version": 3}, "version"),
        ({"views": 3}, "views"),
        ({"body": "a\x00b"}, "body"),
    ],
)
async def test_bad_articles_are_problems(service, change, field):
    body = {"title": "光猫重启", "body": "长按复位键。", **change}
    assert_problem(await service.http.post(ARTICLES, json=body, headers=SUPERVISOR), 422, field)


async def test_only_supervisors_and_administrators_write_articles(service):
    body = {"title": "光猫重启", "body": "长按复位键。"}
    assert_problem(await service.http.post(ARTICLES, json=body), 403)
    assert_problem(await service.http.post(ARTICLES, json=body, headers=KAM), 403)
    assert_problem(await service.http.post(ARTICLES, json=body, headers=SELF_SERVICE), 403)
    created = await write(service, body, headers=ADMIN)
    assert created["author"] == "admin-1"
    one = f"{ARTICLES}/{created['id']}"
    patch = merge_patch({"status": "published"})
    r = await service.http.patch(
        one, content=patch["content"], headers={"Content-Type": "application/merge-patch+json"}
    )
    assert_problem(r, 403)


async def test_bad_patches_are_problems(service):
    one = f"{ARTICLES}/{(await write(service, {'title': '光猫重启', 'body': '长按复位键。'}))['id']}"

    assert_problem(await service.http.patch(one, **merge_patch({})), 422)
    assert_problem(await service.http.patch(one, **merge_patch({"title": None})), 422, "title")
    assert_problem(await service.http.patch(one, **merge_patch({"author": "someone"})), 422, "author")
    r = await service.http.patch(
        one, json={"status": "published"}, headers={**SUPERVISOR, "Content-Type": "text/plain"}
    )
    assert_problem(r, 415, "Content-Type")
    assert_problem(await service.http.patch(f"{ARTICLES}/999999", **merge_patch({"status": "published"})), 404, "id")
    assert_problem(await service.http.get(f"{ARTICLES}/abc"), 422, "article_id")
    assert_problem(await service.http.get(f"{ARTICLES}/{2**63}"), 422, "article_id")
