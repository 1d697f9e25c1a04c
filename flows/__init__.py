"""rarewatch: Japan's exposure to a cut-off of rare earths and minor metals.

`flows/` holds the Prefect flows (thin) and the plain, typed functions they call.
"""

import os

# Prefect must never reach out to the internet: no analytics, no telemetry. Set before any
# Prefect import so that every entry point (CLI, tests, workers) inherits it; an operator
# can still override these in the environment.
for _name, _value in {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    "PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS": "false",
}.items():
    os.environ.setdefault(_name, _value)
