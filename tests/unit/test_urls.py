"""Redis URL spellings and password hiding."""

from __future__ import annotations

import pytest

from shadowcanary.urls import broker_url_for, redis_py_url, without_password


@pytest.mark.parametrize(
    ("given", "broker", "redis_py"),
    [
        ("unix:///run/r.sock?db=0", "redis+socket:///run/r.sock?db=0", "unix:///run/r.sock?db=0"),
        ("redis+socket:///run/r.sock", "redis+socket:///run/r.sock", "unix:///run/r.sock"),
        ("redis://h:6379/0", "redis://h:6379/0", "redis://h:6379/0"),
        ("rediss://:pw@h:6380/1", "rediss://:pw@h:6380/1", "rediss://:pw@h:6380/1"),
    ],
)
def test_each_library_gets_its_own_spelling(given: str, broker: str, redis_py: str) -> None:
    """kombu gets redis+socket:// for a socket, redis-py gets unix://; TCP URLs pass through."""
    assert (broker_url_for(given), redis_py_url(given)) == (broker, redis_py)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("redis://:s3cret@h:6379/0", "redis://:***@h:6379/0"),
        (
            "at rediss://user:pw@h/1 and redis://u:x@k/2",
            "at rediss://user:***@h/1 and redis://u:***@k/2",
        ),
        ("unix:///run/r.sock?db=0", "unix:///run/r.sock?db=0"),
        ("Error 111 connecting to 127.0.0.1:6379.", "Error 111 connecting to 127.0.0.1:6379."),
    ],
)
def test_passwords_never_reach_a_message(text: str, shown: str) -> None:
    """Every URL's password in a text becomes *** (error messages quote broker URLs)."""
    assert without_password(text) == shown
