"""The gateway's settings: the specs (specs.py: one `Settings` field per setting, with its name,
default, parser and help), the value parsers (parsers.py), the components' configs built from the
parsed values (configs.py), and `load_settings` (load.py), which parses them once into typed
values. settings/ imports components (their config types and parsers); no component imports
settings/ (tests/unit/test_import_map.py)."""
