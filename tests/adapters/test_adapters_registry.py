"""The adapter registry: content identity, storage, conflicts, CLI and live visibility."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from hybridgate.adapters import (
    AdapterRegistry,
    adapter_files,
    list_adapters,
    manifest_digest,
    register,
    remove,
    split_model_name,
    validate_name,
    verify,
)
from hybridgate.adapters import store as store_mod
from hybridgate.cli.main import app
from hybridgate.config import GatewayConfig
from hybridgate.errors import Conflict, InvalidRequest, NotFound
from hybridgate.store.sqlite import SQLiteStore


def make_adapter(root: Path, weights: bytes = b"\x01\x02weights", cfg: str = "{}") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "adapter_config.json").write_text(cfg)
    (root / "adapter_model.safetensors").write_bytes(weights)
    return root


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[AdapterRegistry]:
    store = SQLiteStore(tmp_path / "g.db")
    store.open(AdapterRegistry.migrations())
    yield AdapterRegistry(store, tmp_path / "home")
    store.close()


def test_identity_is_deterministic_and_covers_weights_and_config(tmp_path: Path) -> None:
    a = make_adapter(tmp_path / "a")
    b = make_adapter(tmp_path / "b")
    (b / "README.md").write_text("notes that do not change the weights")
    (b / "tokenizer.json").write_text("{}")
    assert adapter_files(a).sha256 == adapter_files(b).sha256
    assert adapter_files(a).names == ("adapter_config.json", "adapter_model.safetensors")
    c = make_adapter(tmp_path / "c", weights=b"\x01\x02weightS")
    d = make_adapter(tmp_path / "d", cfg='{"r": 4}')
    ids = {adapter_files(p).sha256 for p in (a, c, d)}
    assert len(ids) == 3
    # a weight file's name is part of the identity, too
    e = make_adapter(tmp_path / "e")
    (e / "adapter_model.safetensors").rename(e / "other.safetensors")
    assert adapter_files(e).sha256 != adapter_files(a).sha256


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=20),
            st.integers(0, 2**40),
            st.binary(min_size=32, max_size=32).map(bytes.hex),
        ),
        min_size=1,
        max_size=6,
        unique_by=lambda t: t[0],
    ),
    st.randoms(),
)
def test_manifest_digest_ignores_order_but_not_content(
    entries: list[tuple[str, int, str]], rnd: object
) -> None:
    shuffled = list(entries)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert manifest_digest(shuffled) == manifest_digest(entries)
    name, size, digest = entries[0]
    assert manifest_digest([(name, size + 1, digest), *entries[1:]]) != manifest_digest(entries)


def test_bad_paths_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="no such file"):
        adapter_files(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidRequest, match=r"adapter_config\.json"):
        adapter_files(tmp_path / "empty")
    (tmp_path / "noweights").mkdir()
    (tmp_path / "noweights" / "adapter_config.json").write_text("{}")
    with pytest.raises(InvalidRequest, match="no adapter weights"):
        adapter_files(tmp_path / "noweights")
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(InvalidRequest, match="gguf"):
        adapter_files(tmp_path / "x.txt")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_names_are_tool_names_or_refused(name: str) -> None:
    try:
        validate_name(name)
    except InvalidRequest:
        return
    assert 1 <= len(name) <= 64 and ":" not in name and name == name.lower()
    assert all(c.isascii() and (c.isalnum() or c in "_-") for c in name)
    assert split_model_name(f"base:{name}") == ("base", name)


def test_split_model_name() -> None:
    assert split_model_name("tiny:summarize") == ("tiny", "summarize")
    assert split_model_name("org/model:v1:sum") == ("org/model:v1", "sum")
    assert split_model_name("gpt-4o") is None
    assert split_model_name(":x") is None
    assert split_model_name("tiny:Bad Name") is None


def test_register_stores_an_immutable_copy(registry: AdapterRegistry, tmp_path: Path) -> None:
    src = make_adapter(tmp_path / "src")
    a = registry.register("summarize", src, base="tiny-llama", task="Summarize a ticket.")
    assert a.sha256 == adapter_files(src).sha256 and len(a.sha256) == 64
    stored = Path(a.path)
    assert stored.parent == registry.directory and stored.name == a.sha256
    (src / "adapter_model.safetensors").write_bytes(b"overwritten by the next training run")
    verify(a.path, a.sha256)  # the stored copy still matches its id
    with pytest.raises(InvalidRequest, match="do not match"):
        verify(src, a.sha256)
    assert registry.require("summarize") == a
    assert registry.by_sha256(a.sha256) == a
    assert a.description == "Summarize a ticket."
    assert a.input_schema["type"] == "object" and "input" in a.input_schema["properties"]


def test_conflict_replace_idempotent_and_remove(registry: AdapterRegistry, tmp_path: Path) -> None:
    one = registry.register("cls", make_adapter(tmp_path / "one"), base="b")
    again = registry.register("cls", make_adapter(tmp_path / "one-again"), base="b")
    assert again == one  # same files, same name: nothing changes
    two_dir = make_adapter(tmp_path / "two", weights=b"other")
    with pytest.raises(Conflict, match="already exists"):
        registry.register("cls", two_dir, base="b")
    two = registry.register("cls", two_dir, base="b", replace=True)
    assert two.sha256 != one.sha256 and registry.require("cls").sha256 == two.sha256
    # The same weights under a second name share one stored copy.
    twin = registry.register("cls2", two_dir, base="b")
    assert twin.path == two.path
    registry.remove("cls")
    assert Path(two.path).is_dir()  # still used by cls2
    registry.remove("cls2")
    assert not Path(two.path).exists()
    with pytest.raises(NotFound):
        registry.remove("cls")
    with pytest.raises(NotFound):
        registry.require("cls")
    assert registry.list() == []


@pytest.mark.parametrize(
    "schema",
    [[], {"type": "string"}, {"type": "object", "properties": []}, {"type": "object", "x": {1}}],
)
def test_bad_schemas_refused(registry: AdapterRegistry, tmp_path: Path, schema: object) -> None:
    with pytest.raises(InvalidRequest):
        registry.register("a", make_adapter(tmp_path / "a"), base="b", input_schema=schema)  # type: ignore[arg-type]
    assert registry.list() == []


def test_gguf_single_file(registry: AdapterRegistry, tmp_path: Path) -> None:
    f = tmp_path / "lora.gguf"
    f.write_bytes(b"GGUF\x03fake-lora")
    a = registry.register("g", f, base="llama")
    assert a.format == "gguf" and Path(a.path).name == "lora.gguf"
    assert Path(a.path).read_bytes() == f.read_bytes()


def test_other_process_changes_are_seen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stores = [SQLiteStore(tmp_path / "g.db") for _ in range(2)]
    for s in stores:
        s.open(AdapterRegistry.migrations())
    writer, reader = (AdapterRegistry(s, tmp_path / "home") for s in stores)
    try:
        assert reader.list() == []  # snapshot taken
        writer.register("late", make_adapter(tmp_path / "late"), base="b")
        monkeypatch.setattr(store_mod, "CACHE_TTL_S", 0.0)  # the snapshot has expired
        assert [a.name for a in reader.list()] == ["late"]
        writer.remove("late")
        assert reader.get("late") is None
    finally:
        for s in stores:
            s.close()


def test_python_api_and_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cfg = GatewayConfig(home=str(home))
    src = make_adapter(tmp_path / "src")
    a = register(cfg, "extract", src, base="tiny", task="Extract the order id.")
    assert [x.name for x in list_adapters(cfg)] == ["extract"]

    runner = CliRunner()
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"ticket": {"type": "string"}}}))
    other = make_adapter(tmp_path / "other", weights=b"zz")
    r = runner.invoke(
        app,
        [
            "adapters",
            "add",
            "triage",
            str(other),
            "--base",
            "tiny",
            "--schema",
            str(schema),
            "--replaces",
            "gpt",
            "--home",
            str(home),
        ],
    )
    assert r.exit_code == 0, r.output
    assert r.output.startswith("triage sha256:") and adapter_files(other).sha256 in r.output
    r = runner.invoke(app, ["adapters", "list", "--json", "--home", str(home)])
    listed = json.loads(r.output)
    assert [x["name"] for x in listed] == ["extract", "triage"]
    assert listed[1]["input_schema"]["properties"] == {"ticket": {"type": "string"}}
    assert listed[1]["replaces"] == "gpt"
    r = runner.invoke(app, ["adapters", "show", "extract", "--home", str(home)])
    assert json.loads(r.output)["sha256"] == a.sha256
    r = runner.invoke(app, ["adapters", "list", "--home", str(home)])
    assert "extract" in r.output and a.short_id in r.output
    # errors: a clear message and a non-zero exit, never a traceback
    r = runner.invoke(
        app, ["adapters", "add", "Bad:Name", str(src), "--base", "t", "--home", str(home)]
    )
    assert r.exit_code == 2 and "adapter name" in r.output
    r = runner.invoke(
        app, ["adapters", "add", "x", str(tmp_path / "nope"), "--base", "t", "--home", str(home)]
    )
    assert r.exit_code == 2 and "no such file" in r.output
    (tmp_path / "bad.json").write_text("{not json")
    r = runner.invoke(
        app,
        [
            "adapters",
            "add",
            "x",
            str(src),
            "--base",
            "t",
            "--schema",
            str(tmp_path / "bad.json"),
            "--home",
            str(home),
        ],
    )
    assert r.exit_code == 2 and "JSON" in r.output
    r = runner.invoke(app, ["adapters", "show", "nope", "--home", str(home)])
    assert r.exit_code == 1
    r = runner.invoke(app, ["adapters", "remove", "triage", "--home", str(home)])
    assert r.exit_code == 0 and "removed triage" in r.output
    r = runner.invoke(app, ["adapters", "remove", "triage", "--home", str(home)])
    assert r.exit_code == 1 and "no adapter" in r.output
    remove(cfg, "extract")
    assert list_adapters(cfg) == []
    shutil.rmtree(home)
