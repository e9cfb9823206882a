"""The gateway's API-key table exists in Azure and the app is told its name."""

from __future__ import annotations

from .bicep_ast import MAIN, app_settings, text


def test_the_keys_table_is_created_and_wired_into_the_app_settings() -> None:
    main = MAIN.read_text(encoding="utf-8")
    assert "param gatewayKeysTableName string = 'gatewaykeys'" in main
    storage_block = main[main.index("module storage "):]
    tables = storage_block[storage_block.index("tableNames: ["):storage_block.index("]")]
    assert "gatewayKeysTableName" in tables
    _, node = app_settings()["GATEWAY_KEYS_TABLE"]
    assert text(node).strip() == "gatewayKeysTableName"
