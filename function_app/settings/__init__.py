"""The gateway's settings: the specs (specs.py: one `Settings` field per setting, with its name,
default, parser and help), the value parsers (parsers.py), and `load_settings` (load.py), which
parses them once into typed values. Import from those modules: the limiter's config reads its
defaults from specs.py, so this package imports nothing at its top."""
