"""Read a Wrangler project: ``wrangler.toml`` / ``wrangler.jsonc`` / ``wrangler.json`` and ``.dev.vars``.

Pure parsing: the only I/O is reading the config file and ``.dev.vars``.
What we read is what ``wrangler dev`` reads for a Python Worker with
Durable Objects: ``main``,
``compatibility_date``, ``compatibility_flags``, ``durable_objects.bindings``,
``migrations``, ``vars``, ``d1_databases``; every other binding kind is
recorded so the dev server can put a "not emulated" stub on ``env``.

Invariants:

* Every problem is a :class:`ConfigError` whose text is ``<file>: <problem>``
  (with a line and column where the parser gives one); nothing here raises
  anything else for bad input.
* Migrations are applied in order; a class ends up SQLite-backed
  (``new_sqlite_classes``) or legacy-KV-backed (``new_classes``), renames
  carry the backend, deletes remove the class.
* Secrets from ``.dev.vars`` override ``vars`` of the same name, as in wrangler.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shards._errors import ShardsError

__all__ = [
    "CONFIG_NAMES",
    "ConfigError",
    "D1Binding",
    "DurableObjectBinding",
    "OtherBinding",
    "WranglerConfig",
    "find_config",
    "load_config",
    "parse_dotenv",
    "parse_jsonc",
]

#: Config file names, in the order wrangler looks for them.
CONFIG_NAMES = ("wrangler.json", "wrangler.jsonc", "wrangler.toml")

# Binding kinds the runtime does not emulate: top-level key -> (label, where the name is).
# "binding" is the usual key; send_email and the unsafe bindings use "name".
_OTHER_BINDINGS: dict[str, str] = {
    "kv_namespaces": "KV namespace",
    "r2_buckets": "R2 bucket",
    "services": "service binding",
    "analytics_engine_datasets": "Analytics Engine dataset",
    "vectorize": "Vectorize index",
    "hyperdrive": "Hyperdrive config",
    "dispatch_namespaces": "dispatch namespace",
    "mtls_certificates": "mTLS certificate",
    "workflows": "Workflow",
    "send_email": "send_email binding",
    "secrets_store_secrets": "Secrets Store secret",
    "ratelimits": "rate limiter",
}
# Bindings that are one table rather than a list.
_SINGLE_BINDINGS: dict[str, str] = {
    "ai": "Workers AI",
    "browser": "Browser Rendering",
    "images": "Images",
    "version_metadata": "version metadata",
    "assets": "static assets",
}
_IDENT = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


class ConfigError(ShardsError):
    """The project's configuration (or ``.dev.vars``) is wrong; ``str()`` is ``file: problem``."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


@dataclass(frozen=True, slots=True)
class DurableObjectBinding:
    """``durable_objects.bindings[]``: ``env.<name>`` is a namespace of ``class_name``."""

    name: str
    class_name: str
    #: Another Worker's class (``script_name``): not emulated.
    script_name: str | None = None


@dataclass(frozen=True, slots=True)
class D1Binding:
    """``d1_databases[]``: ``env.<binding>`` is the local database ``database_name``."""

    binding: str
    database_name: str


@dataclass(frozen=True, slots=True)
class OtherBinding:
    """A binding the runtime does not emulate (KV, R2, Queues, services, AI, ...)."""

    name: str
    kind: str


@dataclass(frozen=True, slots=True, kw_only=True)
class WranglerConfig:
    """What the dev server needs from a Wrangler project."""

    path: Path
    name: str | None
    main: Path
    compatibility_date: str | None
    compatibility_flags: tuple[str, ...]
    durable_objects: tuple[DurableObjectBinding, ...]
    #: class name -> "sqlite" or "kv", after applying every migration in order.
    migrated_classes: dict[str, str]
    d1_databases: tuple[D1Binding, ...]
    vars: dict[str, Any]
    #: Names of the values that came from ``.dev.vars``.
    secrets: tuple[str, ...] = ()
    other_bindings: tuple[OtherBinding, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    @property
    def root(self) -> Path:
        """The project directory (where the config file is)."""
        return self.path.parent


# --------------------------------------------------------------------------- JSONC


def _strip_jsonc(text: str) -> str:
    """Blank out comments and trailing commas, keeping every offset (so errors point right).

    Comments become spaces (newlines kept); a comma followed only by
    whitespace/comments and then ``}`` or ``]`` becomes a space.
    """
    out = list(text)
    i, n = 0, len(text)
    last_comma: int | None = None
    while i < n:
        c = text[i]
        if c == '"':
            last_comma = None
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            continue
        if c == "/" and i + 1 < n and text[i + 1] == "/":
            while i < n and text[i] != "\n":
                out[i] = " "
                i += 1
            continue
        if c == "/" and i + 1 < n and text[i + 1] == "*":
            end = text.find("*/", i + 2)
            stop = n if end < 0 else end + 2
            for j in range(i, stop):
                if out[j] != "\n":
                    out[j] = " "
            i = stop
            continue
        if c == ",":
            last_comma = i
        elif c in "}]":
            if last_comma is not None:
                out[last_comma] = " "
            last_comma = None
        elif not c.isspace():
            last_comma = None
        i += 1
    return "".join(out)


def parse_jsonc(text: str, path: Path | str = "<jsonc>") -> Any:
    """Parse JSON with ``//`` and ``/* */`` comments and trailing commas.

    Raises:
        ConfigError: The text is not valid JSONC (with line and column).
    """
    try:
        return json.loads(_strip_jsonc(text))
    except json.JSONDecodeError as exc:
        raise ConfigError(path, f"line {exc.lineno}, column {exc.colno}: {exc.msg}") from None


# --------------------------------------------------------------------------- .dev.vars


def parse_dotenv(text: str, path: Path | str = ".dev.vars") -> dict[str, str]:
    """Parse a dotenv file: ``NAME=value`` lines, ``#`` comments, optional ``export``, quotes.

    Double-quoted values understand ``\\n``, ``\\t``, ``\\"`` and ``\\\\`` and may
    span lines; single-quoted values are literal; unquoted values end at
    `` #`` (a comment).

    Raises:
        ConfigError: A line is not ``NAME=value`` or a quote is not closed.
    """
    result: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        lineno = i + 1
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", name):
            raise ConfigError(path, f"line {lineno}: expected NAME=value, got {lines[lineno - 1]!r}")
        value = value.strip()
        if value[:1] in ('"', "'"):
            quote = value[0]
            body = value[1:]
            # A quoted value may continue on the next lines until its closing quote.
            while not _closes(body, quote):
                if i >= len(lines):
                    raise ConfigError(path, f"line {lineno}: unterminated {quote} quote in {name}")
                body += "\n" + lines[i]
                i += 1
            end = _closing_index(body, quote)
            raw = body[:end]
            value = _unescape(raw) if quote == '"' else raw
        else:
            hash_at = value.find(" #")
            if hash_at >= 0:
                value = value[:hash_at].rstrip()
        result[name] = value
    return result


def _closing_index(body: str, quote: str) -> int:
    j = 0
    while j < len(body):
        if body[j] == "\\" and quote == '"':
            j += 2
            continue
        if body[j] == quote:
            return j
        j += 1
    return -1


def _closes(body: str, quote: str) -> bool:
    return _closing_index(body, quote) >= 0


def _unescape(raw: str) -> str:
    escapes = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}
    return re.sub(r"\\(.)", lambda m: escapes.get(m.group(1), "\\" + m.group(1)), raw)


# --------------------------------------------------------------------------- config


def find_config(path: Path | str) -> Path:
    """The config file for ``path``: the file itself, or the first of :data:`CONFIG_NAMES` in it.

    Raises:
        ConfigError: There is no such file or no config in the directory.
    """
    p = Path(path)
    if p.is_file():
        return p
    if p.is_dir():
        for name in CONFIG_NAMES:
            candidate = p / name
            if candidate.is_file():
                return candidate
        raise ConfigError(p, f"no Wrangler config found (looked for {', '.join(CONFIG_NAMES)})")
    raise ConfigError(p, "no such file or directory")


def load_config(path: Path | str, *, require_migrations: bool = True) -> WranglerConfig:
    """Read the project's Wrangler config and its ``.dev.vars``.

    Args:
        path: The config file, or the project directory holding it.
        require_migrations: Refuse a Durable Object class no migration
            declares (production refuses to deploy it). When False, such a
            class is SQLite-backed.

    Raises:
        ConfigError: The config is unreadable or wrong.
    """
    cfg_path = find_config(path)
    try:
        text = cfg_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(cfg_path, f"cannot read: {exc}") from None
    if cfg_path.suffix == ".toml":
        try:
            raw: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(cfg_path, str(exc)) from None
    else:
        raw = parse_jsonc(text, cfg_path)
    if not isinstance(raw, dict):
        raise ConfigError(cfg_path, "the top level must be a table/object")
    return _interpret(cfg_path, raw, require_migrations=require_migrations)


class _Reader:
    """Typed access to the raw config, raising ConfigError with the key's path."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, problem: str) -> ConfigError:
        return ConfigError(self.path, problem)

    def str_(self, table: dict[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
        value = table.get(key)
        if value is None:
            if required:
                raise self.fail(f"{where}{key} is required")
            return None
        if not isinstance(value, str) or not value:
            raise self.fail(f"{where}{key} must be a non-empty string, got {value!r}")
        return value

    def list_(self, table: dict[str, Any], key: str, where: str) -> list[Any]:
        value = table.get(key, [])
        if not isinstance(value, list):
            raise self.fail(f"{where}{key} must be a list, got {type(value).__name__}")
        return value

    def table(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(f"{where} must be a table/object, got {value!r}")
        return value

    def binding_name(self, value: str | None, where: str) -> str:
        if value is None or not _IDENT.match(value):
            raise self.fail(f"{where} must be a valid JavaScript identifier, got {value!r}")
        return value


def _interpret(path: Path, raw: dict[str, Any], *, require_migrations: bool) -> WranglerConfig:
    r = _Reader(path)
    warnings: list[str] = []
    main_text = r.str_(raw, "main", "", required=True)
    assert main_text is not None
    main = (path.parent / main_text).resolve()
    if not main.is_file():
        raise r.fail(f"main = {main_text!r}: no such file ({main})")
    if main.suffix != ".py":
        raise r.fail(f"main = {main_text!r}: shardsim runs Python Workers; main must be a .py file")
    date = r.str_(raw, "compatibility_date", "")
    if date is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
        raise r.fail(f"compatibility_date must be YYYY-MM-DD, got {date!r}")
    if date is None:
        warnings.append("no compatibility_date: using shardsim's default (production requires one)")
    flags = r.list_(raw, "compatibility_flags", "")
    if not all(isinstance(f, str) for f in flags):
        raise r.fail("compatibility_flags must be a list of strings")
    if "python_workers" not in flags:
        warnings.append('compatibility_flags lacks "python_workers": production will not run this Worker')

    seen: set[str] = set()

    def claim(name: str) -> None:
        if name in seen:
            raise r.fail(f"binding {name!r} is declared twice")
        seen.add(name)

    # Durable Objects.
    do_table = raw.get("durable_objects", {})
    do_table = r.table(do_table, "durable_objects")
    objects: list[DurableObjectBinding] = []
    for i, entry in enumerate(r.list_(do_table, "bindings", "durable_objects.")):
        where = f"durable_objects.bindings[{i}]."
        entry = r.table(entry, where.rstrip("."))
        name = r.binding_name(r.str_(entry, "name", where, required=True), f"{where}name")
        class_name = r.str_(entry, "class_name", where, required=True)
        assert class_name is not None
        if not class_name.isidentifier():
            raise r.fail(f"{where}class_name must be a Python class name, got {class_name!r}")
        claim(name)
        objects.append(DurableObjectBinding(name, class_name, r.str_(entry, "script_name", where)))

    # Migrations, in order.
    classes: dict[str, str] = {}
    for i, entry in enumerate(r.list_(raw, "migrations", "")):
        where = f"migrations[{i}]."
        entry = r.table(entry, where.rstrip("."))
        for key, backend in (("new_sqlite_classes", "sqlite"), ("new_classes", "kv")):
            for cls in r.list_(entry, key, where):
                if not isinstance(cls, str):
                    raise r.fail(f"{where}{key} must list class names, got {cls!r}")
                if cls in classes:
                    raise r.fail(f"{where}{key}: class {cls!r} was already created by an earlier migration")
                classes[cls] = backend
        for j, ren in enumerate(r.list_(entry, "renamed_classes", where)):
            ren = r.table(ren, f"{where}renamed_classes[{j}]")
            old, new = ren.get("from"), ren.get("to")
            if not isinstance(old, str) or not isinstance(new, str):
                raise r.fail(f"{where}renamed_classes[{j}] needs string 'from' and 'to'")
            if old not in classes:
                raise r.fail(f"{where}renamed_classes[{j}]: no class {old!r} to rename")
            classes[new] = classes.pop(old)
        for cls in r.list_(entry, "deleted_classes", where):
            if not isinstance(cls, str) or cls not in classes:
                raise r.fail(f"{where}deleted_classes: no class {cls!r} to delete")
            if any(b.class_name == cls and b.script_name is None for b in objects):
                # Production's wording (wrangler's error for this migration).
                raise r.fail(
                    f"Cannot apply --delete-class migration to class {cls} without also "
                    "removing the binding that references it"
                )
            del classes[cls]
    for b in objects:
        if b.script_name is None and b.class_name not in classes:
            if require_migrations:
                raise r.fail(
                    f"durable object class {b.class_name!r} (binding {b.name}) is not declared in any "
                    f'migration: add [[migrations]] tag = "v1" new_sqlite_classes = ["{b.class_name}"] '
                    "(or run with --no-migrations)"
                )
            classes[b.class_name] = "sqlite"
            warnings.append(f"class {b.class_name} has no migration; treating it as SQLite-backed")

    # D1.
    d1: list[D1Binding] = []
    for i, entry in enumerate(r.list_(raw, "d1_databases", "")):
        where = f"d1_databases[{i}]."
        entry = r.table(entry, where.rstrip("."))
        binding = r.binding_name(r.str_(entry, "binding", where, required=True), f"{where}binding")
        db_name = r.str_(entry, "database_name", where) or binding
        claim(binding)
        d1.append(D1Binding(binding, db_name))

    # Bindings we only stub.
    others: list[OtherBinding] = []
    for key, kind in _OTHER_BINDINGS.items():
        for i, entry in enumerate(r.list_(raw, key, "")):
            entry = r.table(entry, f"{key}[{i}]")
            name_value = entry.get("binding", entry.get("name"))
            name = r.binding_name(name_value if isinstance(name_value, str) else None, f"{key}[{i}].binding")
            claim(name)
            others.append(OtherBinding(name, kind))
    queues = r.table(raw.get("queues", {}), "queues")
    for i, entry in enumerate(r.list_(queues, "producers", "queues.")):
        entry = r.table(entry, f"queues.producers[{i}]")
        name = r.binding_name(r.str_(entry, "binding", f"queues.producers[{i}].", required=True), "binding")
        claim(name)
        others.append(OtherBinding(name, "Queue producer"))
    if r.list_(queues, "consumers", "queues."):
        warnings.append("queues.consumers: queue consumers are not emulated; queue() will never run")
    for key, kind in _SINGLE_BINDINGS.items():
        if key in raw:
            entry = r.table(raw[key], key)
            value = entry.get("binding")
            if value is None:
                continue  # e.g. assets without a binding: nothing on env
            name = r.binding_name(value if isinstance(value, str) else None, f"{key}.binding")
            claim(name)
            others.append(OtherBinding(name, kind))
    for b in objects:
        if b.script_name is not None:
            warnings.append(
                f"binding {b.name}: class {b.class_name} lives in Worker {b.script_name!r}, "
                "which shardsim does not run; its uses will fail"
            )

    # Vars, then secrets.
    vars_table = r.table(raw.get("vars", {}), "vars")
    values: dict[str, Any] = {}
    for name, value in vars_table.items():
        r.binding_name(name, f"vars.{name}")
        claim(name)
        values[name] = value
    secrets: list[str] = []
    dev_vars = path.parent / ".dev.vars"
    if dev_vars.is_file():
        try:
            text = dev_vars.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(dev_vars, f"cannot read: {exc}") from None
        for name, value in parse_dotenv(text, dev_vars).items():
            if name in seen and name not in values:
                raise ConfigError(dev_vars, f"{name} is already a binding in {path.name}")
            values[name] = value
            secrets.append(name)

    name_value = raw.get("name")
    return WranglerConfig(
        path=path,
        name=name_value if isinstance(name_value, str) else None,
        main=main,
        compatibility_date=date,
        compatibility_flags=tuple(flags),
        durable_objects=tuple(objects),
        migrated_classes=classes,
        d1_databases=tuple(d1),
        vars=values,
        secrets=tuple(secrets),
        other_bindings=tuple(others),
        warnings=tuple(warnings),
    )
