"""`python -m funchost`: the local Functions host (see funchost/host.py)."""

from .host import main

main()
