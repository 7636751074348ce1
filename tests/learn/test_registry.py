"""The version registry on every store backend: content addressing, promotion that writes the
production file where the workflow reads it, rejection, rollback, adoption, drift checkpoints."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from relayflow.errors import RelayflowError
from relayflow.store.checkpoints import load_state, save_state
from relayflow.store.registry import Candidate, Registry, content_version


@pytest.fixture
def registry(store_url: str, tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(store_url, workflow="wf", artifacts=tmp_path / "artifacts")
    try:
        yield reg
    finally:
        reg.close()


def _model(name: str, content: bytes, target: Path, parent: str | None = None) -> Candidate:
    return Candidate(name, "sklearn", content, target=target, parent=parent, card={"note": "t"})


def test_versions_are_the_sha256_prefix_of_the_artifact(registry: Registry, tmp_path: Path) -> None:
    target = tmp_path / "model.joblib"
    first = registry.register(_model("fraud", b"model one", target))
    assert first.version == hashlib.sha256(b"model one").hexdigest()[:12]
    assert first.version == content_version(b"model one")
    assert first.status == "candidate" and first.kind == "sklearn"
    artifact = Path(first.artifact)
    assert artifact == tmp_path / "artifacts" / "wf" / "fraud" / f"{first.version}.joblib"
    assert artifact.read_bytes() == b"model one"
    card = json.loads(artifact.with_suffix(".card.json").read_text())
    assert card == {"name": "fraud", "note": "t", "version": first.version}
    assert first.card == card

    again = registry.register(_model("fraud", b"model one", target, parent="other"))
    assert again == first, "the same bytes are the same version, registered once"
    second = registry.register(_model("fraud", b"model two", target))
    assert second.version != first.version
    assert [v.version for v in registry.list("fraud")] == [second.version, first.version]
    assert not target.exists(), "registering materialises nothing"


def test_promote_writes_the_production_file_and_archives_the_one_it_replaces(
    registry: Registry, tmp_path: Path
) -> None:
    target = tmp_path / "model" / "fraud.joblib"
    one = registry.register(_model("fraud", b"one", target))
    two = registry.register(_model("fraud", b"two", target, parent=one.version))
    assert registry.production("fraud") is None

    registry.promote("fraud", one.version)
    assert target.read_bytes() == b"one"
    promoted = registry.promote("fraud", two.version[:6], note="better")  # a prefix will do
    assert promoted.version == two.version and promoted.status == "production"
    assert target.read_bytes() == b"two"
    assert registry.get("fraud", one.version).status == "archived"
    assert [p.name for p in target.parent.iterdir()] == ["fraud.joblib"], "no temp file left"
    assert [(a, v, n) for a, v, n, _ in registry.events("fraud")] == [
        ("promote", one.version, ""),
        ("promote", two.version, "better"),
    ]


def test_reject_keeps_production(registry: Registry, tmp_path: Path) -> None:
    target = tmp_path / "fraud.joblib"
    base = registry.register(_model("fraud", b"base", target))
    registry.promote("fraud", base.version)
    worse = registry.register(_model("fraud", b"worse", target, parent=base.version))
    rejected = registry.reject("fraud", worse.version, note="f1 0.5 vs 0.9")
    assert rejected.status == "rejected"
    production = registry.production("fraud")
    assert production is not None and production.version == base.version
    assert target.read_bytes() == b"base"
    with pytest.raises(RelayflowError, match="in production: roll it back"):
        registry.reject("fraud", base.version)


def test_rollback_walks_back_through_production_versions(
    registry: Registry, tmp_path: Path
) -> None:
    target = tmp_path / "fraud.joblib"
    versions = [registry.register(_model("fraud", c, target)).version for c in (b"1", b"2", b"3")]
    for version in versions:
        registry.promote("fraud", version)
    assert target.read_bytes() == b"3"

    back = registry.rollback("fraud")
    assert back.version == versions[1] and back.status == "production"
    assert target.read_bytes() == b"2"
    assert registry.get("fraud", versions[2]).status == "archived"
    assert registry.rollback("fraud").version == versions[0]
    assert target.read_bytes() == b"1"
    with pytest.raises(RelayflowError, match="no earlier production version"):
        registry.rollback("fraud")
    # promoting after a rollback starts a new history on top of what is in production
    registry.promote("fraud", versions[2])
    assert registry.rollback("fraud").version == versions[0]


def test_adopt_registers_the_file_the_workflow_reads(registry: Registry, tmp_path: Path) -> None:
    target = tmp_path / "fraud.joblib"
    target.write_bytes(b"trained by hand")
    first = registry.adopt("fraud", "sklearn", target)
    assert first.status == "production" and first.version == content_version(b"trained by hand")
    assert registry.adopt("fraud", "sklearn", target) == first, "nothing changed on disk"
    target.write_bytes(b"trained again by hand")
    second = registry.adopt("fraud", "sklearn", target)
    assert second.parent == first.version and second.status == "production"
    assert registry.get("fraud", first.version).status == "archived"
    assert registry.rollback("fraud").version == first.version
    assert target.read_bytes() == b"trained by hand"
    with pytest.raises(RelayflowError, match="cannot read .* create it first"):
        registry.adopt("other", "sklearn", tmp_path / "missing.joblib")


def test_prompts_are_text_and_an_inline_prompt_writes_no_file(
    registry: Registry, tmp_path: Path
) -> None:
    template = tmp_path / "prompt.jinja"
    template.write_text("Classify {{ text }}")
    base = registry.adopt("Classify", "prompt", template)
    assert base.artifact == "Classify {{ text }}" and base.kind == "prompt"
    better = registry.register(
        Candidate("Classify", "prompt", b"Examples...\nClassify {{ text }}", target=template)
    )
    registry.promote("Classify", better.version)
    # a promotion never rewrites the user's template: the registry holds the version
    assert template.read_text() == "Classify {{ text }}"
    assert registry.production("Classify").artifact == "Examples...\nClassify {{ text }}"  # type: ignore[union-attr]
    registry.rollback("Classify")
    assert registry.production("Classify").artifact == "Classify {{ text }}"  # type: ignore[union-attr]

    inline = registry.adopt("Inline", "prompt", None, content=b"Answer {{ q }}")
    assert inline.target is None and inline.status == "production"
    other = registry.register(Candidate("Inline", "prompt", b"Answer well {{ q }}"))
    assert registry.promote("Inline", other.version).status == "production"


def test_lookups_name_what_is_wrong(registry: Registry, tmp_path: Path) -> None:
    target = tmp_path / "fraud.joblib"
    registry.register(_model("fraud", b"a", target))
    registry.register(_model("fraud", b"b", target))
    with pytest.raises(RelayflowError, match="no version 'zzz' of 'fraud'.*models list fraud"):
        registry.get("fraud", "zzz")
    with pytest.raises(RelayflowError, match="matches 2 versions"):
        registry.get("fraud", "")
    with pytest.raises(RelayflowError, match="no version '1' of 'nope'.*relayflow models list`"):
        registry.promote("nope", "1")


def test_drift_checkpoints_round_trip(registry: Registry) -> None:
    engine = registry.engine
    assert load_state(engine, "wf", "Feedback") is None
    save_state(engine, "wf", "Feedback", {"count": 1, "window": [["a", "b", "r1"]]})
    save_state(engine, "wf", "Feedback", {"count": 2})
    assert load_state(engine, "wf", "Feedback") == {"count": 2}
    assert load_state(engine, "wf", "Other") is None


def test_artifacts_live_beside_a_sqlite_store_by_default(tmp_path: Path) -> None:
    with Registry(str(tmp_path / "store" / "runs.db"), workflow="wf") as reg:
        version = reg.register(_model("fraud", b"x", tmp_path / "m.joblib"))
    folder = tmp_path / "store" / "models" / "wf" / "fraud"
    assert Path(version.artifact).parent == folder.resolve()
