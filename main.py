"""The Python worker's entry file (PYTHON_SCRIPT_FILE_NAME=main.py).

It cannot be named function_app.py: the function_app/ package beside it would shadow it. Exactly
one FunctionApp is visible here.
"""

from function_app.app import app

__all__ = ["app"]
