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

# polars allocates with jemalloc, which keeps freed pages for 10 s by default and gives each
# thread its own arena: a parallel backfill's landing left ~200 MB resident into the indicator
# step (peak 1,042 MB at 38 years). A background thread returning pages unused for 1 s costs no
# measurable time (benchmarks/results.md). Read by jemalloc when polars is first imported, so it
# applies when rarewatch is imported first (the CLI, the flows); `_RJEM_MALLOC_CONF` overrides.
os.environ.setdefault("_RJEM_MALLOC_CONF", "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0")
