"""The alert automation (issue 11): a real local Prefect server (`prefect server start`, the
reused server of one-off commands), the automation created as `make serve` creates it, a shock
alert's event, and the webhook (a local HTTP server) receiving the notification."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from conftest import REPO

FAIL = """
from prefect import flow, tags

@flow(name="rarewatch-probe")
def probe():
    raise RuntimeError("a source failed on purpose")

try:
    with tags("rarewatch"):
        probe()
except RuntimeError:
    pass
"""

EMIT = """
from prefect.events import emit_event
emit_event(event="rarewatch.alert.china_export_drop", resource={"prefect.resource.id": "rarewatch.metal.rare_earths"},
           payload={"message": "China's exports of rare_earths in 2020-07: 1620.3 t, -69.1% year on year"})
"""


def test_an_alert_event_reaches_the_operators_webhook(tmp_path, httpserver):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "RAREWATCH_"))}
    env.update(PREFECT_HOME=str(tmp_path), RAREWATCH_PREFECT_PORT="4296", RAREWATCH_PREFECT_STARTUP_TIMEOUT="240",
               RAREWATCH_NOTIFY_WEBHOOK_URL=httpserver.url_for("/hook"))
    run = [sys.executable, "-m", "flows.cli", "server"]
    try:
        started = subprocess.run([*run, "start"], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert started.returncode == 0, started.stderr
        env["PREFECT_API_URL"] = started.stdout.split("Prefect API: ", 1)[1].strip()
        made = subprocess.run([sys.executable, "-m", "flows.notifications"], env=env, cwd=REPO, capture_output=True,
                              text=True, timeout=120)
        assert "through block" in made.stdout, made.stderr[-2000:]
        time.sleep(2)  # the server loads new automations within a second or two
        sent = subprocess.run([sys.executable, "-c", EMIT], env=env, cwd=REPO, capture_output=True, text=True,
                              timeout=120)
        assert sent.returncode == 0, sent.stderr[-2000:]
        deadline = time.monotonic() + 60
        while not httpserver.log and time.monotonic() < deadline:
            time.sleep(0.5)
        assert httpserver.log, "the webhook received nothing"
        body = json.loads(httpserver.log[0][0].get_data())
        assert body["title"] == "rarewatch alert: rarewatch.alert.china_export_drop"
        assert "-69.1%" in body["text"]
        # a run of tag rarewatch that fails is told too (issue 12)
        failed = subprocess.run([sys.executable, "-c", FAIL], env=env, cwd=REPO, capture_output=True, text=True,
                                timeout=180)
        assert failed.returncode == 0, failed.stderr[-2000:]
        deadline = time.monotonic() + 60
        while len(httpserver.log) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        titles = [json.loads(req.get_data())["title"] for req, _ in httpserver.log]
        assert any("Failed" in t for t in titles), titles
        import requests

        # the webhook URL is kept as a secret of the block: not in what the UI reads
        blocks = requests.post(f"{env['PREFECT_API_URL']}/block_documents/filter",
                               json={"include_secrets": False}, timeout=30).json()
        notify = next(b for b in blocks if b["name"] == "rarewatch-notify")
        assert notify["data"]["url"] == "{{webhook_url}}"
        assert httpserver.url_for("/hook") not in json.dumps(blocks)
        autos = requests.post(f"{env['PREFECT_API_URL']}/automations/filter", json={}, timeout=30).json()
        late = next(a for a in autos if a["name"] == "rarewatch monthly refresh late")
        assert late["trigger"]["posture"] == "Proactive" and late["trigger"]["within"] == 36 * 3600
    finally:
        subprocess.run([*run, "stop"], env=env, cwd=REPO, capture_output=True, text=True, timeout=60)


def test_secrets_come_from_prefect_secret_blocks_when_the_environment_has_none(settings_env, prefect_harness):
    from prefect.blocks.system import Secret

    from flows.secrets import with_secret_blocks

    Secret(value="key-from-a-block").save("rarewatch-comtrade-api-key", overwrite=True)
    filled = with_secret_blocks(settings_env())
    assert filled.comtrade_api_key.get_secret_value() == "key-from-a-block"
    assert filled.estat_app_id is None  # no block, no environment: unset
    assert "key-from-a-block" not in repr(filled)
    own = with_secret_blocks(settings_env(comtrade_api_key="key-from-the-environment"))
    assert own.comtrade_api_key.get_secret_value() == "key-from-the-environment"  # the environment wins


def test_any_notification_block_named_rarewatch_notify_is_used(prefect_harness):
    """The operator's block may be of any type that notifies (Slack here), not only the webhook
    rarewatch creates; a block of that name that cannot notify is refused with a message."""
    from prefect.automations import Automation
    from prefect.blocks.notifications import SlackWebhook
    from prefect.blocks.system import Secret

    from flows import notifications

    Secret(value="not a notifier").save(notifications.BLOCK, overwrite=True)
    said = notifications.ensure_automations(None, 36)
    assert "cannot send notifications" in said and "secret" in said
    Secret.delete(notifications.BLOCK)
    block_id = SlackWebhook(url="http://127.0.0.1:9/never-called").save(notifications.BLOCK, overwrite=True)
    said = notifications.ensure_automations(None, 36)
    assert "through block" in said, said
    for name in (notifications.ALERT_AUTOMATION, notifications.FAILURE_AUTOMATION, notifications.LATE_AUTOMATION):
        assert Automation.read(name=name).actions[0].block_document_id == block_id
