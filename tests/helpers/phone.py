"""Telephone-band copies of recordings, for tests of band-limited voice templates."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_phone(src: Path, out: Path) -> Path:
    """A telephone-band copy of a recording (audit.models.channel.telephone) as 16-bit 16 kHz WAV."""
    from scipy.io import wavfile

    from audit.media.audio import load_audio
    from audit.models.channel import telephone

    wavfile.write(out, 16000, (np.clip(telephone(load_audio(src)), -1, 1) * 32767).astype(np.int16))
    return out
