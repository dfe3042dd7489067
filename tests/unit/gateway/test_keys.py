"""API keys: stored hashed, verified in constant time, revocable; the ``flywheel keys`` CLI."""

from __future__ import annotations

import json

from sqlmodel import Session, select
from typer.testing import CliRunner

from flywheel.cli.main import app as cli
from flywheel.db.models import ApiKey, App
from flywheel.keys import (
    app_id_for,
    create_key,
    hash_key,
    key_prefix_of,
    list_keys,
    revoke_key,
    verify_key,
)


def test_keys_are_stored_hashed_and_verify(keys_engine) -> None:  # noqa: ANN001
    created = create_key(keys_engine, "Shop Bot", label="ci")
    assert created.app_id == "shop-bot" and created.plain.startswith(created.key_prefix + "_")
    with Session(keys_engine) as session:
        row = session.exec(select(ApiKey)).one()
        assert row.key_hash == hash_key(created.plain) and created.plain not in row.key_hash
        assert session.get(App, "shop-bot").name == "Shop Bot"
    identity = verify_key(keys_engine, created.plain)
    assert identity is not None and identity.app_id == "shop-bot"
    assert verify_key(keys_engine, created.plain[:-1] + ("A" if created.plain[-1] != "A" else "B")) is None
    assert verify_key(keys_engine, "not a key") is None
    assert key_prefix_of("fw_0123456789ab_" + "a" * 43) == "fw_0123456789ab"


def test_second_key_reuses_the_app_and_revoke(keys_engine) -> None:  # noqa: ANN001
    first = create_key(keys_engine, "shop")
    second = create_key(keys_engine, "shop")
    assert first.app_id == second.app_id == app_id_for("shop")
    info = revoke_key(keys_engine, first.key_id)
    assert info.revoked_at is not None
    assert verify_key(keys_engine, first.plain) is None
    assert verify_key(keys_engine, second.plain) is not None
    assert {k.key_id for k in list_keys(keys_engine, "shop")} == {first.key_id, second.key_id}


def test_cli_create_list_revoke(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    from flywheel.db.engine import migrate

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    migrate(url)
    monkeypatch.setenv("FLYWHEEL_DATABASE_URL", url)
    runner = CliRunner()
    made = runner.invoke(cli, ["keys", "create", "--app", "support", "--json"])
    assert made.exit_code == 0, made.output
    key = json.loads(made.stdout)
    listed = runner.invoke(cli, ["keys", "list", "--json"])
    rows = json.loads(listed.stdout)
    assert [r["key_id"] for r in rows] == [key["key_id"]] and "key" not in rows[0]
    assert key["key"] not in listed.stdout
    revoked = runner.invoke(cli, ["keys", "revoke", key["key_id"]])
    assert revoked.exit_code == 0 and "revoked" in revoked.stdout
    text = runner.invoke(cli, ["keys", "create", "--app", "support"])
    assert "key:    fw_" in text.stdout


def test_a_burst_on_a_cold_cache_makes_one_lookup() -> None:
    import asyncio
    import threading
    import time

    import pytest

    from flywheel.keys import KeyIdentity
    from flywheel.services.gateway.auth import KeyResolver
    from flywheel.services.gateway.errors import DependencyDown, Unauthorized

    calls: list[str] = []
    lock = threading.Lock()

    def verify(key: str) -> KeyIdentity | None:
        with lock:
            calls.append(key)
        time.sleep(0.2)
        if key == "broken":
            raise OSError("database gone")
        return KeyIdentity(key_id="k1", app_id="shop") if key == "good" else None

    async def scenario() -> None:
        resolver = KeyResolver(verify, ttl_s=30)
        found = await asyncio.gather(*(resolver.resolve("good") for _ in range(50)))
        assert {i.app_id for i in found} == {"shop"} and calls == ["good"]
        bad = await asyncio.gather(*(resolver.resolve("nope") for _ in range(20)),
                                   return_exceptions=True)
        assert all(isinstance(e, Unauthorized) for e in bad) and calls.count("nope") == 1
        down = await asyncio.gather(*(resolver.resolve("broken") for _ in range(10)),
                                    return_exceptions=True)
        assert all(isinstance(e, DependencyDown) for e in down) and calls.count("broken") == 1
        with pytest.raises(DependencyDown):  # a failure is not cached: the next call tries again
            await resolver.resolve("broken")
        assert calls.count("broken") == 2

    asyncio.run(scenario())
