"""core/redact.py: the one shown form of a URL, and the userinfo turned into a header."""

import pytest

from function_app.core.redact import display_url, redact_urls, split_userinfo


@pytest.mark.parametrize("url,shown", [
    ("http://user:pw@h:8000/v1?api-key=x#f", "http://h:8000/v1"),
    ("https://h", "https://h"),
    ("http://a:b@[::1]:81/x", "http://[::1]:81/x"),
    ("http://:pw@h", "http://h"),
    ("http://u:p@ss@h/", "http://h/"),  # an unencoded @ in the password
    ("http://u:pw@h:notaport/", "h:notaport/"),  # unparsable: whatever follows the last @
    ("svc:pw@h:80", "h:80"),
    ("python", "python"),
])
def test_display_url_never_keeps_userinfo_or_query(url, shown):
    assert display_url(url) == shown


def test_redact_urls_rewrites_every_url_in_a_text():
    text = "'http://u:pw@a:1/v1' is not, \"ftp://x:y@b/q?sig=S\" either; plain words"
    assert redact_urls(text) == "'http://a:1/v1' is not, \"ftp://b/q\" either; plain words"


def test_split_userinfo_gives_the_url_as_sent_and_a_basic_header():
    assert split_userinfo("http://h:1/p?q=1") == ("http://h:1/p?q=1", None)
    assert split_userinfo("http://a%40b:p%3Aw@H:1/p") == ("http://H:1/p", "Basic YUBiOnA6dw==")
