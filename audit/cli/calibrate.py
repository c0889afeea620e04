"""The calibrate command: thresholds measured on this gallery, with the error rates they stand for."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import click

from .base import Context, Fail, cli, guarded


@cli.command()
@click.option("--modality", type=click.Choice(["face", "voice"]), default="face", show_default=True)
@click.option("--voice-model", type=click.Choice(["ge2e", "campplus", "fused"]), default="fused", show_default=True,
              help="With --modality voice: the voice encoder whose gallery to calibrate (fused: each of its two).")
@click.option("--cohort", "cohort", multiple=True, type=click.Path(exists=True),
              help="Photos (or with --modality voice, recordings) of people who are NOT enrolled (folder or files; "
                   "repeatable): more impostor scores.")
@click.option("--target-fpir", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.01,
              show_default=True, help="False-positive identification rate to aim for at the current gallery size.")
@click.option("--json", "as_json", is_flag=True, help="Print the calibration as JSON (stores the same as without).")
@click.option("--dry-run", is_flag=True, help="Show the result without storing it.")
@click.option("--accept", is_flag=True, help="Store a calibration that lowers the threshold although it misses "
                                             "its target rate.")
@click.pass_obj
@guarded
def calibrate(obj: Context, modality: str, voice_model: str, cohort: tuple[str, ...], target_fpir: float,
              as_json: bool, dry_run: bool, accept: bool) -> None:
    """Measure genuine and impostor face (or voice) scores on the enrolled gallery and choose the thresholds.

    The match threshold is chosen for TARGET_FPIR, the chance that a face of someone not enrolled is matched
    to anyone among the N people enrolled (per comparison about FPIR / N). Scans then use it and state the rate;
    they warn once the gallery grows past the size it was calibrated for.

    \b
    Example:
      likeness-audit calibrate --cohort strangers/ --target-fpir 0.01
      likeness-audit calibrate --modality voice --cohort other-voices/
    """
    if modality == "voice":
        return _calibrate_voice(obj, voice_model, cohort, target_fpir, as_json)
    from ..calibrate import calibrate_store, cohort_vectors

    store = obj.store()
    model = store.face_model
    vecs, problems = cohort_vectors(model, cohort) if cohort else (None, [])
    for p in problems:
        click.echo(f"cohort: skipped {p}", err=True)
    if cohort and (vecs is None or len(vecs) == 0):
        raise Fail("the cohort gave no faces")
    cal = calibrate_store(store, "face", model.model_id, vecs, target_fpir, save=not dry_run, accept=accept)
    if dry_run:
        click.echo("dry run: nothing stored", err=True)
    if as_json:
        click.echo(json.dumps(asdict(cal), indent=1, default=float))
        return
    d = cal.details
    click.echo(f"face {model.model_name}: calibrated {cal.date} on {cal.gallery_size} people "
               f"({d['samples']} samples, {cal.cohort} cohort faces)")
    click.echo(f"  match threshold {cal.threshold:.3f}: false-match rate <= {cal.fmr:.1e} per comparison (95 % upper "
               f"bound: {d['identity_pairs_at_or_above']} of {d['identity_pairs']} pairs of identities reach it; "
               f"{d['impostor_at_or_above']} of {cal.impostor} comparisons; exponential-tail estimate "
               f"{d['fmr_model']:.1e})")
    click.echo(f"  FPIR <= {cal.fpir:.1e} at {cal.gallery_size} people (target {cal.target_fpir:.1e}); "
               f"{d['nonmated_at_or_above']} of {d['nonmated_searches']} non-mated searches reached it")
    if cal.fpir > cal.target_fpir * 1.01:
        need = math.ceil(3 / (d["target_fmr"] * cal.gallery_size))
        click.echo(f"  the data cannot show FPIR {cal.target_fpir:.1e}: {d['identity_pairs']} pairs of identities "
                   f"bound it no lower; a --cohort of about {need} faces of other people (one each), none reaching "
                   "it, would")
    fnmr = "n/a (no person has two samples)" if cal.genuine == 0 else f"{cal.fnmr:.3f}"
    click.echo(f"  genuine: {cal.genuine} leave-one-out scores, false non-match rate at the threshold {fnmr}")
    real = d["mated_searches"] + d["nonmated_composite_searches"]
    click.echo(f"  composite threshold {cal.composite_threshold:.3f}: false-composite rate <= {cal.composite_rate:.1e} "
               f"({d['false_composites_mated'] + d['false_composites_nonmated']} of {real} real faces flagged)")


def _calibrate_voice(obj: Context, voice_model: str, cohort: tuple[str, ...], target_fpir: float,
                     as_json: bool) -> None:
    """Voice calibration on AS-normalised scores (audit/calibrate_voice.py); fused: each part, in turn (the fused
    threshold itself is the documented default, measured by benchmarks/voice_clones.py); --json then prints one
    object, part -> calibration."""
    from ..calibrate_voice import calibrate_voice_store
    from ..models.voice import voice_encoder

    if voice_model == "fused":
        from ..models.fused import PARTS

        if not as_json:
            for part in PARTS:
                _calibrate_voice(obj, part, cohort, target_fpir, False)
            return
        out = {}
        for part in PARTS:
            cal, problems = calibrate_voice_store(obj.store(), voice_encoder(part, threads=obj.threads), cohort,
                                                  target_fpir)
            for p in problems:
                click.echo(f"cohort: skipped {p}", err=True)
            out[part] = asdict(cal)
        click.echo(json.dumps(out, indent=1, default=float))
        return

    cal, problems = calibrate_voice_store(obj.store(), voice_encoder(voice_model, threads=obj.threads), cohort,
                                          target_fpir)
    for p in problems:
        click.echo(f"cohort: skipped {p}", err=True)
    if as_json:
        click.echo(json.dumps(asdict(cal), indent=1, default=float))
        return
    d = cal.details
    click.echo(f"voice {voice_model}: calibrated {cal.date} on {cal.gallery_size} people ({d['samples']} recordings, "
               f"{d['cohort_vectors']} shipped cohort speakers, {d['cohort_files']} cohort recordings)")
    click.echo(f"  threshold {cal.threshold:.3f} ({d['score']}): false-match rate <= {cal.fmr:.1e} per file and "
               f"person (95 % upper bound: {d['identity_pairs_at_or_above']} of {d['identity_pairs']} pairs of "
               f"identities reach it; exponential-tail estimate {d['fmr_model']:.1e})")
    click.echo(f"  FPIR <= {cal.fpir:.1e} at {cal.gallery_size} people (target {cal.target_fpir:.1e})")
    fnmr = "n/a (no person has two recordings)" if cal.genuine == 0 else f"{cal.fnmr:.3f}"
    click.echo(f"  genuine: {cal.genuine} leave-one-out scores, false non-match rate at the threshold {fnmr}")
