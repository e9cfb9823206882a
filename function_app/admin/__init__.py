"""The admin CLI for tenants and gateway API keys: `python -m function_app.admin --help`."""
