"""CCIP (deepghs) character similarity with onnxruntime, from a local folder in the deepghs layout.

``model_feat.onnx`` maps a batch of preprocessed images (input ``input``, N×3×384×384 float32) to features
(output ``output``, N×D); ``model_metrics.onnx`` maps a stacked feature batch (input ``input``, N×D) to the N×N
difference matrix (output ``output``) — the convention of ``imgutils.metrics.ccip.ccip_batch_differences``.
Two images show the same character when their difference is at or below ``metrics.json``'s ``threshold``.

onnxruntime is imported lazily, so the web tier never needs it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from generation.scoring.files import CCIP_FILES, ScorerBroken, ScorerUnavailable, read_ccip_threshold

CCIP_SIZE = 384
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def to_rgb_on_white(image: PILImage.Image) -> PILImage.Image:
    """RGB, with any transparency composited on a white background."""
    has_alpha = image.mode in ("RGBA", "LA", "RGBa", "La", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        background = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
        return PILImage.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def ccip_preprocess(image: PILImage.Image, size: int = CCIP_SIZE) -> np.ndarray:
    """One image as CCIP reads it: RGB on white, ``size``×``size`` bilinear (aspect not kept), [0, 1], CLIP-normalised, CHW float32."""
    rgb = to_rgb_on_white(image).resize((size, size), resample=PILImage.BILINEAR)
    data = np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1) / 255.0
    mean = np.asarray(CLIP_MEAN)[:, None, None]
    std = np.asarray(CLIP_STD)[:, None, None]
    return ((data - mean) / std).astype(np.float32)


def _providers(device: str) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device != "cpu" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class CcipModel:
    """The feature and metrics sessions of one CCIP folder."""

    def __init__(self, folder: Path | str, *, device: str = "cpu", batch_size: int = 16):
        folder = Path(folder)
        if not folder.is_dir():
            raise ScorerUnavailable(f"CCIP model folder {folder} does not exist (it needs {', '.join(CCIP_FILES)})")
        missing = [name for name in CCIP_FILES if not (folder / name).is_file()]
        if missing:
            raise ScorerUnavailable(f"CCIP model folder {folder} lacks {', '.join(missing)}")
        self.folder = folder
        self.threshold = read_ccip_threshold(folder / "metrics.json")
        self.batch_size = max(1, int(batch_size))
        try:
            import onnxruntime as ort
        except ImportError:  # pragma: no cover - workers install the gpu extra
            raise ScorerUnavailable("CCIP needs onnxruntime (install the package's gpu extra)") from None
        providers = _providers(device)
        self._feat = self._open(ort, folder / "model_feat.onnx", providers)
        self._metrics = self._open(ort, folder / "model_metrics.onnx", providers)
        self._lock = threading.Lock()

    @staticmethod
    def _open(ort, path: Path, providers: list[str]):
        try:
            session = ort.InferenceSession(str(path), providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ScorerBroken(f"CCIP: cannot load {path}: {exc}") from None
        inputs = [i.name for i in session.get_inputs()]
        outputs = [o.name for o in session.get_outputs()]
        if "input" not in inputs or "output" not in outputs:
            raise ScorerBroken(f"CCIP: {path} must have an input named 'input' and an output named 'output' "
                               f"(it has inputs {inputs}, outputs {outputs})")
        return session

    def features(self, images: Sequence[PILImage.Image]) -> np.ndarray:
        """Feature rows (N×D float32) of the images, in batches."""
        chunks = []
        for start in range(0, len(images), self.batch_size):
            batch = np.stack([ccip_preprocess(im) for im in images[start:start + self.batch_size]]).astype(np.float32)
            try:
                (out,) = self._feat.run(["output"], {"input": batch})
            except Exception as exc:
                raise ScorerBroken(f"CCIP: the feature model in {self.folder} failed: {exc}") from None
            chunks.append(np.asarray(out, dtype=np.float32).reshape(len(batch), -1))
        if not chunks:
            return np.zeros((0, 0), dtype=np.float32)
        return np.concatenate(chunks)

    def differences(self, features: np.ndarray) -> np.ndarray:
        """The N×N difference matrix of stacked feature rows (lower means more alike)."""
        features = np.asarray(features, dtype=np.float32)
        try:
            (out,) = self._metrics.run(["output"], {"input": features})
        except Exception as exc:
            raise ScorerBroken(f"CCIP: the metrics model in {self.folder} failed: {exc}") from None
        out = np.asarray(out, dtype=np.float32)
        n = features.shape[0]
        if out.shape != (n, n) or not np.isfinite(out).all():
            raise ScorerBroken(f"CCIP: the metrics model in {self.folder} returned shape {out.shape} "
                               f"for {n} features (expected a finite {n}×{n} matrix)")
        return out

    def difference(self, a: PILImage.Image, b: PILImage.Image) -> float:
        return float(self.differences(self.features([a, b]))[0, 1])

    def same(self, difference: float) -> bool:
        return difference <= self.threshold


# --- tiny CCIP-shaped pair, for the demo and the tests -------------------------------------------------------

TINY_FEATURE_DIM = 32
TINY_THRESHOLD = 0.2


def tiny_ccip_write(folder: Path | str, *, seed: int = 0, threshold: float = TINY_THRESHOLD) -> Path:
    """Write a tiny CCIP-shaped ONNX pair and ``metrics.json`` to ``folder`` (onnx.helper, no torch).

    Feature model: 48×48 average pooling of the 384×384 input (3×8×8), flattened, times a random 192×32
    matrix. Metrics model: (1 − cosine similarity) / 2 between every pair of rows, clipped to [0, 1] — symmetric
    with a zero diagonal by construction, like the real model's output.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pooled = 3 * (CCIP_SIZE // 48) ** 2
    weight = (rng.standard_normal((pooled, TINY_FEATURE_DIM)) / np.sqrt(pooled)).astype(np.float32)

    opset = [helper.make_opsetid("", 17)]
    feat_graph = helper.make_graph(
        [
            helper.make_node("AveragePool", ["input"], ["pooled"], kernel_shape=[48, 48], strides=[48, 48]),
            helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "W"], ["output"]),
        ],
        "ccip_tiny_feat",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, CCIP_SIZE, CCIP_SIZE])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", TINY_FEATURE_DIM])],
        initializer=[numpy_helper.from_array(weight, "W")],
    )
    feat = helper.make_model(feat_graph, opset_imports=opset, producer_name="arena-tiny-ccip")
    feat.ir_version = 8
    onnx.checker.check_model(feat)

    consts = [
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"),
        numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
        numpy_helper.from_array(np.array(1e-12, dtype=np.float32), "eps"),
    ]
    metrics_graph = helper.make_graph(
        [
            helper.make_node("ReduceL2", ["input"], ["norm"], axes=[1], keepdims=1),
            helper.make_node("Max", ["norm", "eps"], ["safe_norm"]),
            helper.make_node("Div", ["input", "safe_norm"], ["unit"]),
            helper.make_node("Transpose", ["unit"], ["unit_t"], perm=[1, 0]),
            helper.make_node("MatMul", ["unit", "unit_t"], ["cosine"]),
            helper.make_node("Sub", ["one", "cosine"], ["distance"]),
            helper.make_node("Mul", ["distance", "half"], ["scaled"]),
            helper.make_node("Clip", ["scaled", "zero", "one"], ["output"]),
        ],
        "ccip_tiny_metrics",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", TINY_FEATURE_DIM])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", "N"])],
        initializer=consts,
    )
    metrics = helper.make_model(metrics_graph, opset_imports=opset, producer_name="arena-tiny-ccip")
    metrics.ir_version = 8
    onnx.checker.check_model(metrics)

    onnx.save(feat, str(folder / "model_feat.onnx"))
    onnx.save(metrics, str(folder / "model_metrics.onnx"))
    (folder / "metrics.json").write_text(json.dumps({"threshold": threshold, "note": "tiny random CCIP-shaped model"}) + "\n")
    return folder
