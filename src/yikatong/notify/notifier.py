"""Notifiers: where an outbox message goes (消息通道).

Every notifier has one method, `send(message)`, which either delivers or raises NotifyError. A
notifier that talks to a real gateway passes the message's dedupe key as the gateway's idempotency
key, so a message sent twice (the worker crashed after sending, before marking it sent) reaches the
person once. See notify.dispatcher for the whole exactly-once argument.

- ConsoleSink: prints (development; not idempotent, it is only for eyes).
- FileSink: appends JSON lines to YKT_DATA_DIR/outbox/messages.jsonl, skipping keys already written.
- WeChatTemplateAdapter: WeChat official-account template messages (公众号模板消息), `client_msg_id`.
- SmsAdapter: an SMS gateway (短信平台), `out_id`.
- GatewaySimulator: a gateway for tests; dedupes by key, can fail or "crash" after delivering.
"""

from __future__ import annotations

import fcntl
import json
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import httpx

from yikatong.core.protect import reveal


class Channel(StrEnum):
    WECHAT = "wechat"  # 公众号模板消息
    SMS = "sms"  # 短信
    CONSOLE = "console"  # no contact on file: only the outbox (and the console) sees it


class NotifyError(Exception):
    """A message could not be delivered this time (the dispatcher retries it)."""


@dataclass(frozen=True)
class Recipient:
    user_id: int | None
    display_name: str
    openid: str | None = None
    phone_enc: bytes | None = None  # decrypted only inside the SMS adapter
    phone_masked: str | None = None
    person_id: int | None = None  # a citizen of the registry (arrival SMS) instead of a staff user


@dataclass(frozen=True)
class OutgoingMessage:
    outbox_id: int
    dedupe_key: str  # the gateway's idempotency key (WeChat client_msg_id, SMS out_id)
    kind: str
    channel: str
    recipient: Recipient
    title: str
    body: str
    payload: dict[str, Any] = field(default_factory=dict)


class Notifier(Protocol):
    def send(self, message: OutgoingMessage) -> None:
        """Deliver the message or raise NotifyError."""
        ...


def _summary(message: OutgoingMessage) -> dict[str, Any]:
    """What may be written to a file or a console: no clear phone number."""
    r = message.recipient
    return {"dedupe_key": message.dedupe_key, "outbox_id": message.outbox_id, "kind": message.kind,
            "channel": message.channel,
            "to": {"user_id": r.user_id, "person_id": r.person_id, "name": r.display_name, "openid": r.openid,
                   "phone": r.phone_masked},
            "title": message.title, "body": message.body, "payload": message.payload}


class ConsoleSink:
    """Prints each message (development). Not idempotent: a re-sent message prints twice."""

    def __init__(self, echo=print):
        self.echo = echo

    def send(self, message: OutgoingMessage) -> None:
        r = message.recipient
        self.echo(f"【{message.title}】→ {r.display_name}（{message.channel}）：{message.body}")


class FileSink:
    """Appends one JSON line per message to a file and skips a dedupe key it already wrote, so it is
    idempotent like a real gateway. Several processes may share the file: the check and the append
    happen under an exclusive lock, after reading whatever the others appended."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._keys: set[str] = set()
        self._offset = 0  # bytes of the file already read into _keys

    def _catch_up(self, handle) -> None:
        handle.seek(self._offset)
        data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]  # a line cut short by a crash is not a message
        for line in complete.splitlines():
            try:
                self._keys.add(json.loads(line)["dedupe_key"])
            except (ValueError, KeyError):
                continue
        self._offset += len(complete)

    def send(self, message: OutgoingMessage) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a+b") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    self._catch_up(handle)
                    if message.dedupe_key in self._keys:
                        return
                    handle.seek(0, 2)
                    if handle.tell() > self._offset:  # a torn last line: start ours on a new line
                        handle.write(b"\n")
                    line = json.dumps(_summary(message), ensure_ascii=False, sort_keys=True).encode() + b"\n"
                    handle.write(line)
                    handle.flush()
                    self._offset = handle.tell()
                    self._keys.add(message.dedupe_key)
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
        except OSError as e:
            raise NotifyError(f"写入消息文件失败：{e}") from e

    def keys(self) -> list[str]:
        """Every dedupe key in the file, in order (tests and operators)."""
        if not self.path.exists():
            return []
        return [json.loads(line)["dedupe_key"] for line in self.path.read_text("utf-8").splitlines() if line.strip()]


def _post(client: httpx.Client, url: str, body: dict[str, Any], key: str, what: str) -> dict[str, Any]:
    try:
        response = client.post(url, json=body, headers={"Idempotency-Key": key})
    except httpx.HTTPError as e:
        raise NotifyError(f"{what}接口无法连接：{e.__class__.__name__} {e}") from e
    if response.status_code >= 300:
        raise NotifyError(f"{what}接口返回 HTTP {response.status_code}：{response.text[:200]}")
    try:
        answer = response.json()
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


class WeChatTemplateAdapter:
    """WeChat official-account template message (公众号模板消息).

    POSTs {touser, template_id, url, client_msg_id, data: {first, keyword1.., remark}} to `url` —
    the template-send API (…/cgi-bin/message/template/send?access_token=…) or, better, an internal
    relay that holds the access token. WeChat answers {"errcode": 0, "errmsg": "ok"}; any other
    errcode is a failure. `client_msg_id` makes WeChat drop a repeat for the same openid, but WeChat
    promises that only for 10 minutes, so a relay should keep its own record of keys it sent."""

    def __init__(self, url: str, template_id: str, public_url: str = "", client: httpx.Client | None = None,
                 timeout: float = 10.0):
        self.url, self.template_id, self.public_url = url, template_id, public_url
        self.client = client or httpx.Client(timeout=timeout)

    def request(self, message: OutgoingMessage) -> dict[str, Any]:
        template = message.payload.get("template") or {}
        data = {name: {"value": str(value)} for name, value in template.items()}
        data.setdefault("first", {"value": message.title})
        data.setdefault("remark", {"value": message.body})
        return {"touser": message.recipient.openid, "template_id": self.template_id,
                "url": self.public_url + message.payload.get("path", "/") if self.public_url else "",
                "client_msg_id": message.dedupe_key, "data": data}

    def send(self, message: OutgoingMessage) -> None:
        if not self.url:
            raise NotifyError("未配置微信模板消息接口（YKT_WECHAT_URL）")
        if not message.recipient.openid:
            raise NotifyError(f"{message.recipient.display_name}未绑定微信")
        answer = _post(self.client, self.url, self.request(message), message.dedupe_key, "微信模板消息")
        if answer.get("errcode", 0) != 0:
            raise NotifyError(f"微信模板消息发送失败：errcode={answer.get('errcode')} {answer.get('errmsg', '')}")


class SmsAdapter:
    """An SMS gateway (短信平台): POSTs {phone, sign, template, params, out_id}. The gateway keeps
    `out_id` as its idempotency key. 2xx is success unless the JSON answer carries a `code` other
    than "OK" or 0. The clear phone number exists only inside send().

    Gateways send registered templates: `templates` maps a message kind to its own template code
    (the arrival SMS has one), every other kind goes out with `template`."""

    def __init__(self, url: str, sign: str, template: str, client: httpx.Client | None = None, timeout: float = 10.0,
                 templates: dict[str, str] | None = None):
        self.url, self.sign, self.template = url, sign, template
        self.templates = templates or {}
        self.client = client or httpx.Client(timeout=timeout)

    def send(self, message: OutgoingMessage) -> None:
        if not self.url:
            raise NotifyError("未配置短信接口（YKT_SMS_URL）")
        if not message.recipient.phone_enc:
            raise NotifyError(f"{message.recipient.display_name}没有登记手机号")
        template = self.templates.get(message.kind) or self.template
        body = {"phone": reveal("phone", message.recipient.phone_enc), "sign": self.sign, "template": template,
                "params": message.payload.get("sms") or {"text": message.body}, "out_id": message.dedupe_key}
        answer = _post(self.client, self.url, body, message.dedupe_key, "短信")
        code = answer.get("code", "OK")
        if code not in ("OK", 0, "0"):
            raise NotifyError(f"短信发送失败：{code} {answer.get('message', '')}")


class ChannelRouter:
    """Sends each message through the notifier of its channel."""

    def __init__(self, by_channel: dict[str, Notifier]):
        self.by_channel = by_channel

    def send(self, message: OutgoingMessage) -> None:
        notifier = self.by_channel.get(message.channel)
        if notifier is None:
            raise NotifyError(f"没有“{message.channel}”通道")
        notifier.send(message)


class SimulatedCrash(BaseException):
    """The worker process dies (tests). A BaseException, so nothing in the dispatcher catches it."""


class GatewaySimulator:
    """A message gateway for tests. Like a real gateway with idempotency keys, it delivers a key
    once and answers success for repeats. `fail(n, reason)` makes the next n calls fail,
    `fail_key(key, reason)` every call for one key (reason None: stop failing); `crash_after(n)`
    and `crash_on(key)` kill the caller right after a delivery (the message is out, the worker
    never hears back)."""

    def __init__(self) -> None:
        self.delivered: dict[str, OutgoingMessage] = {}
        self.deliveries: Counter[str] = Counter()  # real deliveries per key: must never exceed 1
        self.calls: Counter[str] = Counter()  # how often each key was handed over
        self._failures: list[str] = []
        self._failing_keys: dict[str, str] = {}
        self._crash_at: int | None = None
        self._crash_key: str | None = None

    def fail(self, times: int = 1, reason: str = "网关超时") -> None:
        self._failures.extend([reason] * times)

    def fail_key(self, key: str, reason: str | None = "网关超时") -> None:
        if reason is None:
            self._failing_keys.pop(key, None)
        else:
            self._failing_keys[key] = reason

    def crash_after(self, deliveries: int) -> None:
        self._crash_at = deliveries

    def crash_on(self, key: str) -> None:
        self._crash_key = key

    def send(self, message: OutgoingMessage) -> None:
        key = message.dedupe_key
        self.calls[key] += 1
        if key in self._failing_keys:
            raise NotifyError(self._failing_keys[key])
        if self._failures:
            raise NotifyError(self._failures.pop(0))
        if key in self.delivered:
            return
        self.delivered[key] = message
        self.deliveries[key] += 1
        if (self._crash_at is not None and len(self.delivered) >= self._crash_at) or key == self._crash_key:
            self._crash_at = self._crash_key = None
            raise SimulatedCrash(f"worker crashed after delivering {key}")
