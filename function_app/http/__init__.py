"""HTTP messages as the pipeline sees them: requests, responses, headers and the request context."""
