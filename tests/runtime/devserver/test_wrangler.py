"""Reading wrangler.toml / wrangler.jsonc and .dev.vars."""

from __future__ import annotations

import pytest

from runtime.devserver import ConfigError, load_config, parse_dotenv, parse_jsonc

from .helpers import TOML, make_project

JSONC = """\
// The same project as wrangler.toml, in JSONC.
{
  "name": "test", /* block comment */
  "main": "src/entry.py",
  "compatibility_date": "2026-11-01",
  "compatibility_flags": ["python_workers",], // trailing comma
  "durable_objects": {
    "bindings": [
      { "name": "ECHO", "class_name": "Echo" },
      { "name": "OLD", "class_name": "Legacy", },
    ],
  },
  "migrations": [
    { "tag": "v1", "new_sqlite_classes": ["Echo"] },
    { "tag": "v2", "new_classes": ["Legacy"] },
  ],
  "d1_databases": [{ "binding": "DB", "database_name": "main-db", "database_id": "x" }],
  "r2_buckets": [{ "binding": "FILES", "bucket_name": "f" }],
  "queues": { "producers": [{ "binding": "JOBS", "queue": "q" }] },
  "ai": { "binding": "AI" },
  "vars": { "URL": "https://example.com/a//b", "N": 3, "NESTED": { "k": [1, 2,] } },
}
"""


def test_toml_project(tmp_path) -> None:
    cfg = load_config(make_project(tmp_path))
    assert cfg.main == (tmp_path / "src" / "entry.py").resolve()
    assert cfg.compatibility_date == "2026-11-01"
    assert cfg.compatibility_flags == ("python_workers",)
    assert [(b.name, b.class_name) for b in cfg.durable_objects] == [("ECHO", "Echo")]
    assert cfg.migrated_classes == {"Echo": "sqlite"}
    assert cfg.vars == {"GREETING": "hello ", "SECRET": "s3cret"}
    assert cfg.secrets == ("SECRET",)
    assert [(o.name, o.kind) for o in cfg.other_bindings] == [("CACHE", "KV namespace")]
    assert cfg.warnings == ()


def test_jsonc_project_with_comments_and_trailing_commas(tmp_path) -> None:
    make_project(tmp_path, toml="", dev_vars=None)
    (tmp_path / "wrangler.toml").unlink()
    (tmp_path / "wrangler.jsonc").write_text(JSONC)
    cfg = load_config(tmp_path)
    assert cfg.path.name == "wrangler.jsonc"
    assert cfg.migrated_classes == {"Echo": "sqlite", "Legacy": "kv"}
    assert [(d.binding, d.database_name) for d in cfg.d1_databases] == [("DB", "main-db")]
    assert {o.name: o.kind for o in cfg.other_bindings} == {
        "FILES": "R2 bucket",
        "JOBS": "Queue producer",
        "AI": "Workers AI",
    }
    assert cfg.vars == {"URL": "https://example.com/a//b", "N": 3, "NESTED": {"k": [1, 2]}}


def test_jsonc_keeps_comment_markers_inside_strings() -> None:
    assert parse_jsonc('{"a": "// not a comment", "b": "/* nor */", "c": "x\\",", }') == {
        "a": "// not a comment",
        "b": "/* nor */",
        "c": 'x",',
    }


def test_jsonc_errors_point_at_the_line() -> None:
    with pytest.raises(ConfigError, match=r"^w.jsonc: line 3, column 7: Expecting .:. delimiter$"):
        parse_jsonc('{\n  // c\n  "a" 1}', "w.jsonc")


def test_dotenv() -> None:
    text = 'A=1\n# comment\nexport B = two words # trailing\nC="multi\\nline \\"q\\""\nD=\'lit\\n\'\nE="x\ny"\n\n'
    assert parse_dotenv(text) == {
        "A": "1",
        "B": "two words",
        "C": 'multi\nline "q"',
        "D": "lit\\n",
        "E": "x\ny",
    }
    with pytest.raises(ConfigError, match=r"^\.dev\.vars: line 1: expected NAME=value"):
        parse_dotenv("just words\n")
    with pytest.raises(ConfigError, match=r"unterminated \" quote in A"):
        parse_dotenv('A="open\n')


def test_migrations_rename_and_delete(tmp_path) -> None:
    toml = TOML.replace(
        'new_sqlite_classes = ["Echo"]',
        'new_sqlite_classes = ["Old", "Gone"]\n\n[[migrations]]\ntag = "v2"\n'
        'renamed_classes = [{from = "Old", to = "Echo"}]\ndeleted_classes = ["Gone"]',
    )
    cfg = load_config(make_project(tmp_path, toml=toml))
    assert cfg.migrated_classes == {"Echo": "sqlite"}


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (
            lambda t: t.replace('main = "src/entry.py"', 'main = "src/missing.py"'),
            r"main = 'src/missing.py': no such file",
        ),
        (lambda t: t.replace('main = "src/entry.py"\n', ""), r"main is required"),
        (lambda t: t.replace('"2026-11-01"', '"soon"'), r"compatibility_date must be YYYY-MM-DD, got 'soon'"),
        (
            lambda t: t.replace('new_sqlite_classes = ["Echo"]', "new_sqlite_classes = []"),
            r"'Echo' \(binding ECHO\) is not declared in any migration",
        ),
        (
            lambda t: t.replace('class_name = "Echo"', ""),
            r"durable_objects.bindings\[0\].class_name is required",
        ),
        (
            lambda t: t.replace('name = "ECHO"', 'name = "not an ident"'),
            r"durable_objects.bindings\[0\].name must be a valid JavaScript identifier",
        ),
        (lambda t: t.replace('binding = "CACHE"', 'binding = "ECHO"'), r"binding 'ECHO' is declared twice"),
        (
            lambda t: t + '[[migrations]]\ntag = "v2"\ndeleted_classes = ["Echo"]\n',
            r"Cannot apply --delete-class migration to class Echo",
        ),
        (lambda t: t + "this is = not toml =\n", r"at line"),
    ],
    ids=[
        "main-missing",
        "no-main",
        "bad-date",
        "no-migration",
        "no-class",
        "bad-name",
        "duplicate",
        "delete-bound",
        "toml-syntax",
    ],
)
def test_config_problems_name_the_file(tmp_path, edit, problem) -> None:
    make_project(tmp_path, toml=edit(TOML))
    with pytest.raises(ConfigError, match=problem) as info:
        load_config(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / 'wrangler.toml'}: ")


def test_no_migrations_treats_undeclared_classes_as_sqlite(tmp_path) -> None:
    make_project(tmp_path, toml=TOML.replace('new_sqlite_classes = ["Echo"]', "new_sqlite_classes = []"))
    cfg = load_config(tmp_path, require_migrations=False)
    assert cfg.migrated_classes == {"Echo": "sqlite"}
    assert any("no migration" in w for w in cfg.warnings)


def test_missing_config(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"no Wrangler config found"):
        load_config(tmp_path)
    with pytest.raises(ConfigError, match=r"no such file or directory"):
        load_config(tmp_path / "nope")


def test_dev_vars_may_not_shadow_a_binding(tmp_path) -> None:
    make_project(tmp_path, dev_vars="ECHO=x\n")
    with pytest.raises(ConfigError, match=r"\.dev\.vars: ECHO is already a binding"):
        load_config(tmp_path)


def test_warnings_for_missing_flag_and_date(tmp_path) -> None:
    toml = TOML.replace('compatibility_flags = ["python_workers"]\n', "").replace(
        'compatibility_date = "2026-11-01"\n', ""
    )
    cfg = load_config(make_project(tmp_path, toml=toml))
    assert len(cfg.warnings) == 2
