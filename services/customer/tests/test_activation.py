"""Activation on the bus → the customer as TMF629 shows it: shape, masked personal numbers, money, +08:00."""

from __future__ import annotations

from datetime import datetime

ACTIVATED = "billing.subscription.activated.v1"
CUSTOMERS = "/tmf-api/customerManagement/v4/customer"


def _by_name(characteristic: list[dict]) -> dict[str, str | None]:
    return {c["name"]: c["value"] for c in characteristic}


def _china_time(value: str) -> datetime:
    assert value.endswith("+08:00"), value
    return datetime.fromisoformat(value)


async def test_activations_read_as_tmf629_customers_with_masked_numbers_and_china_times(service, boss):
    await boss.send(
        boss.from_example(ACTIVATED, "individual_postpaid"), boss.from_example(ACTIVATED, "organization_prepaid_dealer")
    )

    customer = await service.wait_for("C110000012345")
    raw = (await service.http.get(f"{CUSTOMERS}/C110000012345")).text

    assert customer["id"] == "C110000012345"
    assert customer["href"] == f"{CUSTOMERS}/C110000012345"
    assert customer["@type"] == "TelecomCustomer"
    assert customer["@baseType"] == "Customer"
    assert customer["name"] == "张伟"
    assert customer["status"] == "active"
    assert customer["engagedParty"] == {
        "id": "C110000012345",
        "href": "/tmf-api/partyManagement/v4/individual/C110000012345",
        "name": "张伟",
        "@referredType": "Individual",
    }
    assert [(a["id"], a["@referredType"]) for a in customer["account"]] == [("A110000067890", "BillingAccount")]
    assert customer["contactMedium"] == [
        {
            "mediumType": "mobile",
            "preferred": True,
            "characteristic": {"contactType": "mobile", "phoneNumber": "138****5678"},
        }
    ]
    assert _by_name(customer["characteristic"]) == {
        "customerType": "individual",
        "region": "BJ",
        "idCardNumber": "110105********0516",
    }
    assert customer["subscription"] == [
        {
            "id": "S110000024680",
            "msisdn": "138****5678",
            "status": "active",
            "statusReason": None,
            "accountId": "A110000067890",
            "plan": {
                "code": "5G-ULT-129",
                "name": "5G畅享套餐129元",
                "monthlyFee": {"unit": "CNY", "value": "129.00", "valueFen": 12900},
            },
            "paymentMode": "postpaid",
            "activationDate": "2026-11-20T09:30:00+08:00",
            "endDate": None,
            "contractEnd": None,
        }
    ]
    _china_time(customer["validFor"]["startDateTime"])
    _china_time(customer["lastUpdate"])
    # personal numbers never leave unmasked (no pii:read in this slice)
    assert "13812345678" not in raw
    assert "110105198803120516" not in raw

    customer = await service.wait_for("C440300098765")

    assert customer["name"] == "深圳市腾达科技有限公司"
    assert customer["engagedParty"]["@referredType"] == "Organization"
    assert customer["engagedParty"]["href"] == "/tmf-api/partyManagement/v4/organization/C440300098765"
    assert _by_name(customer["characteristic"]) == {"customerType": "organization", "region": "GD-SZ"}
    [line] = customer["subscription"]
    assert line["msisdn"] == "199****0001"
    assert line["plan"]["monthlyFee"] == {"unit": "CNY", "value": "30.00", "valueFen": 3000}
    assert line["paymentMode"] == "prepaid"
    assert line["contractEnd"] == "2028-11-30"
    assert line["activationDate"] == "2026-11-20T14:05:12+08:00"
    assert customer["contactMedium"][0]["characteristic"]["phoneNumber"] == "199****0001"

    # RFC 3339 allows `Z`, lower-case `t`/`z`, fractions and other offsets: each is the same instant, in +08:00
    forms = {
        "C801": "2026-11-20T01:30:00Z",
        "C802": "2026-11-20t01:30:00z",
        "C803": "2026-11-19T20:30:00.5-05:00",
    }
    await boss.send(
        *(boss.activated(cid, f"S{cid[1:]}", f"1380000{cid[1:]}0", at) for cid, at in forms.items()),
    )

    shown = {cid: (await service.wait_for(cid))["subscription"][0]["activationDate"] for cid in forms}

    assert shown == {
        "C801": "2026-11-20T09:30:00+08:00",
        "C802": "2026-11-20T09:30:00+08:00",
        "C803": "2026-11-20T09:30:00.500000+08:00",
    }
