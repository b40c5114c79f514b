"""The aesthetic MLP (LAION layout) and the CLIP score, on hand-made numbers."""

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from generation.scoring.aesthetic import AestheticMlp
from generation.scoring.clipscore import clip_scores
from generation.scoring.files import ScorerBroken
from generation.scoring.openclip import prompt_for_clip


def test_clip_score_is_100_times_cosine_clipped_at_zero():
    img = np.array([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0]])
    txt = np.array([[3.0, 4.0], [1.0, 1.0], [0.0, -1.0]])
    assert clip_scores(img, txt) == pytest.approx([100.0, 100 / 2**0.5, 0.0])


def test_break_separators_become_commas_for_clip():
    assert prompt_for_clip("1girl, solo BREAK artist name BREAK") == "1girl, solo, artist name"


def test_aesthetic_mlp_loads_the_laion_layout_and_normalises_the_embedding(tmp_path):
    # layers.0 (2→3), layers.2 (3→1) — dropout slots between, no activations, like the LAION predictor
    w0 = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=np.float32)
    b0 = np.array([0.0, 1.0, 0.0], dtype=np.float32)
    w2 = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    b2 = np.array([0.5], dtype=np.float32)
    path = tmp_path / "aesthetic_mlp.pth"
    torch.save({"layers.0.weight": torch.tensor(w0), "layers.0.bias": torch.tensor(b0),
                "layers.2.weight": torch.tensor(w2), "layers.2.bias": torch.tensor(b2)}, path)
    mlp = AestheticMlp(path, embed_dim=2)
    # [6, 8] normalises to [0.6, 0.8]: hidden [0.6, 1.8, 1.4], out 0.6 + 3.6 + 4.2 + 0.5 = 8.9
    assert mlp(np.array([[6.0, 8.0]]))[0] == pytest.approx(8.9)


def test_aesthetic_mlp_refuses_the_wrong_embedding_size(tmp_path):
    path = tmp_path / "aesthetic_mlp.safetensors"
    save_file({"layers.0.weight": np.ones((1, 768), dtype=np.float32), "layers.0.bias": np.zeros(1, dtype=np.float32)},
              str(path))
    with pytest.raises(ScorerBroken, match="768-dim embeddings but the open_clip model gives 32"):
        AestheticMlp(path, embed_dim=32)
