"""RAREWATCH_WAREHOUSE as an object-store URL, against a local S3-compatible server (moto)."""

from __future__ import annotations

import shutil

import pytest

from conftest import SAMPLES

BUCKET = "rarewatch-test"


@pytest.fixture
def s3(monkeypatch):
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(k, v)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    boto3.client("s3", endpoint_url=f"http://{host}:{port}").create_bucket(Bucket=BUCKET)
    yield f"s3://{BUCKET}/rw?endpoint_override={host}:{port}&scheme=http&region=us-east-1"
    server.stop()


@pytest.mark.usefixtures("prefect_harness")
def test_monthly_refresh_into_s3(s3, settings_env):
    from flows.indicators import IMPORT_DEPENDENCY
    from flows.monthly import monthly_refresh
    from flows.sources.japan_customs import JapanCustoms
    from flows.warehouse import Warehouse

    shutil.copytree(SAMPLES / "japan_customs", settings_env.inbox / "japan_customs")
    settings_env(warehouse=s3)
    result = monthly_refresh()
    assert result["japan_customs"]["status"] == "ok"
    wh = Warehouse(s3)
    assert wh.root_url == f"s3://{BUCKET}/rw"
    assert len(wh.partition_files(JapanCustoms.spec)) == 24
    dep = wh.read_dataset(IMPORT_DEPENDENCY)
    assert dep.filter((dep["metal"] == "rare_earths") & (dep["freq"] == "A")).height == 4
    manifest = wh.raw_manifest("japan_customs")
    assert all(p.startswith(f"s3://{BUCKET}/rw/raw/") and "endpoint" not in p for p in manifest["raw_path"])
    assert not wh.list_files("_staging", suffix=".tmp")
    assert not (settings_env.warehouse).exists()  # nothing went to the local default
