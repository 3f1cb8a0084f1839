"""Fuzzing the settings (hypothesis): any environment loads or is a ConfigError naming it.

Whatever a deployment puts in ``SHADOWCANARY_*`` variables (bad JSON, wrong types,
out-of-range numbers, unknown names, control characters), ``load_settings`` returns
settings or raises ``ConfigError`` (the CLI's one-line error), never anything else,
and the error never quotes a secret it was given.
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from shadowcanary.errors import ConfigError
from shadowcanary.settings import load_settings

SECRET = "sk-fuzz-S3cr3t-value-4242"

VARIABLES = [
    "SHADOWCANARY_MODELS",
    "SHADOWCANARY_TAP__SAMPLE_RATES",
    "SHADOWCANARY_TAP__REDACT_PATTERNS",
    "SHADOWCANARY_TAP__BUFFER_SIZE",
    "SHADOWCANARY_REPLAY__MAX_ATTEMPTS",
    "SHADOWCANARY_REPLAY__DAILY_USD_BUDGET",
    "SHADOWCANARY_RETENTION_DAYS",
    "SHADOWCANARY_LOG_LEVEL",
    "SHADOWCANARY_FLAGS",
    "SHADOWCANARY_METRICS_PORT",
    "SHADOWCANARY_METRICS_ADDR",
    "SHADOWCANARY_BASELINE_MODEL",
    "SHADOWCANARY_GATEWAY__API_KEYS",
    "SHADOWCANARY_GATEWAY__ROUTES",
    "SHADOWCANARY_STICKINESS_SALT",
    "SHADOWCANARY_UNLEASH_ADMIN_TOKEN",
    "SHADOWCANARY_TAPP__BUFFER_SIZE",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["gpt-5.2", "gpt-5.5", "base_url", "x"]), inner, max_size=3
        )
    ),
    max_leaves=12,
)
values = st.one_of(
    # What an environment can hold: no NUL, no lone surrogates (os.environ refuses both).
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40),
    json_values.map(json.dumps),
    st.sampled_from(["", "0", "-1", "1e309", "nan", "debug", "unleash", "{", "[1,"]),
)
# The secret only where secrets go: API keys in MODELS, the salt, the Unleash token.
endpoint = st.fixed_dictionaries(
    {"api_key": st.just(SECRET)},
    optional={"base_url": json_values, "timeout_s": json_values, "input_usd_per_mtok": json_values},
)
secret_env = st.fixed_dictionaries(
    {},
    optional={
        "SHADOWCANARY_MODELS": st.dictionaries(
            st.sampled_from(["gpt-5.2", "gpt-5.5"]), endpoint, max_size=2
        ).map(json.dumps)
        | st.just('{"gpt-5.2": {"api_key": "' + SECRET + '"'),
        "SHADOWCANARY_STICKINESS_SALT": st.sampled_from([SECRET, SECRET[:8], SECRET + "\n"]),
        "SHADOWCANARY_UNLEASH_ADMIN_TOKEN": st.sampled_from([SECRET, ""]),
    },
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(VARIABLES), values, max_size=4), secret_env)
def test_any_environment_loads_or_is_a_config_error(
    env: dict[str, str], secrets: dict[str, str]
) -> None:
    """Fuzz: only ConfigError escapes, with a message that never quotes the secret."""
    try:
        load_settings(env | secrets)
    except ConfigError as exc:
        message = str(exc)
        assert message and "Traceback" not in message
        for piece in (SECRET, SECRET[:8]):
            assert piece not in message, message
