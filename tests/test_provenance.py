"""Provenance: content credentials (C2PA manifests, XMP DigitalSourceType) read from scanned files, carried by each
finding, shown on the page, counted in the run header; hostile or damaged credentials never break a scan."""

from __future__ import annotations

import datetime
import io
import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

import audit
from audit.media import provenance as prov
from audit.media.provenance import read_provenance
from audit.scan import cache as caching
from audit.scan.analyze import AnalyzedFile
from tests.helpers.cli import run
from tests.helpers.video import make_video

AI = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def with_xmp(jpeg: bytes, xmp: str) -> bytes:
    """The JPEG with an XMP packet in an APP1 segment right after its start marker."""
    body = b"http://ns.adobe.com/xap/1.0/\x00" + xmp.encode()
    return jpeg[:2] + b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body + jpeg[2:]


def xmp_packet(inner: str) -> str:
    return ('<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
            '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            f'{inner}</rdf:RDF></x:xmpmeta><?xpacket end="w"?>')


ATTRIBUTE = xmp_packet('<rdf:Description xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
                       f'Iptc4xmpExt:DigitalSourceType="{AI}"/>')
RESOURCE = xmp_packet('<rdf:Description xmlns:ext="http://iptc.org/std/Iptc4xmpExt/2008-02-29/">'
                      f'<ext:DigitalSourceType rdf:resource="{AI}"/></rdf:Description>')
ELEMENT = xmp_packet('<rdf:Description xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/">'
                     "<Iptc4xmpExt:DigitalSourceType>http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"
                     "</Iptc4xmpExt:DigitalSourceType></rdf:Description>")


@pytest.mark.parametrize("xmp, term, ai", [(ATTRIBUTE, "trainedAlgorithmicMedia", True),
                                           (RESOURCE, "trainedAlgorithmicMedia", True),
                                           (ELEMENT, "digitalCapture", False)])
def test_xmp_digital_source_type(photos, tmp_path, xmp, term, ai):
    path = tmp_path / "x.jpg"
    path.write_bytes(with_xmp(photos["yaoming"].read_bytes(), xmp))
    found = read_provenance(path)
    assert found.xmp_source_type == term and found.ai_declared is ai and not found.manifest


def test_a_plain_photo_declares_nothing(photos, tmp_path):
    assert read_provenance(photos["yaoming"]) is None
    assert read_provenance("/no/such/file.jpg") is None
    os.mkfifo(tmp_path / "fifo.mp4")  # never blocks on a FIFO, never reads a device
    (tmp_path / "zero.jpg").symlink_to("/dev/zero")
    assert read_provenance(tmp_path / "fifo.mp4") is None and read_provenance(tmp_path / "zero.jpg") is None


def test_hostile_xmp_is_bounded(photos, tmp_path):
    path = tmp_path / "hostile.jpg"
    # an unterminated packet of 7 MB and a value of 100,000 characters: no match, no slow regex, no error
    junk = "<x:xmpmeta " + "Iptc4xmpExt:DigitalSourceType=\"" + "a" * 100_000 + "\"" + " x" * 3_500_000
    path.write_bytes(photos["yaoming"].read_bytes() + junk.encode())
    many = tmp_path / "many.jpg"  # 700,000 packet openings, one end far away
    many.write_bytes(photos["yaoming"].read_bytes() + b"<x:xmpmeta " * 700_000 + b"</x:xmpmeta>")
    started = time.monotonic()
    assert read_provenance(path) is None and read_provenance(many) is None
    assert time.monotonic() - started < 5


def test_the_scan_cache_keeps_provenance():
    kept = {"manifest": True, "valid": False, "state": "invalid", "problems": ["x"], "ai_declared": False}
    back = caching.load(caching.dump(AnalyzedFile("a.jpg", "0" * 64, "image", provenance=kept)), "a.jpg", "0" * 64)
    assert back.provenance == kept


# --- C2PA: media signed here through c2pa-python's Builder with a certificate chain the test makes -----------------

@pytest.fixture(scope="module")
def signer():
    """A c2pa Signer for an ES256 certificate issued by a test CA (c2pa refuses a self-signed end certificate)."""
    c2pa = pytest.importorskip("c2pa")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Likeness Test CA")])

    def usage(ca: bool):
        return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                             data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                             encipher_only=False, decipher_only=False)

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def cert(subject, public, ca: bool, extra=()):
        b = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name("Likeness Test CA"))
             .public_key(public).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=7))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
             .add_extension(usage(ca), critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False))
        for ext in extra:
            b = b.add_extension(ext, critical=False)
        return b.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    chain = cert("Test Generator Signer", key.public_key(), False,
                 [x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                  x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())])
    root = cert("Likeness Test CA", ca_key.public_key(), True)
    chain += root
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    found = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, pem, None))
    found.test_root = root  # the CA certificate (PEM), for the trust-list test
    return found


def sign(signer, source: bytes, mime: str = "image/jpeg") -> bytes:
    """source with a C2PA manifest: made by "FaceForge 2.1", a c2pa.created action of trained algorithmic media."""
    import c2pa

    manifest = {"claim_generator_info": [{"name": "FaceForge", "version": "2.1"}], "title": "generated",
                "assertions": [{"label": "c2pa.actions", "data": {"actions": [
                    {"action": "c2pa.created", "digitalSourceType": AI}]}}]}
    out = io.BytesIO()
    with c2pa.Builder(manifest) as builder:
        builder.sign(signer, mime, io.BytesIO(source), out)
    return out.getvalue()


def test_a_signed_jpeg_scanned_through_the_cli(signer, photos, tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    original = photos["yaoming"].read_bytes()
    (media / "signed.jpg").write_bytes(sign(signer, original))
    (media / "xmp.jpg").write_bytes(with_xmp(original[:-2] + b"\x00" + original[-2:], ATTRIBUTE))  # other content
    shutil.copy(photos["players"], media / "plain.jpg")
    run("enroll", "face", "yao", photos["yaoming"])
    run("scan", media, "--out", tmp_path / "f.json", "--quiet")
    rows = {Path(r["path"]).name: r for r in json.loads((tmp_path / "f.json").read_text())}
    c = rows["signed.jpg"]["extra"]["provenance"]
    assert rows["signed.jpg"]["kind"] == "match" and rows["signed.jpg"]["person"] == "yao"
    assert (c["manifest"], c["valid"], c["state"], c["generator"]) == (True, True, "valid", "FaceForge 2.1")
    assert c["signer"] == "Test Generator Signer (issued by Likeness Test CA)"
    assert c["source_types"] == ["trainedAlgorithmicMedia"] and c["ai_declared"] and c["problems"] == []
    assert rows["xmp.jpg"]["extra"]["provenance"]["xmp_source_type"] == "trainedAlgorithmicMedia"
    assert "provenance" not in rows["plain.jpg"]["extra"]

    run("report", tmp_path / "f.json", "--out", tmp_path / "page.html")
    page = (tmp_path / "page.html").read_text()
    assert ("C2PA manifest, made with FaceForge 2.1, signed by Test Generator Signer (issued by Likeness Test CA), "
            "manifest valid (signer not on a trust list); declares itself AI-generated (trainedAlgorithmicMedia)"
            ) in page
    assert "Files declaring themselves AI-generated" in page
    assert audit.read_record(tmp_path / "f.json").run["ai_declared"] == 2


def test_damaged_manifests_are_recorded_as_invalid_and_the_scan_goes_on(signer, photos, tmp_path):
    signed = sign(signer, photos["yaoming"].read_bytes())
    media = tmp_path / "media"
    media.mkdir()
    broken = bytearray(signed)
    at = broken.find(b"c2pa.signature")
    broken[at + 200:at + 260] = bytes(60)  # the manifest's own bytes: it no longer parses
    (media / "broken.jpg").write_bytes(bytes(broken))
    altered = bytearray(signed)
    altered[-3000] ^= 0xFF  # the picture after signing: the manifest's hash of it no longer matches
    (media / "altered.jpg").write_bytes(bytes(altered))
    run("enroll", "face", "yao", photos["yaoming"])
    run("scan", media, "--out", tmp_path / "f.json", "--quiet")
    rows = {Path(r["path"]).name: r for r in json.loads((tmp_path / "f.json").read_text())}
    b, a = rows["broken.jpg"]["extra"]["provenance"], rows["altered.jpg"]["extra"]["provenance"]
    assert rows["broken.jpg"]["kind"] == "match" and b["valid"] is False and b["state"] == "invalid"
    assert b["problems"][0].startswith("the manifest cannot be read:")
    assert a["valid"] is False and any(p.startswith("assertion.dataHash.mismatch") for p in a["problems"])
    run("report", tmp_path / "f.json", "--out", tmp_path / "page.html")
    assert "manifest INVALID" in (tmp_path / "page.html").read_text()


def test_a_reader_that_hangs_costs_its_budget_once(signer, photos, tmp_path, monkeypatch):
    path = tmp_path / "s.jpg"
    path.write_bytes(sign(signer, photos["yaoming"].read_bytes()))
    monkeypatch.setattr(prov, "C2PA_SECONDS", 0.2)
    monkeypatch.setattr(prov, "_reader", lambda *a: time.sleep(3))
    started = time.monotonic()
    found = read_provenance(path)
    assert time.monotonic() - started < 2 and found.valid is None
    assert found.state == "not checked: the manifest took longer than 0.2 s to read"


def test_without_c2pa_python_the_manifest_is_noted_not_checked(signer, photos, tmp_path, monkeypatch):
    path = tmp_path / "s.jpg"
    path.write_bytes(sign(signer, photos["yaoming"].read_bytes()))
    monkeypatch.setitem(sys.modules, "c2pa", None)
    found = read_provenance(path)
    assert found.manifest and found.valid is None and found.state.startswith("not checked: c2pa-python")


def test_a_signed_video(signer, photos, tmp_path):
    make_video(tmp_path / "clip.mp4", [(photos["yaoming"], 2.0)])
    media = tmp_path / "media"
    media.mkdir()
    (media / "clip.mp4").write_bytes(sign(signer, (tmp_path / "clip.mp4").read_bytes(), "video/mp4"))
    run("enroll", "face", "yao", photos["yaoming"])
    run("scan", media, "--out", tmp_path / "f.json", "--quiet")
    (row,) = json.loads((tmp_path / "f.json").read_text())
    p = row["extra"]["provenance"]
    assert row["kind"] == "match" and p["valid"] and p["generator"] == "FaceForge 2.1" and p["ai_declared"]


def test_a_trust_list_makes_the_test_signer_trusted(signer, photos, tmp_path, monkeypatch):
    """--c2pa-trust (or $AUDIT_C2PA_TRUST) names a PEM file of trusted roots: the test CA's signature then reads as
    trusted instead of "signer not on a trust list"; another root leaves it valid but untrusted."""
    media = tmp_path / "media"
    media.mkdir()
    (media / "signed.jpg").write_bytes(sign(signer, photos["yaoming"].read_bytes()))
    roots = tmp_path / "roots.pem"
    roots.write_bytes(signer.test_root)
    assert read_provenance(media / "signed.jpg", trust=signer.test_root.decode()).state == "trusted"
    run("enroll", "face", "yao", photos["yaoming"])
    run("scan", media, "--out", tmp_path / "f.json", "--quiet", "--c2pa-trust", roots)
    (row,) = json.loads((tmp_path / "f.json").read_text())
    p = row["extra"]["provenance"]
    assert (p["state"], p["valid"], p["problems"]) == ("trusted", True, [])
    run("report", tmp_path / "f.json", "--out", tmp_path / "page.html")
    page = (tmp_path / "page.html").read_text()
    assert "manifest valid, signer trusted" in page and "not on a trust list" not in page
    # The environment variable does the same; a missing file is a usage error, not a silent "untrusted".
    monkeypatch.setenv("AUDIT_C2PA_TRUST", str(roots))
    run("scan", media, "--out", tmp_path / "g.json", "--quiet", "--no-cache")
    assert json.loads((tmp_path / "g.json").read_text())[0]["extra"]["provenance"]["state"] == "trusted"
    monkeypatch.delenv("AUDIT_C2PA_TRUST")
    out = run("scan", media, "--c2pa-trust", tmp_path / "nope.pem", code=2).output
    assert "nope.pem" in out
    (tmp_path / "junk.pem").write_text("not a certificate")
    assert "no PEM certificate" in run("scan", media, "--c2pa-trust", tmp_path / "junk.pem", code=2).output
