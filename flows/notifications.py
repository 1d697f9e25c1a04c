"""Telling people: a Prefect automation that sends every shock alert's event
(`rarewatch.alert.<kind>`, flows/monthly.py) through a notification block.

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


def ensure_alert_automation(webhook_url: str | None = None) -> str:
    """Create (or replace) the automation; returns what was done, for the operator."""
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
    try:
        Automation.read(name=ALERT_AUTOMATION).delete()
    except ValueError:
        pass
    automation = Automation(
        name=ALERT_AUTOMATION,
        description="Every new rarewatch shock alert (China's exports down, China's share moved, a top supplier "
                    "gone, the target stock up), sent through the rarewatch-notify block.",
        trigger=EventTrigger(expect={"rarewatch.alert.*"}, match={"prefect.resource.id": "rarewatch.*"},
                             posture="Reactive", threshold=1, within=0),
        actions=[SendNotification(block_document_id=block_id, subject="rarewatch alert: {{ event.event }}",
                                  body="{{ event.payload.message }}")],
    ).create()
    return f"automation {ALERT_AUTOMATION!r} ({automation.id}) sends rarewatch.alert.* events through block {BLOCK!r}"


if __name__ == "__main__":
    from flows.settings import load_settings

    url = load_settings().notify_webhook_url
    print(ensure_alert_automation(url.get_secret_value() if url else None))
    sys.exit(0)
