"""Migration audit: identifiers found in every kind of file, skips, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from shadowcanary.cli.model_references import (
    FileKind,
    audit_tree,
    file_kind,
    identifier_pattern,
    vendor_of,
)
from shadowcanary.cli.offline import audit_command
from shadowcanary.errors import ConfigError

# path -> (content, kind); each names gpt-5.2 on its second line.
TREE: dict[str, tuple[str, FileKind]] = {
    "app/llm.py": ('import openai\nMODEL = "gpt-5.2"\n', FileKind.PYTHON),
    "web/src/client.ts": ("// chat\nconst model = 'gpt-5.2';\n", FileKind.JS_TS),
    "svc/main.go": ('package main\nconst Model = "gpt-5.2"\n', FileKind.GO),
    "jvm/src/Main.java": ('class Main {\n  String m = "gpt-5.2";\n}\n', FileKind.JAVA),
    "deploy/values.yaml": ("llm:\n  model: gpt-5.2\n", FileKind.YAML),
    "config/models.json": ('{\n  "default": "gpt-5.2"\n}\n', FileKind.JSON),
    "pyproject.toml": ('[tool.app]\nmodel = "gpt-5.2"\n', FileKind.TOML),
    ".env": (
        "OPENAI_API_KEY=sk-abcdefghijklmnopqrstuvwxyz123456\nOPENAI_MODEL=gpt-5.2\n",
        FileKind.ENV,
    ),
    "Dockerfile": ("FROM python:3.12\nENV MODEL=gpt-5.2\n", FileKind.DOCKERFILE),
    "infra/main.tf": ('variable "model" {\n  default = "gpt-5.2"\n}\n', FileKind.TERRAFORM),
    "docs/migration.md": ("# Migration\nWe call gpt-5.2 today.\n", FileKind.DOCS),
    "scripts/eval.sh": ("#!/bin/sh\nexport MODEL=gpt-5.2\n", FileKind.SHELL),
    "conf/app.ini": ("[llm]\nmodel=gpt-5.2\n", FileKind.OTHER),
}

# Files that must never be reported, though they name the model.
SKIPPED = {
    "node_modules/openai/index.js": "const m = 'gpt-5.2'\n",
    ".venv/lib/site.py": "MODEL = 'gpt-5.2'\n",
    "vendor/lib/models.go": 'const M = "gpt-5.2"\n',
    "build/out.js": "x='gpt-5.2'\n",
    "package-lock.json": '{"name": "gpt-5.2"}\n',
    "yarn.lock": "gpt-5.2\n",
    "poetry.lock": "gpt-5.2\n",
    "generated/big.py": "MODEL = 'gpt-5.2'\n",  # excluded by .gitignore below
}


def _write_tree(root: Path) -> None:
    for relative, (content, _) in TREE.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    for relative, content in SKIPPED.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    # .env files are usually gitignored, and are where deployments keep model names.
    (root / ".gitignore").write_text("generated/\n.env\n")
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00gpt-5.2")
    (root / "data.blob").write_bytes(b"\x00\x01gpt-5.2\x00")
    (root / "huge.txt").write_text("gpt-5.2\n" + "x" * 2_000_000)
    (root / "legacy.cfg").write_bytes(b"caf\xe9 = 1\nmodel = gpt-5.2\n")  # Latin-1


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    _write_tree(tmp_path)
    return tmp_path


def test_finds_the_identifier_in_every_kind_of_file(tree: Path) -> None:
    """Each file kind is reported with its path, line 2 and its kind."""
    result = audit_tree(tree)
    found = {(f.path, f.line, f.kind) for f in result.findings if f.identifier == "gpt-5.2"}
    for relative, (_, kind) in TREE.items():
        assert (relative, 2, kind) in found, relative


def test_skips_dependencies_lockfiles_binaries_big_and_ignored_files(tree: Path) -> None:
    """Vendored dirs, lockfiles, binaries, files over 1 MB and gitignored files are skipped."""
    result = audit_tree(tree)
    paths = {f.path for f in result.findings}
    for relative in SKIPPED:
        assert relative not in paths
    assert not paths & {"image.png", "data.blob", "huge.txt"}
    assert result.skipped["lockfiles"] == 3
    assert result.skipped["over the size limit"] == 1
    assert result.skipped["gitignored"] >= 1


def test_undecodable_bytes_do_not_stop_the_scan(tree: Path) -> None:
    """A Latin-1 file is still scanned, its bad byte replaced."""
    result = audit_tree(tree)
    assert any(f.path == "legacy.cfg" and f.line == 2 for f in result.findings)


def test_no_gitignore_scans_ignored_files(tree: Path) -> None:
    """--no-gitignore reports what .gitignore excludes."""
    result = audit_tree(tree, use_gitignore=False)
    assert any(f.path == "generated/big.py" for f in result.findings)


def test_excerpt_is_redacted(tmp_path: Path) -> None:
    """A key on the same line as the model never reaches the report."""
    secret = "sk-abcdefghijklmnopqrstuvwxyz123456"
    (tmp_path / "run.sh").write_text(f"OPENAI_API_KEY={secret} MODEL=gpt-4o python app.py\n")
    (finding,) = audit_tree(tmp_path).findings
    assert finding.identifier == "gpt-4o"
    assert secret not in finding.excerpt
    assert "MODEL=gpt-4o" in finding.excerpt


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('model="gpt-5.2"', ["gpt-5.2"]),
        ("gpt-5.2-pro and gpt-5.2.", ["gpt-5.2-pro", "gpt-5.2"]),
        ("gpt-4o-mini-2024-07-18", ["gpt-4o-mini-2024-07-18"]),
        ("GPT-4.1-nano", ["GPT-4.1-nano"]),
        ("gpt-3.5-turbo-16k", ["gpt-3.5-turbo-16k"]),
        ("chatgpt-4o-latest", ["chatgpt-4o-latest"]),
        ("ft:gpt-4o-mini:acme::abc123", ["ft:gpt-4o-mini:acme::abc123"]),
        ('model: "o1"', ["o1"]),
        ("model: o3", ["o3"]),
        ("o4-mini and o3-mini-high", ["o4-mini", "o3-mini-high"]),
        (
            "text-embedding-3-small, whisper-1, dall-e-3",
            ["text-embedding-3-small", "whisper-1", "dall-e-3"],
        ),
        ("claude-3-5-sonnet-20241022", ["claude-3-5-sonnet-20241022"]),
        ("anthropic.claude-3-sonnet-20240229-v1:0", ["claude-3-sonnet-20240229-v1:0"]),
        ("claude-sonnet-4-5", ["claude-sonnet-4-5"]),
        ("models/gemini-2.5-flash", ["gemini-2.5-flash"]),
        ("gemini-1.5-pro-002", ["gemini-1.5-pro-002"]),
        ("meta-llama/Llama-3.1-8B-Instruct", ["Llama-3.1-8B-Instruct"]),
        ("ollama pull llama3.1:8b", ["llama3.1:8b"]),
        ("mistral-large-latest mixtral-8x7b", ["mistral-large-latest", "mixtral-8x7b"]),
        ("deepseek-r1:14b deepseek-chat", ["deepseek-r1:14b", "deepseek-chat"]),
        ("Qwen/Qwen2.5-72B-Instruct qwen-max", ["Qwen2.5-72B-Instruct", "qwen-max"]),
        ("configs/gpt-4o.yaml", ["gpt-4o"]),
        # Not model identifiers:
        ("o1 = compute(); ollama; mistral is a wind; ragpt-4; gpt4", []),
        ("version 5.2 of the gpt- prefix", []),
    ],
)
def test_identifier_pattern(text: str, expected: list[str]) -> None:
    """The one regex finds whole model names and nothing that merely resembles one."""
    found = [m.group(0).rstrip("._-:") for m in identifier_pattern().finditer(text)]
    assert found == expected


def test_extra_literals_match_whole_tokens_only() -> None:
    """--models literals are found, but not inside a longer name."""
    pattern = identifier_pattern(("acme-llm-v2",))
    found = [m.group(0) for m in pattern.finditer("acme-llm-v2, acme-llm-v22, acme-llm-v2-beta")]
    assert found == ["acme-llm-v2"]
    assert vendor_of("acme-llm-v2") == "custom"


@pytest.mark.parametrize(
    ("identifier", "vendor"),
    [("gpt-5.2", "openai"), ("o3", "openai"), ("claude-3-haiku", "anthropic"),
     ("gemini-pro", "google"), ("Llama-3.1-8B", "meta"), ("mixtral-8x7b", "mistral"),
     ("deepseek-v3", "deepseek"), ("qwen2.5-7b", "qwen"),
     ("text-embedding-gecko", "google"), ("text-embedding-3-large", "openai")],
)  # fmt: skip
def test_vendor_of(identifier: str, vendor: str) -> None:
    """Each identifier is attributed to its vendor."""
    assert vendor_of(identifier) == vendor


@pytest.mark.parametrize(
    ("name", "kind"),
    [("Dockerfile.prod", FileKind.DOCKERFILE), ("api.dockerfile", FileKind.DOCKERFILE),
     (".env.production", FileKind.ENV), ("prod.env", FileKind.ENV),
     ("vars.tfvars", FileKind.TERRAFORM),
     ("App.tsx", FileKind.JS_TS), ("compose.yml", FileKind.YAML), ("notes.rst", FileKind.DOCS)],
)  # fmt: skip
def test_file_kind(name: str, kind: FileKind) -> None:
    """Kinds come from the file name, including Dockerfiles and env files without a suffix."""
    assert file_kind(Path(name)) is kind


def test_summary_groups_case_insensitively_and_fail_on_globs(tmp_path: Path) -> None:
    """GPT-5.2 and gpt-5.2 are one identifier; --fail-on globs match case-insensitively."""
    (tmp_path / "a.md").write_text("GPT-5.2 and gpt-5.2 and gpt-5.2-mini\n")
    result = audit_tree(tmp_path)
    rows = {row.identifier: row.count for row in result.summary()}
    assert rows == {"gpt-5.2": 2, "gpt-5.2-mini": 1}
    assert len(result.matching(["gpt-5.2"])) == 2
    assert len(result.matching(["GPT-5.2*"])) == 3
    assert result.matching(["claude-*"]) == []


def test_missing_path_is_a_config_error(tmp_path: Path) -> None:
    """A path that does not exist fails with a message naming it."""
    with pytest.raises(ConfigError, match="does not exist"):
        audit_tree(tmp_path / "nope")


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("audit")(audit_command)
    app.command("noop")(lambda: None)  # a second command keeps "audit" a subcommand
    return app


def test_cli_table_says_when_nothing_is_found(tmp_path: Path) -> None:
    """A clean tree prints a clear line instead of an empty table, and exits 0."""
    (tmp_path / "app.py").write_text("print('hello')\n")
    result = CliRunner().invoke(_cli(), ["audit", str(tmp_path)])
    assert result.exit_code == 0
    assert "no model identifiers found" in result.stdout
    assert "1 files scanned" in result.stdout


def test_cli_json_and_exit_codes(tree: Path) -> None:
    """--json lists findings; --fail-on exits 1 when present, 0 when absent; bad path exits 2."""
    runner = CliRunner()
    listed = runner.invoke(_cli(), ["audit", str(tree), "--json"])
    assert listed.exit_code == 0, listed.output
    data = json.loads(listed.stdout)
    assert any(
        (f["path"], f["line"], f["identifier"], f["kind"]) == ("app/llm.py", 2, "gpt-5.2", "python")
        for f in data["findings"]
    )
    assert data["summary"][0]["identifier"] == "gpt-5.2"

    present = runner.invoke(_cli(), ["audit", str(tree), "--fail-on", "gpt-5.2", "--summary"])
    assert present.exit_code == 1
    absent = runner.invoke(_cli(), ["audit", str(tree), "--fail-on", "claude-*,gemini-*"])
    assert absent.exit_code == 0
    missing = runner.invoke(_cli(), ["audit", str(tree / "missing")])
    assert missing.exit_code == 2
    assert "does not exist" in missing.output
