"""Tenants and their gateway API keys: key format and hashing, key records, access checks,
budget periods and usage. Pure: no I/O here; the KeyStore adapters live in function_app/adapters/.
"""
