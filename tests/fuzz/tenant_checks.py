"""What a multi-tenant case's answer must not show (tests/fuzz/tenants.py, test_fuzz.py).

- A request the one-credential rule refuses (a misplaced, second, revoked, expired, malformed
  or unknown key, or none where keys are required) answered anything but 401; a lone valid key
  refused with 401; an operator endpoint answered 200 to a tenant key.
- Any 429: the tenants' limits are far above the fuzzer's traffic, so a 429 is a tenant locked
  out (by a backend's usage, say).
- A 5xx made by the gateway other than 502, 504 and a breaker's or a full pool's 503 (a
  backend's own 5xx passes through).
- Any gateway key, in any slot, in the answer.
- An answer made for another client (its `owner=` marker) where it must not go: a private,
  no-store or cookie-setting answer to anyone else; another tenant's answer where completions
  are cached per tenant; a credentialed client's answer without `public`, `s-maxage` or
  `must-revalidate` where they are shared; a GET answer for or from a credentialed request.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

from function_app.tenants.presented import KEY_SHAPE
from tests.support.rawhttp import RawResponse

from .tenants import SHAPED, TenantCase, expected_admitted, forwarded_credentials, owner, tenant_of

OWNER = re.compile(r"(?:owner|sid)=([A-Za-z]+)\.(\w+)\.(\d+)\.c([\w-]+)")
SHARED_OK = ("public", "s-maxage", "must-revalidate")
# The gateway's 5xx a hostile backend may cause: 502 and 504 (docs/SECURITY.md), and 503 when
# its failures opened the breaker (docs/ROUTING.md) or the pool is full; never another 5xx.
DOCUMENTED_5XX = {502: None, 504: None, 503: {"no_healthy_backend", "overloaded"}}


def problems(item: TenantCase, response: RawResponse, keys: dict[str, str]) -> list[str]:
    found = _credential_rule(item, response)
    text = response.body.decode("latin-1") + "".join(v for _, v in response.headers)
    if response.status == 429:
        found.append(f"429 outside a burst: {response.body[:200]!r}")
    code = response.error_code()
    if response.status >= 500 and code is not None and (
            response.status not in DOCUMENTED_5XX
            or code not in (DOCUMENTED_5XX[response.status] or {code})):
        found.append(f"gateway {response.status} {response.body[:200]!r}")
    if leaked := [slot for slot in SHAPED if keys[slot] in text]:
        found.append(f"the answer carries the key in slot {leaked}")
    if item.target in ("chat", "raw"):
        found += [why for marker in OWNER.finditer(text)
                  if (why := _replay(item, marker.groups()))]
    return found


def _credential_rule(item: TenantCase, response: RawResponse) -> list[str]:
    status, admitted = response.status, expected_admitted(item)
    if not admitted and status != 401:
        return [f"the credential rule refuses {item.placements}, the gateway answered {status}"]
    if admitted and status == 401 and item.target != "operator":
        return [f"{item.placements} refused: {response.body[:200]!r}"]
    if item.target == "operator" and status == 200:
        return ["an operator endpoint answered a key without the operator scope"]
    return []


def _replay(item: TenantCase, marker: tuple[str, ...]) -> str | None:
    """Why an answer made for `marker`'s request must not reach this one (None: it may).

    The caches partition by what the backend is sent: the tenant (completions, unless shared)
    and the credentials still forwarded; the judged gateway key is removed before either cache
    sees the request, so it neither partitions nor bypasses (forwarded_credentials)."""
    tenant, slot, index, theirs = marker
    if f"{tenant}.{slot}.{index}.c{theirs}" == owner(item):
        return None
    ours = forwarded_credentials(item) or "u"
    made_for = f"an answer made for request {index} (tenant {tenant}, credentials {theirs})"
    if item.cookie or any(word in item.caching for word in ("private", "no-store")):
        return f"{made_for}, private ({item.caching!r}, cookie {item.cookie}), replayed"
    if item.target == "raw":
        return None if theirs == ours == "u" else \
            f"{made_for} replayed by the GET cache with credentials on either side"
    if item.mode == "required":
        return None if (tenant, theirs) == (tenant_of(item), ours) else \
            f"{made_for} served to tenant {tenant_of(item)} with credentials {ours}"
    if theirs != "u" and not any(word in item.caching for word in SHARED_OK):
        return f"{made_for} with credentials, not public, shared"
    return None


def key_in(text: str) -> bool:
    """Whether a gateway-shaped key is in `text`, as written or once percent-decoded."""
    return KEY_SHAPE.search(text) is not None or KEY_SHAPE.search(
        unquote_plus(text, encoding="latin-1")) is not None
