"""The settings reference in docs/ is generated from SPECS and must match the code."""

from function_app.settings.specs import SPECS
from scripts import settings_doc


def test_committed_settings_reference_matches_specs():
    committed = settings_doc.TARGET.read_text(encoding="utf-8")
    assert committed == settings_doc.render(), "docs/SETTINGS.md is stale: run `make docs`"


def test_every_spec_has_a_row_and_secrets_are_marked():
    page = settings_doc.render()
    for spec in SPECS:
        assert f"| `{spec.name}`" in page
    assert "`RATE_LIMIT_STORAGE_CONNECTION` (secret)" in page


def test_check_mode_reports_a_stale_page(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "SETTINGS.md"
    stale.write_text("old\n", encoding="utf-8")
    monkeypatch.setattr(settings_doc, "TARGET", stale)
    assert settings_doc.main(["--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert settings_doc.main([]) == 0
    assert settings_doc.main(["--check"]) == 0
