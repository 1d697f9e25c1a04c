"""Telling people: Prefect automations that send every shock alert's event
(`rarewatch.alert.<kind>`, flows/monthly.py), every failed or crashed rarewatch run and a late
monthly refresh through a notification block.

The block is the operator's: `rarewatch-notify`, any Prefect notification block (Slack, e-mail,
a webhook...). With `RAREWATCH_NOTIFY_WEBHOOK_URL` set, rarewatch creates it as a custom webhook
block (JSON `{"title": ..., "text": ...}` POSTed to the URL). `make serve` calls
`ensure_automations` (through this module's main, reading RAREWATCH_NOTIFY_WEBHOOK_URL and
RAREWATCH_LATE_AFTER_HOURS); on a server set up with `prefect deploy`, run
`python -m flows.notifications` once with PREFECT_API_URL pointing at it.
"""

from __future__ import annotations

import sys
from uuid import UUID

BLOCK = "rarewatch-notify"
ALERT_AUTOMATION = "rarewatch shock alert"
FAILURE_AUTOMATION = "rarewatch run failed"
LATE_AUTOMATION = "rarewatch monthly refresh late"


def _replace(automation) -> str:  # noqa: ANN001 (a prefect Automation)
    from prefect.automations import Automation

    try:
        Automation.read(name=automation.name).delete()
    except ValueError:
        pass
    return str(automation.create().id)


def operator_block() -> tuple[UUID | None, str]:
    """The operator's notification block named `rarewatch-notify`, of any type that can notify
    (Prefect's `notify` capability: Slack, e-mail, Teams, Apprise, a custom webhook...)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        named = [d for d in client.read_block_documents(include_secrets=False) if d.name == BLOCK]
    notifying = [d for d in named if d.block_schema is not None and "notify" in d.block_schema.capabilities]
    if len(notifying) == 1:
        return notifying[0].id, ""
    if len(notifying) > 1:
        kinds = ", ".join(sorted(d.block_type.slug for d in notifying if d.block_type))
        return None, f"several notification blocks are named {BLOCK!r} ({kinds}); keep one"
    if named:
        kinds = ", ".join(sorted(d.block_type.slug for d in named if d.block_type))
        return None, f"the block {BLOCK!r} ({kinds}) cannot send notifications"
    return None, f"no notification block {BLOCK!r}"


def ensure_automations(webhook_url: str | None, late_after_hours: float) -> str:
    """The three automations of rarewatch, each sending through the block `rarewatch-notify`:
    shock alerts (`rarewatch.alert.*` events), a run tagged `rarewatch` entering Failed or
    Crashed, and no completed `monthly-refresh` run within `late_after_hours` of one becoming
    due (a proactive trigger opened by the deployment's runs going Late or Pending)."""
    from prefect.automations import Automation
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import EventTrigger

    if webhook_url:
        # the URL is a secret of the block (webhook URLs carry tokens): the UI shows `{{webhook_url}}`
        block = CustomWebhookNotificationBlock(name=BLOCK, url="{{webhook_url}}", method="POST",
                                               secrets={"webhook_url": webhook_url},
                                               json_data={"title": "{{subject}}", "text": "{{body}}"})
        block_id = block.save(BLOCK, overwrite=True)
    else:
        block_id, problem = operator_block()
        if block_id is None:
            return (f"no automation set up: {problem}; set RAREWATCH_NOTIFY_WEBHOOK_URL, or create a Prefect "
                    f"notification block named {BLOCK} (Slack, e-mail, Teams, a webhook...) and run "
                    "`python -m flows.notifications`")
    alert = Automation(
        name=ALERT_AUTOMATION,
        description="Every new rarewatch shock alert (China's exports down, China's share moved, a top supplier "
                    "gone, the target stock up), sent through the rarewatch-notify block.",
        trigger=EventTrigger(expect={"rarewatch.alert.*"}, match={"prefect.resource.id": "rarewatch.*"},
                             posture="Reactive", threshold=1, within=0),
        actions=[SendNotification(block_document_id=block_id, subject="rarewatch alert: {{ event.event }}",
                                  body="{{ event.payload.message }}")],
    )
    failed = Automation(
        name=FAILURE_AUTOMATION,
        description="A rarewatch flow run (tag rarewatch) ended Failed or Crashed.",
        trigger=EventTrigger(expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
                             match={"prefect.resource.id": "prefect.flow-run.*"},
                             match_related={"prefect.resource.role": "tag", "prefect.resource.id": "prefect.tag.rarewatch"},
                             posture="Reactive", threshold=1, within=0),
        actions=[SendNotification(block_document_id=block_id,
                                  subject="rarewatch run {{ flow_run.name }} {{ flow_run.state.name }}",
                                  body="Flow run {{ flow_run.name }} of {{ flow.name }} entered {{ flow_run.state.name }}: "
                                       "{{ flow_run.state.message }}\n{{ flow_run|ui_url }}")],
    )
    # A scheduled run that no worker starts is marked Late by Prefect's late-runs service (15 s
    # after its time); one a worker picks up goes Pending. Either opens a window of
    # `late_after_hours` per flow run in which a Completed is expected: a dead worker, a hung run
    # and a failed one (told at once by `failed` too) all end in this notification.
    late = Automation(
        name=LATE_AUTOMATION,
        description=f"No monthly-refresh run completed within {late_after_hours:g} h of one becoming due.",
        trigger=EventTrigger(after={"prefect.flow-run.Late", "prefect.flow-run.Pending"},
                             expect={"prefect.flow-run.Completed"},
                             match={"prefect.resource.id": "prefect.flow-run.*"},
                             match_related={"prefect.resource.role": "deployment",
                                            "prefect.resource.name": "monthly-refresh"},
                             for_each={"prefect.resource.id"}, posture="Proactive", threshold=1,
                             within=late_after_hours * 3600),
        actions=[SendNotification(block_document_id=block_id, subject="rarewatch monthly refresh is late",
                                  # a run never started has Prefect's random name (its own is given at start)
                                  body=f"monthly-refresh run {{{{ flow_run.name }}}} went {{{{ flow_run.state.name }}}} and "
                                       f"has not completed within {late_after_hours:g} h. Is the worker running "
                                       "(make serve)? Did the run fail?\n{{ flow_run|ui_url }}")],
    )
    ids = [_replace(a) for a in (alert, failed, late)]
    return (f"automations {ALERT_AUTOMATION!r}, {FAILURE_AUTOMATION!r}, {LATE_AUTOMATION!r} ({', '.join(ids)}) "
            f"send rarewatch.alert.* events, failed runs and a late monthly refresh through block {BLOCK!r}")




if __name__ == "__main__":
    from flows.settings import load_settings

    settings = load_settings()
    url = settings.notify_webhook_url
    print(ensure_automations(url.get_secret_value() if url else None, settings.late_after_hours))
    sys.exit(0)
