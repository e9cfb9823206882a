"""AI inference gateway on Azure Functions. The worker's entry file is the root main.py."""
