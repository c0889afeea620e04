"""SCRFD detection and ArcFace embedding on onnxruntime directly.

The pre- and post-processing of insightface's model_zoo (scrfd.py, arcface_onnx.py), copied to what we use:
importing model_zoo imports `onnx` (0.9 s of a one-file command) to read graphs we never need to rewrite.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# SCRFD's normalisation (insightface scrfd.py) and ArcFace's (arcface_onnx.py: the packs we accept have no
# Sub/Mul input nodes, so insightface uses 127.5 / 127.5 for them).
DET_MEAN, DET_STD = 127.5, 128.0
REC_MEAN, REC_STD = 127.5, 127.5
NMS_THRESH = 0.4


def session(path: Path, threads: int, graph: bytes | None = None):
    """An onnxruntime CPU session with our options (one inter-op thread, no spin-waiting); of graph (the model's
    bytes, rewritten) when given, else of the file at path."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # Spin-waiting made two threads slower than one on 2-core machines.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return ort.InferenceSession(graph if graph is not None else str(path), sess_options=opts,
                                providers=["CPUExecutionProvider"])


def nms(dets: np.ndarray, thresh: float = NMS_THRESH) -> list[int]:
    """Greedy non-maximum suppression of (x1, y1, x2, y2, score) rows, as insightface's SCRFD.nms."""
    x1, y1, x2, y2, scores = dets[:, 0], dets[:, 1], dets[:, 2], dets[:, 3], dets[:, 4]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        w = np.maximum(0.0, np.minimum(x2[i], x2[order[1:]]) - np.maximum(x1[i], x1[order[1:]]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[order[1:]]) - np.maximum(y1[i], y1[order[1:]]) + 1)
        inter = w * h
        ovr = inter / (areas[i] + areas[order[1:]] - inter)
        order = order[np.where(ovr <= thresh)[0] + 1]
    return keep


class Detector:
    """An SCRFD detector: boxes with scores and five landmarks, in the coordinates of the image given."""

    def __init__(self, path: Path, threads: int = 1, thresh: float = 0.5):
        self.session = session(path, threads)
        self.thresh = thresh
        self.input_name = self.session.get_inputs()[0].name
        outs = self.session.get_outputs()
        self.output_names = [o.name for o in outs]
        self.batched = len(outs[0].shape) == 3
        n = len(outs)
        if n not in (6, 9, 10, 15):
            raise ValueError(f"not an SCRFD detector ({n} outputs)")
        self.fmc = 3 if n in (6, 9) else 5
        self.strides = (8, 16, 32) if self.fmc == 3 else (8, 16, 32, 64, 128)
        self.anchors = 2 if self.fmc == 3 else 1
        self.use_kps = n in (9, 15)
        self._centres: dict[tuple[int, int, int], np.ndarray] = {}

    def _anchor_centres(self, height: int, width: int, stride: int) -> np.ndarray:
        key = (height, width, stride)
        if key not in self._centres:
            c = np.stack(np.mgrid[:height, :width][::-1], axis=-1).astype(np.float32)
            c = (c * stride).reshape(-1, 2)
            if self.anchors > 1:
                c = np.stack([c] * self.anchors, axis=1).reshape(-1, 2)
            self._centres[key] = c
        return self._centres[key]

    def detect(self, img: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (N x 5) and landmarks (N x 5 x 2) of a BGR image, resized to fit a (width, height) canvas.

        As insightface's SCRFD.detect with one input size: the image is scaled to fit the canvas (up or down),
        placed top-left on black, and the candidates above the threshold go through NMS.
        """
        if img.shape[0] / img.shape[1] > size[1] / size[0]:
            new_h = size[1]
            new_w = max(1, int(new_h / (img.shape[0] / img.shape[1])))
        else:
            new_w = size[0]
            new_h = max(1, int(new_w * img.shape[0] / img.shape[1]))
        return self._run(img, (new_w, new_h), size)

    def detect_within(self, img: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
        """As detect, on a canvas sized to the image: shrunk (never enlarged) to fit `side`, and rounded up to the
        detector's largest stride. A 200 px photo is one 224 x 224 pass instead of an upscaled 640 x 640 one."""
        h, w = img.shape[:2]
        if max(h, w) <= side:
            new_w, new_h = w, h
        elif h > w:  # the sizes insightface's fit-to-square gives, so a large photo gives the same boxes
            new_h, new_w = side, max(1, int(side / (h / w)))
        else:  # (at least a pixel: a 5 x 10,000 strip would round to none)
            new_w, new_h = side, max(1, int(side * h / w))
        top = self.strides[-1]
        return self._run(img, (new_w, new_h), (-(-new_w // top) * top, -(-new_h // top) * top))

    def _run(self, img: np.ndarray, new: tuple[int, int], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Resize the image to `new` (width, height), place it top-left on a black `size` canvas, detect."""
        import cv2

        new_w, new_h = new
        scale = new_h / img.shape[0]
        canvas = np.zeros((size[1], size[0], 3), np.uint8)
        canvas[:new_h, :new_w] = img if (new_w, new_h) == (img.shape[1], img.shape[0]) \
            else cv2.resize(img, (new_w, new_h))
        blob = cv2.dnn.blobFromImage(canvas, 1.0 / DET_STD, size, (DET_MEAN, DET_MEAN, DET_MEAN), swapRB=True)
        outs = self.session.run(self.output_names, {self.input_name: blob})
        scores_l, boxes_l, kps_l = [], [], []
        for i, stride in enumerate(self.strides):
            pick = (lambda k: outs[k][0]) if self.batched else (lambda k: outs[k])
            scores = pick(i)
            centres = self._anchor_centres(size[1] // stride, size[0] // stride, stride)
            pos = np.where(scores >= self.thresh)[0]
            if not len(pos):
                continue
            d = pick(i + self.fmc)[pos] * stride
            c = centres[pos]
            boxes_l.append(np.stack([c[:, 0] - d[:, 0], c[:, 1] - d[:, 1], c[:, 0] + d[:, 2], c[:, 1] + d[:, 3]], -1))
            scores_l.append(scores[pos])
            if self.use_kps:
                k = pick(i + 2 * self.fmc)[pos] * stride
                kps_l.append((np.tile(c, 5) + k).reshape(-1, 5, 2))
        if not scores_l:
            return np.empty((0, 5), np.float32), np.empty((0, 5, 2), np.float32)
        scores = np.vstack(scores_l).ravel()
        order = np.argsort(-scores, kind="stable")
        dets = np.hstack((np.vstack(boxes_l) / scale, scores[:, None])).astype(np.float32)[order]
        kps = (np.vstack(kps_l) / scale)[order] if self.use_kps else np.zeros((len(dets), 5, 2), np.float32)
        keep = nms(dets)
        return dets[keep], kps[keep].astype(np.float32)


class Recognizer:
    """An ArcFace recognizer: raw embeddings of aligned crops."""

    def __init__(self, path: Path, threads: int = 1):
        from .onnxgraph import prelu_as_max

        # the same embeddings, bit for bit, at two thirds of the time (onnxgraph.py); a graph it cannot read loads
        # as it is. The model id stays the file's hash.
        self.session = session(path, threads, prelu_as_max(Path(path).read_bytes()))
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_size = tuple(inp.shape[2:4][::-1])
        outs = self.session.get_outputs()
        if len(outs) != 1 or len(inp.shape) != 4:
            raise ValueError("not an ArcFace recognizer")
        self.output_name = outs[0].name
        self.output_shape = outs[0].shape

    def get_feat(self, crops: list[np.ndarray]) -> np.ndarray:
        """Raw (unnormalised) embeddings of BGR crops, one batch."""
        import cv2

        blob = cv2.dnn.blobFromImages(crops, 1.0 / REC_STD, self.input_size, (REC_MEAN, REC_MEAN, REC_MEAN),
                                      swapRB=True)
        return self.session.run([self.output_name], {self.input_name: blob})[0]
