"""Case files: an evidence record packed with a signed manifest (make_bundle), checked anywhere (verify_bundle)."""

from .bundle import make_bundle
from .keys import (
    SigningKeyError,
    fingerprint,
    load_private_key,
    load_public_key,
    new_signing_key,
    public_path,
)
from .verify import BundleReport, verify_bundle

__all__ = ["BundleReport", "SigningKeyError", "fingerprint", "load_private_key", "load_public_key", "make_bundle",
           "new_signing_key", "public_path", "verify_bundle"]
