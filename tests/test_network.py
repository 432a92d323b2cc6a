"""Which proxy the platform names for a URL: HTTPS_PROXY, HTTP_PROXY, NO_PROXY, as botocore."""

from __future__ import annotations

import base64

import botocore.utils
import pytest

from tmdb_ingest.fetch.network import proxy_for

TMDB = "https://api.themoviedb.org/3"
PROXY = "http://proxy.corp:3128"


def test_no_variable_no_proxy() -> None:
    assert proxy_for(TMDB, {}) is None
    assert proxy_for(TMDB, {"HTTP_PROXY": PROXY}) is None  # http's proxy is not https's


def test_https_urls_use_https_proxy_and_http_urls_http_proxy() -> None:
    env = {"HTTPS_PROXY": PROXY, "HTTP_PROXY": "http://other:8080"}
    https = proxy_for(TMDB, env)
    http = proxy_for("http://127.0.0.1:8765/3", env)
    assert https is not None
    assert https.url == PROXY
    assert https.variable == "HTTPS_PROXY"
    assert http is not None
    assert http.url == "http://other:8080"
    assert https.name == "proxy.corp:3128 (from HTTPS_PROXY)"


def test_lower_case_wins_and_an_empty_lower_case_turns_it_off() -> None:
    lower = proxy_for(TMDB, {"https_proxy": "http://low:1", "HTTPS_PROXY": "http://up:2"})
    assert lower is not None
    assert (lower.url, lower.variable) == ("http://low:1", "https_proxy")
    assert proxy_for(TMDB, {"https_proxy": "", "HTTPS_PROXY": PROXY}) is None


def test_a_proxy_without_scheme_is_http() -> None:
    proxy = proxy_for(TMDB, {"HTTPS_PROXY": "proxy.corp:3128"})
    assert proxy is not None
    assert proxy.url == PROXY


def test_credentials_become_a_header_and_never_show() -> None:
    proxy = proxy_for(TMDB, {"HTTPS_PROXY": "http://alice:s3cret@proxy.corp:3128"})
    assert proxy is not None
    assert "s3cret" not in proxy.url + proxy.name
    assert "alice" not in proxy.name
    expected = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    assert proxy.headers == {"Proxy-Authorization": expected}


def test_cgi_ignores_upper_case_http_proxy() -> None:
    """httpoxy: under CGI, HTTP_PROXY may come from a client's header."""
    env = {"HTTP_PROXY": PROXY, "REQUEST_METHOD": "GET"}
    assert proxy_for("http://tmdb.test/3", env) is None
    assert proxy_for("http://tmdb.test/3", {**env, "http_proxy": PROXY}) is not None


@pytest.mark.parametrize(
    ("url", "no_proxy", "bypassed"),
    [
        (TMDB, "api.themoviedb.org", True),
        (TMDB, "themoviedb.org", True),  # subdomains too
        (TMDB, ".themoviedb.org", True),
        (TMDB, "moviedb.org", False),  # a suffix of the name, not a domain
        (TMDB, "example.com, api.themoviedb.org ", True),
        (TMDB, "*", True),
        (TMDB, "api.themoviedb.org:443", True),  # the default port counts
        (TMDB, "api.themoviedb.org:8443", False),
        ("http://127.0.0.1:8765/3", "127.0.0.1:8765", True),
        ("http://127.0.0.1:8765/3", "127.0.0.1:9000", False),
        ("http://127.0.0.1:8765/3", "127.0.0.1", True),
        ("http://10.1.2.3:8765/3", "10.0.0.0/8", True),  # a network, as requests and curl
        ("http://11.1.2.3:8765/3", "10.0.0.0/8", False),
        ("http://[::1]:8765/3", "::1", True),
        ("http://[::1]:8765/3", "[::1]:8765", True),
        (TMDB, "", False),
    ],
)
def test_no_proxy_entries(url: str, no_proxy: str, bypassed: bool) -> None:
    env = {"HTTPS_PROXY": PROXY, "HTTP_PROXY": PROXY, "NO_PROXY": no_proxy}
    assert (proxy_for(url, env) is None) is bypassed


@pytest.mark.parametrize(
    ("url", "no_proxy"),
    [
        (TMDB, ""),
        (TMDB, "api.themoviedb.org"),
        (TMDB, ".themoviedb.org"),
        (TMDB, "moviedb.org"),
        (TMDB, "*"),
        ("http://127.0.0.1:8765/3", "127.0.0.1"),
        ("http://127.0.0.1:8765/3", "127.0.0.1:8765"),
        ("http://127.0.0.1:8765/3", "localhost,127.0.0.1"),
        ("http://s3.us-east-1.amazonaws.com", "amazonaws.com"),
    ],
)
def test_the_same_choice_as_botocore_makes_for_s3(
    url: str, no_proxy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TMDB goes where botocore (our own S3 calls) would send the same URL."""
    for name in ("https_proxy", "http_proxy", "no_proxy", "all_proxy", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("HTTPS_PROXY", PROXY)
    monkeypatch.setenv("HTTP_PROXY", PROXY)
    monkeypatch.setenv("NO_PROXY", no_proxy)
    theirs = botocore.utils.get_environ_proxies(url)
    ours = proxy_for(url)
    scheme = url.split("://", 1)[0]
    assert (ours.url if ours else None) == theirs.get(scheme)
