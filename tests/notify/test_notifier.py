"""Notifiers: the file sink is idempotent by key; the WeChat and SMS adapters send what their
gateways expect, pass the dedupe key as idempotency key, and turn every failure into NotifyError."""

from __future__ import annotations

import json

import httpx
import pytest

from yikatong.core.protect import protect
from yikatong.notify.notifier import (
    ChannelRouter,
    ConsoleSink,
    FileSink,
    GatewaySimulator,
    NotifyError,
    OutgoingMessage,
    Recipient,
    SimulatedCrash,
    SmsAdapter,
    WeChatTemplateAdapter,
)

PHONE = "13912345678"


def message(key: str = "eye:reminder:20261204:7:abc", channel: str = "wechat", **recipient) -> OutgoingMessage:
    protected = protect("phone", PHONE)
    who = dict(user_id=7, display_name="测试村 陈明", openid="oABC123", phone_enc=protected.enc,
               phone_masked=protected.masked) | recipient
    return OutgoingMessage(
        outbox_id=1, dedupe_key=key, kind="reminder", channel=channel, recipient=Recipient(**who),
        title="补贴申请到期提醒", body="您有2件补贴申请将于12月7日到期，请及时办理：SQ1、SQ2。",
        payload={"path": "/inbox", "template": {"first": "您有2件补贴申请即将到期", "keyword1": "补贴申请审核",
                                                "keyword2": "2件", "keyword3": "2026-12-07", "remark": "请及时办理"},
                 "sms": {"count": "2", "due": "12月7日"}})


def test_file_sink_writes_each_key_once_even_across_restarts(tmp_path):
    path = tmp_path / "outbox" / "messages.jsonl"
    sink = FileSink(path)
    sink.send(message("k1"))
    sink.send(message("k1"))
    sink.send(message("k2"))
    FileSink(path).send(message("k1"))  # a new process (the worker restarted) knows what was written
    other = FileSink(path)
    sink.send(message("k3"))
    other.send(message("k3"))  # two writers: the second sees the first's line under the lock
    assert FileSink(path).keys() == ["k1", "k2", "k3"]
    line = json.loads(path.read_text("utf-8").splitlines()[0])
    assert line["to"]["phone"] == "139****5678" and PHONE not in path.read_text("utf-8")  # never the clear phone
    assert line["title"] == "补贴申请到期提醒" and line["payload"]["path"] == "/inbox"


def test_file_sink_survives_a_torn_last_line(tmp_path):
    path = tmp_path / "messages.jsonl"
    FileSink(path).send(message("k1"))
    with open(path, "ab") as f:
        f.write('{"dedupe_key": "k2", "title": "补'.encode()[:-1])  # died in the middle of a write (and a character)
    sink = FileSink(path)
    sink.send(message("k2"))  # the torn k2 does not count as written
    sink.send(message("k1"))
    assert sink.keys() == ["k1", "k2"]


def test_console_sink_prints_the_message():
    lines: list[str] = []
    ConsoleSink(lines.append).send(message())
    assert lines == ["【补贴申请到期提醒】→ 测试村 陈明（wechat）："
                     "您有2件补贴申请将于12月7日到期，请及时办理：SQ1、SQ2。"]


def gateway(answer, seen: list):
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request) if callable(answer) else answer

    return httpx.Client(transport=httpx.MockTransport(handler))


def test_wechat_template_message_shape():
    seen: list[httpx.Request] = []
    adapter = WeChatTemplateAdapter("https://relay.example/wechat/template", "TPL-1", "https://ykt.example",
                                    client=gateway(httpx.Response(200, json={"errcode": 0, "errmsg": "ok"}), seen))
    adapter.send(message())
    [request] = seen
    body = json.loads(request.content)
    assert body["touser"] == "oABC123" and body["template_id"] == "TPL-1"
    assert body["url"] == "https://ykt.example/inbox"
    assert body["client_msg_id"] == "eye:reminder:20261204:7:abc"
    assert request.headers["Idempotency-Key"] == "eye:reminder:20261204:7:abc"
    assert body["data"]["first"] == {"value": "您有2件补贴申请即将到期"}
    assert body["data"]["keyword2"] == {"value": "2件"} and body["data"]["remark"] == {"value": "请及时办理"}


@pytest.mark.parametrize("answer, reason", [
    (httpx.Response(200, json={"errcode": 43004, "errmsg": "require subscribe"}), "errcode=43004"),
    (httpx.Response(502, text="bad gateway"), "HTTP 502"),
])
def test_wechat_failures_are_notify_errors(answer, reason):
    adapter = WeChatTemplateAdapter("https://relay.example/t", "TPL", client=gateway(answer, []))
    with pytest.raises(NotifyError, match=reason):
        adapter.send(message())


def test_wechat_unreachable_or_unbound():
    def refuse(request):
        raise httpx.ConnectError("connection refused")

    with pytest.raises(NotifyError, match="无法连接"):
        WeChatTemplateAdapter("https://relay.example/t", "TPL", client=gateway(refuse, [])).send(message())
    with pytest.raises(NotifyError, match="未绑定微信"):
        WeChatTemplateAdapter("https://relay.example/t", "TPL", client=gateway(httpx.Response(200), [])).send(
            message(openid=None))
    with pytest.raises(NotifyError, match="YKT_WECHAT_URL"):
        WeChatTemplateAdapter("", "TPL").send(message())


def test_sms_adapter_sends_the_clear_phone_only_to_the_gateway():
    seen: list[httpx.Request] = []
    adapter = SmsAdapter("https://sms.example/send", "一卡通", "SMS_001",
                         client=gateway(httpx.Response(200, json={"code": "OK"}), seen))
    adapter.send(message(channel="sms"))
    body = json.loads(seen[0].content)
    assert body == {"phone": PHONE, "sign": "一卡通", "template": "SMS_001",
                    "params": {"count": "2", "due": "12月7日"}, "out_id": "eye:reminder:20261204:7:abc"}
    failing = SmsAdapter("https://sms.example/send", "一卡通", "SMS_001",
                         client=gateway(httpx.Response(200, json={"code": "isv.MOBILE_NUMBER_ILLEGAL"}), []))
    with pytest.raises(NotifyError, match="MOBILE_NUMBER_ILLEGAL"):
        failing.send(message(channel="sms"))
    with pytest.raises(NotifyError, match="没有登记手机号"):
        adapter.send(message(channel="sms", phone_enc=None))


def test_router_picks_the_channel_and_the_simulator_dedupes():
    wechat, sms = GatewaySimulator(), GatewaySimulator()
    router = ChannelRouter({"wechat": wechat, "sms": sms})
    router.send(message("a"))
    router.send(message("b", channel="sms"))
    router.send(message("b", channel="sms"))
    assert list(wechat.delivered) == ["a"] and sms.deliveries["b"] == 1 and sms.calls["b"] == 2
    with pytest.raises(NotifyError, match="没有“fax”通道"):
        router.send(message("c", channel="fax"))
    wechat.crash_after(2)
    with pytest.raises(SimulatedCrash):
        router.send(message("d"))
    assert wechat.deliveries["d"] == 1
    wechat.fail(1, "限流")
    with pytest.raises(NotifyError, match="限流"):
        router.send(message("e"))
    router.send(message("e"))
    assert wechat.deliveries["e"] == 1
