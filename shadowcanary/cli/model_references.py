"""Migration audit: every place a model identifier appears in a source tree.

Before migrating off ``gpt-5.2`` a team needs the list of files and lines that name
it: code, config, env files, Dockerfiles, Terraform, docs. ``audit_tree`` walks a
directory once, skipping what is never deployed (VCS and build directories,
dependencies, lockfiles, binaries, big files, what ``.gitignore`` excludes) and
scans each text file with ONE compiled regex that knows the model families of the
main vendors, plus any extra literal names the caller gives.

Env files are scanned even when ``.gitignore`` excludes them: that is where
deployments keep their model names. Line excerpts are redacted with the tap's
redactor, so an API key on the same line never reaches the report.
"""

from __future__ import annotations

import bisect
import fnmatch
import functools
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import pathspec

from shadowcanary.errors import ConfigError
from shadowcanary.tap.redaction import Redactor

DEFAULT_MAX_FILE_BYTES = 1_000_000
_EXCERPT_CHARS = 160
# NUL in the first block: a binary file (the heuristic git and grep use).
_BINARY_PROBE_BYTES = 8_192


class FileKind(StrEnum):
    """What kind of file a finding is in: tells a reader how the name is used."""

    PYTHON = "python"
    JS_TS = "js/ts"
    GO = "go"
    JAVA = "java"
    YAML = "yaml"
    JSON = "json"
    TOML = "toml"
    ENV = "env"
    DOCKERFILE = "dockerfile"
    TERRAFORM = "terraform"
    SHELL = "shell"
    DOCS = "markdown/docs"
    OTHER = "other"


_KIND_BY_SUFFIX: dict[str, FileKind] = {
    **dict.fromkeys((".py", ".pyi", ".ipynb"), FileKind.PYTHON),
    **dict.fromkeys(
        (".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".mts", ".cts", ".vue", ".svelte"),
        FileKind.JS_TS,
    ),
    ".go": FileKind.GO,
    **dict.fromkeys((".java", ".kt", ".kts", ".scala", ".groovy"), FileKind.JAVA),
    **dict.fromkeys((".yaml", ".yml"), FileKind.YAML),
    **dict.fromkeys((".json", ".jsonc", ".json5"), FileKind.JSON),
    ".toml": FileKind.TOML,
    ".env": FileKind.ENV,
    **dict.fromkeys((".tf", ".tfvars", ".hcl"), FileKind.TERRAFORM),
    **dict.fromkeys((".sh", ".bash", ".zsh", ".fish", ".ps1"), FileKind.SHELL),
    **dict.fromkeys((".md", ".mdx", ".rst", ".txt", ".adoc"), FileKind.DOCS),
}

# Directories that hold dependencies, caches or build output, never the team's config.
SKIPPED_DIRS = frozenset(
    {
        ".git", ".hg", ".svn", "node_modules", "bower_components", "vendor", "third_party",
        ".venv", "venv", "site-packages", "__pycache__", ".mypy_cache", ".ruff_cache",
        ".pytest_cache", ".tox", ".nox", "build", "dist", "target", ".next", ".nuxt",
        ".terraform", ".gradle", ".idea", ".vscode", ".cache", "coverage", ".eggs",
    }
)  # fmt: skip
# Lockfiles name packages, not models; a hit there is noise.
SKIPPED_FILES = frozenset(
    {
        "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml",
        "bun.lockb", "poetry.lock", "uv.lock", "Pipfile.lock", "pdm.lock", "Cargo.lock",
        "Gemfile.lock", "composer.lock", "go.sum", "mix.lock", "pubspec.lock",
        "packages.lock.json", ".terraform.lock.hcl",
    }
)  # fmt: skip
_BINARY_SUFFIXES = frozenset(
    {
        ".png", ".jpg", ".jpeg", ".gif", ".webp", ".ico", ".bmp", ".tiff", ".pdf", ".zip",
        ".gz", ".tgz", ".bz2", ".xz", ".7z", ".tar", ".whl", ".jar", ".war", ".so", ".dylib",
        ".dll", ".exe", ".o", ".a", ".pyc", ".pyo", ".class", ".mp3", ".mp4", ".wav", ".mov",
        ".avi", ".woff", ".woff2", ".ttf", ".otf", ".eot", ".sqlite", ".db", ".parquet",
        ".npy", ".npz", ".pt", ".safetensors", ".onnx", ".pkl", ".bin",
    }
)  # fmt: skip

# Model-id tail: -segments, .digits (gpt-4.1, llama-3.1) and Ollama/Bedrock :tags.
_TAIL = r"(?:-[a-z0-9]+|\.\d+)*(?:::?[a-z0-9][a-z0-9_.-]*)*"
# One alternative per vendor family; names must start a token and end one.
_FAMILIES: tuple[tuple[str, str], ...] = (
    ("openai", r"(?:ft:)?(?:chat)?gpt-(?:3\.5|4(?:\.\d+)?o?|5(?:\.\d+)?|oss|image|realtime|audio)"),
    ("openai", r"o[134](?:-(?:mini|pro|preview|deep-research))"),
    ("google", r"text-embedding-gecko"),  # before OpenAI's text-embedding-*: its vendor
    ("openai", r"text-(?:embedding|davinci|curie|babbage|ada|moderation)-[a-z0-9]+"),
    ("openai", r"(?:omni-moderation|whisper-\d|tts-1|dall-e-[23]|davinci-002|babbage-002)"),
    ("openai", r"codex-mini"),
    ("anthropic", r"claude-(?:instant|opus|sonnet|haiku|v?\d)"),
    ("google", r"gemini-(?:\d|pro|ultra|nano|flash|exp|embedding)"),
    ("google", r"gemma-?\d"),
    ("meta", r"(?:code)?llama-?\d"),
    ("mistral", r"(?:mistral|mixtral)(?=:[a-z0-9])"),
    ("mistral", r"(?:open-)?(?:mistral|mixtral|ministral|codestral|pixtral|magistral|devstral)-"
     r"[a-z0-9]+"),
    ("deepseek", r"deepseek-(?:chat|coder|reasoner|r\d|v\d|llm|math|vl|prover)"),
    ("qwen", r"(?:qwen(?:\d(?:\.\d+)?)?-[a-z0-9]+|qwen\d(?:\.\d+)?|qwq-[a-z0-9]+)"),
)  # fmt: skip
# Bare o1/o3/o4 are too short to find in free text: only as a quoted or assigned value.
_BARE_O_SERIES = r"""(?:(?<=["'`=])|(?<=: ))o[134](?=["'`\s,]|$)"""
_START = r"(?<![a-z0-9])"
# Every family above starts with one of these letters. Leading with this lookahead
# lets the regex engine skip most positions cheaply: about 3x faster on large trees.
_FAMILY_FIRST_LETTERS = "bcdfglmopqtw"
# Not followed by more of a name: keeps gpt-5.2 from matching inside gpt-5.2-pro.
_END = r"(?![a-z0-9]|[-:][a-z0-9])"


@dataclass(frozen=True, slots=True)
class Finding:
    """One occurrence of a model identifier."""

    path: str  # relative to the audited root, with forward slashes
    line: int  # 1-based
    column: int  # 1-based
    identifier: str  # as written in the file
    vendor: str
    kind: FileKind
    excerpt: str  # the line, trimmed and redacted

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True, slots=True)
class IdentifierSummary:
    """All occurrences of one identifier (compared case-insensitively)."""

    identifier: str
    vendor: str
    count: int
    files: int
    kinds: tuple[FileKind, ...]


@dataclass(frozen=True, slots=True)
class AuditResult:
    """What an audit found and what it did not look at."""

    root: str
    findings: tuple[Finding, ...]
    files_scanned: int
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> files

    def summary(self) -> list[IdentifierSummary]:
        """One row per identifier, the most frequent first."""
        groups: dict[str, list[Finding]] = {}
        for finding in self.findings:
            groups.setdefault(finding.identifier.lower(), []).append(finding)
        rows = [
            IdentifierSummary(
                identifier=key,
                vendor=group[0].vendor,
                count=len(group),
                files=len({f.path for f in group}),
                kinds=tuple(sorted({f.kind for f in group})),
            )
            for key, group in groups.items()
        ]
        return sorted(rows, key=lambda row: (-row.count, row.identifier))

    def matching(self, patterns: Sequence[str]) -> list[Finding]:
        """Findings whose identifier matches any glob in ``patterns`` (case-insensitive)."""
        lowered = [p.lower() for p in patterns]
        return [
            f
            for f in self.findings
            if any(fnmatch.fnmatchcase(f.identifier.lower(), p) for p in lowered)
        ]


@functools.lru_cache(maxsize=16)
def identifier_pattern(extra_literals: tuple[str, ...] = ()) -> re.Pattern[str]:
    """The one regex of every known family, then the extra literals (longest first)."""
    families = "|".join(f"(?:{pattern})" for _, pattern in _FAMILIES)
    known = f"{_START}(?:{families}){_TAIL}{_END}"
    alternatives = [known, _BARE_O_SERIES]
    literals = sorted({x.strip() for x in extra_literals if x.strip()}, key=len, reverse=True)
    first = set(_FAMILY_FIRST_LETTERS)
    if literals:
        escaped = "|".join(re.escape(x) for x in literals)
        alternatives.append(f"{_START}(?:{escaped}){_END}")
        first |= {x[0].lower() for x in literals}
    first_class = "".join(re.escape(c) for c in sorted(first))
    return re.compile(f"(?=[{first_class}])(?:{'|'.join(alternatives)})", re.IGNORECASE)


@functools.lru_cache(maxsize=1)
def _family_patterns() -> tuple[tuple[str, re.Pattern[str]], ...]:
    return tuple((vendor, re.compile(pattern, re.IGNORECASE)) for vendor, pattern in _FAMILIES)


def vendor_of(identifier: str) -> str:
    """The vendor of the first family naming ``identifier``; "custom" for extra literals."""
    if re.fullmatch(r"o[134]", identifier, re.IGNORECASE):
        return "openai"
    for vendor, pattern in _family_patterns():
        if pattern.match(identifier):
            return vendor
    return "custom"


def file_kind(path: Path) -> FileKind:
    """The kind of file, from its name (Dockerfiles and env files have no useful suffix)."""
    name = path.name.lower()
    if name in {"dockerfile", "containerfile"} or name.startswith(
        ("dockerfile.", "containerfile.")
    ):
        return FileKind.DOCKERFILE
    if name.endswith((".dockerfile", ".containerfile")):
        return FileKind.DOCKERFILE
    if name == ".env" or name.startswith(".env.") or name.endswith(".env") or name == ".envrc":
        return FileKind.ENV
    if name in {"readme", "changelog", "license"}:
        return FileKind.DOCS
    return _KIND_BY_SUFFIX.get(path.suffix.lower(), FileKind.OTHER)


def scan_text(
    text: str, relative_path: str, kind: FileKind, pattern: re.Pattern[str], redactor: Redactor
) -> list[Finding]:
    """Every identifier in one file's text, with its line and column."""
    matches = list(pattern.finditer(text))
    if not matches:
        return []
    line_starts = [0, *(m.end() for m in re.finditer("\n", text))]
    findings = []
    for match in matches:
        identifier = match.group(0).rstrip("._-:")
        line_index = bisect.bisect_right(line_starts, match.start()) - 1
        start = line_starts[line_index]
        end = text.find("\n", start)
        line_text = text[start : end if end >= 0 else len(text)].strip()
        findings.append(
            Finding(
                path=relative_path,
                line=line_index + 1,
                column=match.start() - start + 1,
                identifier=identifier,
                vendor=vendor_of(identifier),
                kind=kind,
                excerpt=redactor.redact_text(line_text)[:_EXCERPT_CHARS],
            )
        )
    return findings


class _Walker:
    """Yields the files worth scanning under ``root`` and counts what it skipped."""

    def __init__(self, root: Path, *, use_gitignore: bool, max_file_bytes: int) -> None:
        self.root = root
        self.use_gitignore = use_gitignore
        self.max_file_bytes = max_file_bytes
        self.skipped: Counter[str] = Counter()
        self._ignores: dict[Path, list[tuple[Path, pathspec.GitIgnoreSpec]]] = {}

    def _ignore_specs(self, directory: Path) -> list[tuple[Path, pathspec.GitIgnoreSpec]]:
        inherited = self._ignores.get(directory.parent, []) if directory != self.root else []
        specs = list(inherited)
        gitignore = directory / ".gitignore"
        if self.use_gitignore and gitignore.is_file():
            try:
                lines = gitignore.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                lines = []
            specs.append((directory, pathspec.GitIgnoreSpec.from_lines(lines)))
        self._ignores[directory] = specs
        return specs

    @staticmethod
    def _tooling_dir(path: Path) -> bool:
        # pyvenv.cfg marks a virtualenv whatever its name.
        return (
            path.name in SKIPPED_DIRS
            or path.name.endswith(".egg-info")
            or (path / "pyvenv.cfg").is_file()
        )

    @staticmethod
    def _ignored(path: Path, specs: Iterable[tuple[Path, pathspec.GitIgnoreSpec]]) -> bool:
        for base, spec in specs:
            relative = path.relative_to(base).as_posix()
            if spec.match_file(relative + ("/" if path.is_dir() else "")):
                return True
        return False

    def files(self) -> Iterator[Path]:
        if self.root.is_file():
            yield self.root
            return
        for dirpath, dirnames, filenames in os.walk(self.root):
            directory = Path(dirpath)
            specs = self._ignore_specs(directory)
            kept = []
            for name in sorted(dirnames):
                if self._tooling_dir(directory / name):
                    self.skipped["dependency/build/cache dirs"] += 1
                elif self._ignored(directory / name, specs):
                    self.skipped["gitignored"] += 1
                else:
                    kept.append(name)
            dirnames[:] = kept  # os.walk descends only into what is left
            for name in sorted(filenames):
                path = directory / name
                if self._keep_file(path, specs):
                    yield path

    def _keep_file(self, path: Path, specs: list[tuple[Path, pathspec.GitIgnoreSpec]]) -> bool:
        reason = None
        if path.name in SKIPPED_FILES or path.suffix == ".lock":
            reason = "lockfiles"
        elif path.suffix.lower() in _BINARY_SUFFIXES or path.is_symlink():
            reason = "binaries and links"
        elif file_kind(path) is not FileKind.ENV and self._ignored(path, specs):
            reason = "gitignored"
        if reason:
            self.skipped[reason] += 1
        return reason is None

    def read_text(self, path: Path) -> str | None:
        """The file's text, or None (counted) when it is too big, binary or unreadable."""
        try:
            if path.stat().st_size > self.max_file_bytes:
                self.skipped["over the size limit"] += 1
                return None
            data = path.read_bytes()
        except OSError:
            self.skipped["unreadable"] += 1
            return None
        if b"\0" in data[:_BINARY_PROBE_BYTES]:
            self.skipped["binaries and links"] += 1
            return None
        # Undecodable bytes become U+FFFD: an odd Latin-1 config still gets scanned.
        return data.decode("utf-8", errors="replace")


def audit_tree(
    root: Path,
    *,
    extra_identifiers: Sequence[str] = (),
    use_gitignore: bool = True,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> AuditResult:
    """Find every model identifier under ``root`` (a directory or one file).

    Raises:
        ConfigError: ``root`` does not exist.
    """
    if not root.exists():
        raise ConfigError(
            f"{root} does not exist", hint="pass the directory of the code base to audit"
        )
    root = root.resolve()
    pattern = identifier_pattern(tuple(extra_identifiers))
    redactor = Redactor()
    walker = _Walker(root, use_gitignore=use_gitignore, max_file_bytes=max_file_bytes)
    findings: list[Finding] = []
    scanned = 0
    base = root.parent if root.is_file() else root
    for path in walker.files():
        text = walker.read_text(path)
        if text is None:
            continue
        scanned += 1
        relative = path.relative_to(base).as_posix()
        findings.extend(scan_text(text, relative, file_kind(path), pattern, redactor))
    return AuditResult(
        root=str(root),
        findings=tuple(findings),
        files_scanned=scanned,
        skipped=dict(sorted(walker.skipped.items())),
    )
