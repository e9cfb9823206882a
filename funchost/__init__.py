"""A local Azure Functions host for this app, outside function_app/ (Azure never runs it).

It drives the real Python worker library (`azure_functions_runtime`) in a worker process of its
own, builds its route table from the bindings that worker reports, and forwards each HTTP request
to the worker's HTTP server alongside an invocation, as the Functions host does. Run with
`python -m funchost` (see `funchost/host.py`).
"""
