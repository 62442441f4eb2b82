"""Loading the Worker module: the workers/js shims, entry points, and errors reported as file:line."""

from __future__ import annotations

import sys

import pytest

from runtime import DurableObject, pyworkers
from runtime.devserver import NotEmulatedError, WorkerLoadError, load_config
from runtime.devserver._worker import NotEmulated, load_worker
from runtime.pyworkers import JsProxy

from .helpers import make_project

TOML = 'main = "src/entry.py"\ncompatibility_date = "2026-11-01"\ncompatibility_flags = ["python_workers"]\n'


def load(tmp_path, entry: str, toml: str = TOML):
    return load_worker(load_config(make_project(tmp_path, entry, toml, dev_vars=None)))


def test_the_module_loads_with_the_shims_and_keeps_them_after(tmp_path) -> None:
    entry = """
    from js import WebSocketPair
    from workers import DurableObject, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return None

    PAIR = (WebSocketPair, DurableObject)
    """
    worker = load(tmp_path, entry)
    js_pair, durable = worker.module.PAIR
    assert durable is pyworkers.DurableObject
    assert isinstance(js_pair, JsProxy)  # a JavaScript constructor, as in production
    assert js_pair.typeof == "function"
    # The loader's hold on the shims ends with the load; the module keeps what it imported.
    assert not pyworkers.is_installed()
    assert "workers" not in sys.modules
    assert "js" not in sys.modules
    assert worker.entry_name == "Default (WorkerEntrypoint)"
    worker.unload()
    assert "entry" not in sys.modules


def test_sibling_modules_import_and_unload(tmp_path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "helper_mod_x.py").write_text("VALUE = 7\n")
    worker = load(
        tmp_path, "from helper_mod_x import VALUE\nasync def on_fetch(request, env, ctx):\n    return VALUE\n"
    )
    assert "helper_mod_x" in worker.owned_modules
    worker.unload()
    assert "helper_mod_x" not in sys.modules


def test_single_entrypoint_subclass_with_another_name(tmp_path) -> None:
    entry = "from workers import WorkerEntrypoint\nclass Api(WorkerEntrypoint):\n    async def fetch(self, r):\n        pass\n"
    worker = load(tmp_path, entry)
    assert worker.entry_name == "Api (WorkerEntrypoint)"
    worker.unload()


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("x = (\n", r"entry.py:1: SyntaxError: '\(' was never closed"),
        (
            "import not_a_module_anywhere\n",
            r"entry.py:1: ModuleNotFoundError: No module named 'not_a_module_anywhere'",
        ),
        ("def f():\n    raise ValueError('at import')\nf()\n", r"entry.py:2: ValueError: at import"),
        ("from js import caches\n", r"entry.py:1: NotEmulatedError: js.caches is not emulated by shardsim"),
        ("x = 1\n", r"entry.py: no fetch handler"),
        (
            "from workers import WorkerEntrypoint\nclass A(WorkerEntrypoint):\n    pass\n",
            r"entry.py: A has no fetch\(self, request\) method",
        ),
    ],
    ids=["syntax", "import", "raises", "js-missing", "no-handler", "no-fetch"],
)
def test_module_errors_are_file_line_problem(tmp_path, entry, problem) -> None:
    with pytest.raises(WorkerLoadError, match=problem):
        load(tmp_path, entry)
    assert "workers" not in sys.modules
    assert "entry" not in sys.modules


def test_bound_classes_must_exist_and_be_durable_objects(tmp_path) -> None:
    toml = TOML + '[[durable_objects.bindings]]\nname = "R"\nclass_name = "Room"\n'
    toml += '[[migrations]]\ntag = "v1"\nnew_sqlite_classes = ["Room"]\n'
    with pytest.raises(WorkerLoadError, match=r"class 'Room' \(binding R\) is not defined"):
        load(tmp_path, "async def on_fetch(request, env):\n    pass\n", toml)
    with pytest.raises(WorkerLoadError, match=r"Room \(binding R\) must subclass workers.DurableObject"):
        load(tmp_path, "class Room:\n    pass\nasync def on_fetch(request, env):\n    pass\n", toml)
    worker = load(
        tmp_path,
        "from workers import DurableObject\nclass Room(DurableObject):\n    pass\n"
        "async def on_fetch(request, env):\n    pass\n",
        toml,
    )
    assert issubclass(worker.objects["R"], DurableObject)
    worker.unload()


def test_not_emulated_stub_refuses_every_use() -> None:
    stub = NotEmulated("KV", "KV namespace")
    with pytest.raises(
        NotEmulatedError, match=r"^env.KV.get: KV namespace bindings are not emulated by shardsim"
    ):
        stub.get("k")
    with pytest.raises(NotEmulatedError, match=r"^env.KV\(\)"):
        stub()
    with pytest.raises(NotEmulatedError):
        stub.x = 1
    assert "not emulated" in repr(stub)


def test_sdk_helpers_and_typing_names_import(tmp_path) -> None:
    entry = """
    from workers import Blob, Context, FetchKwargs, FormData, python_from_rpc, python_to_rpc

    async def on_fetch(request, env):
        pass

    ROUND_TRIP = python_from_rpc(python_to_rpc({"a": [1]}))
    FORM = FormData
    """
    worker = load(tmp_path, entry)
    assert worker.module.ROUND_TRIP == {"a": [1]}
    with pytest.raises(NotEmulatedError, match=r"^workers.FormData is not emulated by shardsim"):
        worker.module.FORM()
    worker.unload()
