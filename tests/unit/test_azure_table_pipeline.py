"""The Table client's pipeline (adapters/azure_table.py): the policies idle for the gateway are
left out, the others (authentication, retries, headers) kept, and a policy that would act is
kept: a proxy, a hook, azure-core tracing, or the HTTP logger at INFO."""

from __future__ import annotations

import logging

import pytest
from azure.core.pipeline.policies import (
    CustomHookPolicy,
    DistributedTracingPolicy,
    HttpLoggingPolicy,
    NetworkTraceLoggingPolicy,
    ProxyPolicy,
)
from azure.data.tables.aio import TableServiceClient

from function_app.adapters.azure_table import LazyTable, idle_policy, lean_service

CONNECTION = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
              "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
              "KBHBeksoGMGw==;TableEndpoint=http://127.0.0.1:1/devstoreaccount1;")
IDLE = {"ProxyPolicy", "CustomHookPolicy", "NetworkTraceLoggingPolicy",
        "DistributedTracingPolicy", "HttpLoggingPolicy"}


def names(policies) -> list[str]:
    return [type(getattr(p, "_policy", p)).__name__ for p in policies]


def pipeline_of(client) -> list[str]:
    return names(client._client._client._pipeline._impl_policies)


@pytest.fixture
def quiet_azure():
    logger = logging.getLogger("azure")
    before = logger.level
    logger.setLevel(logging.WARNING)  # STORAGE_SDK_LOG_LEVEL's default
    yield logger
    logger.setLevel(before)


async def test_the_idle_policies_are_left_out_of_every_table_client(quiet_azure):
    service = TableServiceClient.from_connection_string(CONNECTION, retry_total=0)
    full = names(service._policies)
    table = LazyTable(service, "routing")
    kept = [n for n in full if n not in IDLE]
    assert pipeline_of(table.client) == kept
    assert {"SharedKeyCredentialPolicy", "AsyncTablesRetryPolicy", "StorageHeadersPolicy",
            "RequestIdPolicy", "UserAgentPolicy", "ContentDecodePolicy"} <= set(kept)
    # Every later pipeline of the service (the SDK's own, e.g. create_table_if_not_exists's)
    # is built from the same list, so the shared retry policy keeps one chain.
    assert pipeline_of(service.get_table_client("other")) == kept
    lean_service(service)  # idempotent
    assert names(service._policies) == kept
    await service.close()


def test_a_policy_that_would_act_is_kept(quiet_azure, monkeypatch):
    assert idle_policy(ProxyPolicy())
    assert not idle_policy(ProxyPolicy(proxies={"https": "http://proxy:3128"}))
    assert idle_policy(CustomHookPolicy())
    assert not idle_policy(CustomHookPolicy(raw_request_hook=lambda request: None))
    assert idle_policy(NetworkTraceLoggingPolicy())
    assert not idle_policy(NetworkTraceLoggingPolicy(logging_enable=True))
    assert idle_policy(HttpLoggingPolicy())
    quiet_azure.setLevel(logging.INFO)  # STORAGE_SDK_LOG_LEVEL=INFO: every call is logged
    assert not idle_policy(HttpLoggingPolicy())
    assert idle_policy(DistributedTracingPolicy())
    monkeypatch.setenv("AZURE_TRACING_ENABLED", "true")
    assert not idle_policy(DistributedTracingPolicy())
