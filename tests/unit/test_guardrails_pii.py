"""PII found by pattern and checksum, redacted with counts per kind; custom patterns guarded."""

import pytest

from function_app.guardrails import pii
from function_app.guardrails.patterns import SLICE_CHARS, custom_detector
from function_app.tenants.keys import generate


def kinds(text: str) -> dict[str, int]:
    return pii.count(text)


def test_a_card_number_passing_luhn_is_redacted_and_one_failing_it_is_not():
    text, counts = pii.redact("card 4111 1111 1111 1111 exp 12/30")
    assert text == "card [REDACTED:card] exp 12/30" and counts == {"card": 1}
    assert "card" not in kinds("order 4111 1111 1111 1112")  # last digit off: Luhn fails


def test_iban_needs_its_mod_97_check_digits():
    assert kinds("pay GB82 WEST 1234 5698 7654 32 today") == {"iban": 1}
    assert "iban" not in kinds("pay GB83 WEST 1234 5698 7654 32 today")


def test_spanish_dni_and_nie_need_their_control_letter():
    assert kinds("DNI 12345678Z") == {"es_dni": 1}
    assert kinds("NIE X1234567L") == {"es_dni": 1}
    assert "es_dni" not in kinds("DNI 12345678A")


def test_nhs_number_needs_its_mod_11_check_digit():
    assert kinds("NHS 943 476 5919") == {"uk_nhs": 1}
    assert "uk_nhs" not in kinds("NHS 943 476 5918")


def test_email_ip_phone_and_secrets_are_found():
    key = generate()
    text = (f"mail ada@example.org from 10.1.2.3 or 2001:db8::1, call +44 20 7946 0958, "
            f"keys sk-abcdefghijklmnopqrstuvwx and {key} and password=hunter2hunter2")
    redacted, counts = pii.redact(text)
    assert counts == {"email": 1, "ip": 2, "phone": 1, "secret": 3}
    for value in ("ada@example.org", "10.1.2.3", "2001:db8::1", "7946", key, "hunter2"):
        assert value not in redacted


def test_plain_numbers_dates_and_versions_are_left_alone():
    text = ("In 2024 we shipped v1.2.3 to 300 users on 12/03/2024 at 10:30:45, then on "
            "2024-01-15 and 15.01.2024.")
    assert pii.redact(text) == (text, {})


def test_counts_never_carry_the_values():
    _, counts = pii.redact("ada@example.org bob@example.org")
    assert counts == {"email": 2}


def test_custom_pattern_is_used_and_finds_matches_past_one_slice():
    detector = custom_detector("employee_id", "EMP-[0-9]{6}")
    text = "x" * (SLICE_CHARS + 10) + " EMP-123456 and EMP-654321"
    redacted, counts = pii.redact(text, (detector,))
    assert counts == {"employee_id": 2} and "EMP-1" not in redacted


@pytest.mark.parametrize("pattern", [r"(a+)+$", r"(\w*x?)*y", r"(a|ab)*c", r"(\w+)\1",
                                     r"(?=(a+)+)b", "a" * 201, r"(unclosed"])
def test_patterns_that_can_backtrack_badly_or_are_broken_are_refused(pattern):
    with pytest.raises(ValueError, match="custom pattern 'p'"):
        custom_detector("p", pattern)


def test_a_bounded_pattern_with_an_alternation_is_accepted():
    assert custom_detector("ticket", r"(?:INC|REQ)-[0-9]{4,8}") is not None
