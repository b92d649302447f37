"""The knowledge base's terms, ranking and snippets as plain functions: what makes a Chinese search work without a
Chinese tokenizer in either database."""

from __future__ import annotations

import html

from crm_ticketing.domain.knowledge import (
    MAX_QUERY_TERMS,
    SNIPPET_CHARS,
    document,
    index_text,
    query_terms,
    rank,
    snippet,
    terms,
    tokens,
)


def test_chinese_is_cut_into_bigrams_and_latin_into_words():
    assert terms("光猫红灯") == ["光猫", "猫红", "红灯"]
    assert terms("宽带 ONT Reboot") == ["宽带", "ont", "reboot"]
    assert terms("5G信号差") == ["5g", "信号", "号差"]


def test_a_two_character_word_is_one_term():
    assert terms("退订") == ["退订"]
    assert query_terms("退订") == ["退订"]


def test_a_lone_cjk_character_between_other_text_is_a_term():
    assert terms("SIM卡 补换") == ["sim", "卡", "补换"]


def test_full_width_and_case_are_folded():
    assert terms("５Ｇ ＳＩＭ Roaming") == ["5g", "sim", "roaming"]


def test_punctuation_and_single_letters_make_no_terms():
    assert terms("！？…， a 5 —") == []
    assert query_terms("  。。 ") == []


def test_query_terms_are_distinct_in_order_and_bounded():
    assert query_terms("宽带 宽带 Wi-Fi wifi WiFi") == ["宽带", "wi", "fi", "wifi"]
    assert len(query_terms(" ".join(f"word{i}" for i in range(100)))) == MAX_QUERY_TERMS


def test_index_text_holds_each_term_once_and_no_bigram_spans_two_keywords():
    text = index_text("携号转网", ["授权码", "转出"], "发送 SQXH 到 10086 获取授权码")
    held = text.split(" ")
    assert len(held) == len(set(held))
    assert {"携号", "号转", "转网", "授权", "权码", "转出", "sqxh", "10086", "获取"} <= set(held)
    assert "码转" not in held


def test_tokens_point_into_the_original_text():
    text = "ＳＩＭ卡补办"
    found = tokens(text)
    assert [(t.term, text[t.start : t.end]) for t in found] == [("sim", "ＳＩＭ"), ("卡补", "卡补"), ("补办", "补办")]


def test_title_outweighs_keywords_outweighs_body():
    query = query_terms("光猫")
    docs = {
        1: document("光猫重启方法", [], "按下电源键。"),
        2: document("宽带报障", ["光猫"], "按下电源键。"),
        3: document("宽带报障", [], "检查光猫电源。"),
        4: document("营业时间", [], "周一至周日。"),
    }
    scores = rank(query, {k: v for k, v in docs.items() if set(query) & set(v.tf)}, population=len(docs))
    assert scores[1] > scores[2] > scores[3] > 0
    assert 4 not in scores


def test_a_rare_term_weighs_more_than_a_common_one():
    docs = {
        1: document("宽带故障", [], "宽带无法上网"),
        2: document("宽带提速", [], "宽带升级"),
        3: document("光猫红灯", [], "宽带光猫 LOS 红灯"),
    }
    scores = rank(query_terms("宽带 红灯"), docs, population=3)
    assert max(scores, key=scores.__getitem__) == 3


def test_more_of_the_query_beats_more_of_one_term():
    docs = {
        1: document("漫游", [], "漫游 漫游 漫游 漫游"),
        2: document("国际漫游开通", [], "出境前开通国际漫游"),
    }
    scores = rank(query_terms("国际漫游"), docs, population=10)
    assert scores[2] > scores[1]


def test_snippet_highlights_where_the_query_meets_and_escapes_the_text():
    body = (
        "办理须知："
        + "营业厅办理需携带身份证。" * 20
        + "若光猫 LOS 灯亮红灯，说明光纤中断 <b>请报障</b>。"
        + "其他说明。" * 20
    )
    shown = snippet(body, set(query_terms("光猫红灯")))
    assert "<mark>光猫</mark> LOS 灯亮<mark>红灯</mark>" in shown
    assert "&lt;b&gt;请报障&lt;/b&gt;" in shown
    assert shown.startswith("…") and shown.endswith("…")
    assert len(html.unescape(shown.replace("<mark>", "").replace("</mark>", ""))) == SNIPPET_CHARS + len("……")


def test_adjacent_bigram_matches_are_one_mark_and_lines_are_joined():
    assert snippet("光猫红灯\n闪烁", {"光猫", "猫红", "红灯"}) == "<mark>光猫红灯</mark> 闪烁"


def test_snippet_without_a_match_is_the_start_of_the_body():
    body = "第一段。" * 50
    assert snippet(body, {"漫游"}) == body[:SNIPPET_CHARS] + "…"
    assert snippet("短文", set()) == "短文"
