"""`ykt worker`: the electronic eye (电子眼), the outbox dispatcher and the background jobs (后台任务), in
one loop."""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from enum import StrEnum

import typer

from yikatong.core.clock import format_beijing

JOB_POLL = 2.0  # seconds between looks for queued jobs


class Sink(StrEnum):
    FILE = "file"
    CONSOLE = "console"
    GATEWAY = "gateway"


@dataclass
class Round:
    publicity_moved: int
    reminded: int
    escalated: int
    reminders: int
    escalations: int
    unreached: int
    sent: int
    retrying: int
    failed: int
    jobs: int = 0


def build_notifier(sink: Sink):
    """The notifier of `--sink`: a development sink, or the real gateways by channel."""
    from yikatong.core.errors import Invalid
    from yikatong.core.settings import get_settings
    from yikatong.disbursement.arrival import ARRIVAL
    from yikatong.notify.notifier import (
        Channel,
        ChannelRouter,
        ConsoleSink,
        FileSink,
        SmsAdapter,
        WeChatTemplateAdapter,
    )

    settings = get_settings()
    if sink is Sink.CONSOLE:
        return ConsoleSink(echo=lambda line: typer.echo(line))
    if sink is Sink.FILE:
        return FileSink(settings.data_dir / "outbox" / "messages.jsonl")
    if not settings.wechat_url and not settings.sms_url:
        raise Invalid("--sink gateway 需要配置 YKT_WECHAT_URL 或 YKT_SMS_URL")
    if settings.sms_url and not settings.sms_arrival_template:
        # the reminders' template would render an arrival SMS (到账短信) as the wrong text
        raise Invalid("配置了 YKT_SMS_URL 时还须配置到账短信模板 YKT_SMS_ARRIVAL_TEMPLATE")
    return ChannelRouter({
        Channel.WECHAT.value: WeChatTemplateAdapter(settings.wechat_url, settings.wechat_template_id,
                                                    settings.public_url),
        Channel.SMS.value: SmsAdapter(settings.sms_url, settings.sms_sign, settings.sms_template,
                                      templates={ARRIVAL: settings.sms_arrival_template}),
        # staff with neither openid nor phone: the line goes to the log (journald under systemd)
        Channel.CONSOLE.value: ConsoleSink(echo=lambda line: typer.echo(line)),
    })


def run_round(dispatcher, clock, region: str | None, should_stop=lambda: False) -> Round:
    """Scan in one transaction, then deliver what is due."""
    from yikatong.core.db import transaction
    from yikatong.workflow.eye import scan

    with transaction() as session:
        report = scan(session, clock.now(), region=region)
    sent = dispatcher.run(should_stop=should_stop)
    return Round(report.publicity_moved, report.reminded, report.escalated, report.reminders, report.escalations,
                 report.unreached, sent.sent, sent.retrying, sent.failed)


def print_round(console, number: int, at, r: Round) -> None:
    when = format_beijing(at, "%Y-%m-%d %H:%M:%S")
    console.print(f"[bold]第{number}轮[/bold] {when}  公示期满转下一环节 {r.publicity_moved} 件 · "
                  f"到期提醒 {r.reminded} 件/{r.reminders} 条 · 超期督办 {r.escalated} 件/{r.escalations} 条 · "
                  f"发送成功 {r.sent} 条 · 待重试 {r.retrying} 条 · 发送失败 {r.failed} 条"
                  + (f" · 后台任务 {r.jobs} 个" if r.jobs else ""))
    if r.unreached:
        console.print(f"  其中 {r.unreached} 件所在环节没有可通知的在岗人员（请在用户管理中配置经办人）")


def register(app: typer.Typer) -> None:
    @app.command()
    def worker(
        once: bool = typer.Option(False, "--once", help="Do one round and exit (cron, tests)"),
        interval: float = typer.Option(60.0, "--interval", min=1.0, help="Seconds between rounds"),
        sink: Sink = typer.Option(Sink.FILE, "--sink", case_sensitive=False,
                                  help="Where messages go: 'file' appends them to YKT_DATA_DIR/outbox/messages.jsonl, "
                                       "'console' prints them, 'gateway' sends WeChat template messages and SMS "
                                       "(YKT_WECHAT_URL, YKT_SMS_URL)"),
        region: str | None = typer.Option(None, "--region", help="Only watch applications of this region code "
                                          "and below (e.g. 511025 for one county); default: everything"),
    ) -> None:
        """The electronic eye (电子眼). Every round it closes publicity lists whose window has ended,
        reminds handlers of applications due soon (e.g. one working day before the deadline),
        escalates overdue ones to the office's leader and to the region's supervisors, and then
        delivers the messages waiting in the outbox. Each person gets one message per round, listing
        the applications. Between rounds it runs the background jobs started on the pages (city runs,
        dry runs, large imports and exports), and again any job whose runner died. A message is sent
        exactly once even if the worker is stopped or crashes
        and is started again. Stop it with Ctrl-C or SIGTERM: the message in hand is finished first (press
        Ctrl-C twice to leave at once)."""
        from rich.console import Console

        from yikatong.core import clock as clocks
        from yikatong.jobs.runner import Runner
        from yikatong.notify.dispatcher import Dispatcher
        from yikatong.security.scope import pad_code

        console = Console()
        clock = clocks.system_clock  # looked up at run time, so tests can substitute a FixedClock
        if region:
            try:
                region = pad_code(region)
            except ValueError as e:
                raise typer.BadParameter(str(e), param_hint="--region") from None
        dispatcher = Dispatcher(build_notifier(sink), clock)
        stop = threading.Event()

        def on_signal(signum, frame) -> None:
            if stop.is_set():  # asked twice: leave now (what was not marked sent goes out after the restart)
                raise KeyboardInterrupt
            stop.set()
            console.print("正在停止：处理完当前消息后退出（再按一次 Ctrl-C 立即退出）")

        previous = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, on_signal)
        runner = Runner(clock)
        number = 0
        try:
            while not stop.is_set():
                number += 1
                result = run_round(dispatcher, clock, region, should_stop=stop.is_set)
                result.jobs = len(runner.run_pending(stop.is_set))
                print_round(console, number, clock.now(), result)
                if once:
                    break
                # between rounds, queued jobs start within JOB_POLL seconds of being started on a page
                waited = 0.0
                while not stop.wait(min(JOB_POLL, interval - waited)):
                    waited += JOB_POLL
                    for job_id in runner.run_pending(stop.is_set):
                        console.print(f"后台任务 #{job_id} 已结束")
                    if waited >= interval:
                        break
        except KeyboardInterrupt:
            console.print("已立即停止：未标记为已发送的消息将在下次启动时发送，收件人不会重复收到。")
            raise typer.Exit(130) from None
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if stop.is_set():
            console.print("已停止。")
