"""The gateway's settings: the specs (specs.py: one `Settings` field per setting, with its name,
default, parser and help), the value parsers (parsers.py), the bridge to the components' configs
(configs.py), and `load_settings` (load.py), which parses them once into typed values. Import from
those modules: the components' configs read their defaults from specs.py, so this package imports
nothing at its top (load.py imports those configs)."""
