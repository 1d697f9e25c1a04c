"""Telling people: Prefect automations that send every shock alert's event
(`rarewatch.alert.<kind>`, flows/monthly.py), every failed or crashed rarewatch run and a late
monthly refresh through a notification block.

The block is the operator's: `rarewatch-notify`, any Prefect notification block (Slack, e-mail,
a webhook...). With `RAREWATCH_NOTIFY_WEBHOOK_URL` set, rarewatch creates it as a custom webhook
block (JSON `{"title": ..., "text": ...}` POSTed to the URL). `make serve` calls
`ensure_alert_automation`; on a server set up with `prefect deploy`, run
`python -m flows.notifications` once with PREFECT_API_URL pointing at it.
"""

from __future__ import annotations

import sys

BLOCK = "rarewatch-notify"
ALERT_AUTOMATION = "rarewatch shock alert"
FAILURE_AUTOMATION = "rarewatch run failed"
LATE_AUTOMATION = "rarewatch monthly refresh late"
LATE_AFTER_HOURS = 36  # a monthly-refresh scheduled run normally completes within minutes


def _replace(automation) -> str:  # noqa: ANN001 (a prefect Automation)
    from prefect.automations import Automation

    try:
        Automation.read(name=automation.name).delete()
    except ValueError:
        pass
    return str(automation.create().id)


def ensure_automations(webhook_url: str | None = None, late_after_hours: float = LATE_AFTER_HOURS) -> str:
    """The three automations of rarewatch, each sending through the block `rarewatch-notify`:
    shock alerts (`rarewatch.alert.*` events), a run tagged `rarewatch` entering Failed or
    Crashed, and no completed `monthly-refresh` run within `late_after_hours` of a scheduled one
    starting to be due (a proactive trigger on the deployment's Scheduled->Pending events)."""
    from prefect.automations import Automation
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import EventTrigger

    if webhook_url:
        block = CustomWebhookNotificationBlock(name=BLOCK, url=webhook_url, method="POST",
                                               json_data={"title": "{{subject}}", "text": "{{body}}"})
        block_id = block.save(BLOCK, overwrite=True)
    else:
        try:
            block_id = CustomWebhookNotificationBlock.load(BLOCK)._block_document_id
        except ValueError:
            return (f"no alert automation: no notification block {BLOCK!r}; set RAREWATCH_NOTIFY_WEBHOOK_URL, or create "
                    f"a Prefect notification block named {BLOCK} and run `python -m flows.notifications`")
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
                                       "{{ flow_run.state.message }}")],
    )
    late = Automation(
        name=LATE_AUTOMATION,
        description=f"No monthly-refresh run completed within {late_after_hours:g} h of one becoming due.",
        trigger=EventTrigger(after={"prefect.flow-run.Pending"}, expect={"prefect.flow-run.Completed"},
                             match={"prefect.resource.id": "prefect.flow-run.*"},
                             match_related={"prefect.resource.role": "flow", "prefect.resource.name": "monthly-refresh"},
                             for_each={"prefect.resource.id"}, posture="Proactive", threshold=1,
                             within=late_after_hours * 3600),
        actions=[SendNotification(block_document_id=block_id, subject="rarewatch monthly refresh is late",
                                  body=f"A monthly-refresh run became due and none completed within {late_after_hours:g} h.")],
    )
    ids = [_replace(a) for a in (alert, failed, late)]
    return (f"automations {ALERT_AUTOMATION!r}, {FAILURE_AUTOMATION!r}, {LATE_AUTOMATION!r} ({', '.join(ids)}) "
            f"send rarewatch.alert.* events, failed runs and a late monthly refresh through block {BLOCK!r}")




if __name__ == "__main__":
    from flows.settings import load_settings

    url = load_settings().notify_webhook_url
    print(ensure_automations(url.get_secret_value() if url else None))
    sys.exit(0)
