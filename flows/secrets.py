"""Secrets from Prefect Secret blocks, for operators who keep them in Prefect rather than in the
worker's environment: `rarewatch-estat-app-id` and `rarewatch-comtrade-api-key`. The environment
wins when set; a block is read only inside a flow run (a Prefect API is then at hand)."""

from __future__ import annotations

import logging

from pydantic import SecretStr

from flows.settings import Settings

BLOCKS = {"estat_app_id": "rarewatch-estat-app-id", "comtrade_api_key": "rarewatch-comtrade-api-key"}
log = logging.getLogger(__name__)


def with_secret_blocks(settings: Settings) -> Settings:
    """`settings` with each secret left unset filled from its Secret block, when one exists."""
    missing = {field: block for field, block in BLOCKS.items() if getattr(settings, field) is None}
    if not missing:
        return settings
    from prefect.blocks.system import Secret

    found: dict[str, SecretStr] = {}
    for field, block in missing.items():
        try:
            value = Secret.load(block).get()
        except ValueError:  # no such block: the source runs without the secret, as documented
            continue
        except Exception as e:  # noqa: BLE001 (the API unreachable: say so, never show the value)
            log.warning("Secret block %s could not be read (%s); %s stays unset", block, type(e).__name__, field)
            continue
        if value:
            found[field] = SecretStr(str(value))
    return settings.model_copy(update=found) if found else settings
