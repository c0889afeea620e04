"""Band-limited voice templates: each enrolled recording also embedded after a telephone line (models/channel.py),
so that a scan can judge telephone-band speech against the person's own band-limited voice."""

from __future__ import annotations

import numpy as np

from ..errors import ModelError
from ..models.channel import narrow_id, telephone
from ..models.voice_cohort import load_cohort
from ..store.registry import Sample


def narrow_sample(encoder, sample: Sample, wav: np.ndarray) -> Sample | None:
    """The band-limited template of an enrolled recording (its own model id, the same source), or None for an
    encoder without a shipped band-limited cohort (a scan could not normalise its scores)."""
    nid = narrow_id(encoder.model_id)
    try:
        load_cohort(nid)
    except ModelError:
        return None
    return Sample("voice", nid, sample.source_sha256, encoder.embed_utterance(telephone(wav)), start=sample.start,
                  end=sample.end)
