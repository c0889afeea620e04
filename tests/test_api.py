"""The public library API (`import audit`), end to end on real photos and voices, as a user's script runs it."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pandas as pd
import pytest

import audit
from tests.helpers.cli import SHARED, run

AUDIT = Path(audit.__file__).resolve().parent


def test_api_end_to_end_on_shared_photos_and_voices(deepface, tmp_path):
    folder, people = deepface
    names = sorted(people)
    alice, bob = names[0], names[1]
    enrolled = {p: sorted(people[p])[:-1] for p in (alice, bob)}
    held = {p: sorted(people[p])[-1] for p in (alice, bob)}
    gallery = tmp_path / "photos" / alice
    gallery.mkdir(parents=True)
    for f in enrolled[alice]:
        shutil.copy(folder / f, gallery / f)
    generated = tmp_path / "generated"
    generated.mkdir()
    for p in (alice, bob):
        shutil.copy(folder / held[p], generated / held[p])

    store = audit.open_store(tmp_path / "indexes", key=None)
    r = audit.enroll_faces(store, alice, [gallery], name="Alice A.", pick="largest")
    assert isinstance(r, audit.EnrollResult) and r.added == len(enrolled[alice]) and not r.skipped
    audit.enroll_faces(store, bob, [folder / f for f in enrolled[bob]], pick="largest")
    again = audit.enroll_faces(store, alice, gallery, pick="largest")  # one path works too; nothing twice
    assert again.added == 0 and again.already == len(enrolled[alice])

    voices = SHARED / "voices" / "librispeech-test-other"
    speaker = sorted(voices.iterdir())[0] if voices.exists() else None
    if speaker is not None:
        clips = sorted(speaker.glob("*.flac"))
        assert audit.enroll_voices(store, alice, clips[:5]).added == 5
        shutil.copy(clips[-1], generated / "voice.flac")

    records = store.consent(alice, allow=["research"], deny=["advertising"], until="2027-12-31")
    assert records["advertising"]["status"] == "denied" and records["research"]["until"] == "2027-12-31"

    run = audit.scan(store, [generated], use="advertising", workers=1)
    assert isinstance(run, audit.ScanRun)
    findings = []
    for finding in run:  # file by file
        assert isinstance(finding, audit.Finding)
        findings.append(finding)
    s = run.summary
    assert s.files == 3 if speaker else 2
    assert s.errors == 0 and s.elapsed > 0 and s.findings == len(findings)
    got = {(f.modality, f.person, Path(f.path).name) for f in findings}
    assert ("face", alice, held[alice]) in got and ("face", bob, held[bob]) in got
    if speaker:
        assert ("voice", alice, "voice.flac") in got
    assert {f.consent for f in findings if f.person == alice} == {"denied"}
    assert {f.consent for f in findings if f.person == bob} == {"unknown"}

    df = audit.findings_frame(findings)
    assert df["similarity"].dtype == "float64" and str(df["frames"].dtype) == "Int64"
    assert df["person"].dtype == "string"
    face_row = df[df["modality"] == "face"].iloc[0]
    assert isinstance(face_row["bbox"], list) and len(face_row["bbox"]) == 4

    for ext in ("csv", "json", "jsonl", "parquet", "html"):
        audit.write_findings(findings, tmp_path / f"out.{ext}", store=store)
        if ext != "html":
            back = audit.read_findings(tmp_path / f"out.{ext}")
            assert [b["person"] for b in back] == [f.person for f in findings]
            assert [b["bbox"] for b in back] == [f.bbox for f in findings]
    meta = pd.read_parquet(tmp_path / "out.parquet")
    assert list(meta.columns) == list(audit.Finding.__dataclass_fields__)
    assert held[alice] in (tmp_path / "out.html").read_text()

    assert [p.id for p in store.people()] == sorted([alice, bob])
    assert store.verify().ok
    assert store.remove(alice) > 0
    assert [p.id for p in store.people()] == [bob]
    report = store.verify()
    assert report.ok and report.people == 1
    rescan = list(audit.scan(store, [generated], workers=1))
    assert {f.person for f in rescan} == {bob}


def test_scan_options_are_checked(tmp_path):
    store = audit.open_store(tmp_path / "s", key=None)
    with pytest.raises(audit.AuditError, match="threshold must be within"):
        audit.scan(store, [tmp_path], threshold=1.5)
    with pytest.raises(TypeError):
        audit.scan(store, [tmp_path], no_such_option=1)


def test_open_store_create_false_refuses_a_missing_store(tmp_path):
    with pytest.raises(audit.StoreError, match="no store at"):
        audit.open_store(tmp_path / "nowhere", create=False)
    assert not (tmp_path / "nowhere").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(audit.StoreError, match="not a folder"):
        audit.open_store(tmp_path / "file")


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in AUDIT.rglob("*.py"):
        name = ".".join(("audit",) + path.relative_to(AUDIT).with_suffix("").parts).removesuffix(".__init__")
        out[name] = ast.parse(path.read_text(), str(path))
    return out


def test_layout_small_modules_no_registry_outside_the_store():
    for name, tree in _modules().items():
        path = AUDIT.joinpath(*name.split(".")[1:])
        lines = (path.with_suffix(".py") if path.with_suffix(".py").exists() else path / "__init__.py").read_text()
        assert lines.count("\n") <= 420, f"{name} has {lines.count(chr(10))} lines"
        if name.startswith("audit.store") or name == "audit.service.accounts":  # the service's own database
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "registry":
                pytest.fail(f"{name} reaches past the Store into .registry (line {node.lineno})")
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "SELECT " in node.value:
                pytest.fail(f"{name} holds SQL (line {node.lineno})")


def test_no_import_circle_at_module_level():
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, tree in mods.items():
        pkg = name if (AUDIT.joinpath(*name.split(".")[1:]) / "__init__.py").exists() else name.rpartition(".")[0]
        deps = set()
        for node in tree.body:  # module level only: imports inside functions are deliberate and lazy
            if isinstance(node, ast.ImportFrom) and node.level:
                base = pkg.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    deps.add(full if full in mods else target)
        graph[name] = {d for d in deps if d in mods and d != name}

    def parents(m: str) -> set[str]:  # importing a.b.c runs a and a.b first
        parts = m.split(".")
        return {".".join(parts[:i]) for i in range(1, len(parts))} & set(mods)

    seen: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        seen[node] = 1
        for dep in graph[node]:
            if seen.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                if not any(p in cycle for d in cycle for p in parents(d)):  # package inits re-exporting are fine
                    pytest.fail("import circle: " + " -> ".join(cycle))
            elif dep not in seen:
                visit(dep, stack + [dep])
        seen[node] = 2

    for name in sorted(graph):
        if name not in seen:
            visit(name, [name])


def test_layout_page_matches_the_tree():
    """docs/development.md's Layout block names every module under audit/, one a line, and nothing else."""
    page = (AUDIT.parent / "docs" / "development.md").read_text()
    block = page.split("\n## Layout\n", 1)[1].split("```", 2)[1]
    listed = [line.split()[0] for line in block.splitlines() if line.startswith("audit/")]
    assert len(listed) == len(set(listed)), "docs/development.md Layout names a module twice"
    listed = set(listed)
    present = {str(p.relative_to(AUDIT.parent)) for p in AUDIT.rglob("*.py")
               if p.name not in ("__init__.py", "__main__.py") or p.parent == AUDIT and p.name == "__init__.py"}
    assert sorted(listed - present) == [], "docs/development.md Layout names modules that do not exist"
    assert sorted(present - listed) == [], "modules missing from docs/development.md Layout"


def test_every_command_has_help_with_an_example():
    import click

    from audit.cli import cli

    def walk(cmd: click.Command, name: str):
        yield name, cmd
        if isinstance(cmd, click.Group):
            for sub, c in cmd.commands.items():
                yield from walk(c, f"{name} {sub}")

    for name, cmd in walk(cli, "likeness-audit"):
        assert cmd.help and cmd.help.strip(), f"{name} has no help text"
        if not isinstance(cmd, click.Group) or name == "likeness-audit":
            assert "Example:" in cmd.help, f"{name} help has no Example: block"


def test_log_event_choices_are_every_event_the_store_writes(tmp_path):
    import re

    from audit.store.log.auditlog import EVENTS

    written = set()
    for path in AUDIT.rglob("*.py"):
        written |= set(re.findall(r'(?:\.stage|log_event)\(\s*"([a-z_]+)"', path.read_text()))
    assert written and written <= set(EVENTS), written - set(EVENTS)
    home = tmp_path / "store"
    audit.open_store(home)
    for event in EVENTS:
        assert run("--home", str(home), "log", "--event", event).exit_code == 0
