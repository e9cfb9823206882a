"""What a client sees when a guardrail stops a request (rendered by stages/errors.py in the
route's own shape: OpenAI's `{"error": {"message", "type", "param", "code"}}` on /v1/*)."""

from __future__ import annotations

from ..core.errors import BadRequest, Overloaded, PayloadTooLarge

FINDING_HEADER = "x-gateway-guardrails"


class ContentFiltered(BadRequest, code="content_filter",
                      message="The request was blocked by the gateway's content policy."):
    """400: a check with action `block` fired; `check` and `category` name it (message and
    the x-gateway-guardrails header), never the text that fired it."""

    def __init__(self, check: str, category: str):
        super().__init__(f"The request was blocked by the gateway's content policy: check "
                         f"{check}, category {category}.",
                         headers={FINDING_HEADER: f"blocked; check={check}; category={category}"})
        self.check, self.category = check, category


class GuardrailUnavailable(Overloaded, code="guardrail_unavailable",
                           message="A content check could not run and the policy fails closed; "
                                   "retry shortly."):
    pass


class TooLongToCheck(PayloadTooLarge, code="guardrail_input_too_long",
                     message="The request holds more text than the content checks accept."):
    pass
