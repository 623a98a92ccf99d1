"""Shared helpers of the API tests: models with realistic BatchNorm statistics and head
outputs injected with known values."""
from pathlib import Path
from typing import Sequence, Tuple

import torch
import torch.nn as nn

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / 'configs'
KPT_TINY = str(CONFIGS / 'turtle_kpt_tiny.py')
DET_TINY = str(CONFIGS / 'turtle_det_tiny.py')
DET_L = str(CONFIGS / 'turtle_det.py')
TIGER_TINY = str(CONFIGS / 'tiger_kpt_tiny.py')
TIGER_FRAME = REPO / 'data' / 'tiger_sample' / 'val' / 'images' / 'Frame_192.jpg'  # 1280x720


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, size: int, seed: int = 0) -> nn.Module:
    """Give every BatchNorm random affine parameters and the running statistics of one batch
    of random images, as training would: activations then keep a trained network's scale
    (a freshly built network's default statistics let them grow layer after layer), and
    folding BN into convs has something to fold. Calibrate at the size the model will see:
    statistics of another size do not keep the deep levels' activations in scale. Returns the
    model in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.weight.copy_(torch.rand(norm.weight.shape, generator=gen) + 0.5)
        norm.bias.copy_(torch.randn(norm.bias.shape, generator=gen) * 0.1)
        norm.momentum = 1.0  # the running statistics become this batch's
    model.train()
    model.extract_feat(torch.rand(4, 3, size, size, generator=gen))
    for norm in norms:
        norm.momentum = 0.03
    return model.eval()


def raw_head_maps(head_module, feats: Sequence[torch.Tensor],
                  positives: Sequence[Tuple[int, int, int, int]], kpt_raw: torch.Tensor = None):
    """Head outputs with known values: every objectness logit -20 except at ``positives``
    ``(level, anchor, i, j)`` (column ``i``, row ``j``), whose box is ``t = 0`` (centre at the
    cell centre, anchor-sized) with objectness and class logits +20. Keypoint maps hold
    ``kpt_raw`` ``(K, kpt_dim)`` at the positives and 0 elsewhere."""
    num_anchors, per_anchor = head_module.num_anchors, head_module.num_det_outputs
    det_maps, kpt_maps = [], []
    for level, x in enumerate(feats):
        batch, _, height, width = x.shape
        det = x.new_zeros(batch, num_anchors, per_anchor, height, width)
        det[:, :, 4:] = -20.
        kpt = x.new_zeros(batch, num_anchors, head_module.num_keypoints, head_module.kpt_dim,
                          height, width)
        for pos_level, anchor, i, j in positives:
            if pos_level == level:
                det[:, anchor, :4, j, i] = 0.
                det[:, anchor, 4:, j, i] = 20.
                if kpt_raw is not None:
                    kpt[:, anchor, :, :, j, i] = kpt_raw
        det_maps.append(det.flatten(1, 2))
        kpt_maps.append(kpt.flatten(1, 3))
    return det_maps, (kpt_maps if head_module.num_keypoints else [])


def inject_head(monkeypatch, head_module, positives, kpt_raw=None) -> None:
    """Make ``head_module`` return :func:`raw_head_maps` for whatever features it gets."""
    monkeypatch.setattr(head_module, 'forward',
                        lambda feats: raw_head_maps(head_module, feats, positives, kpt_raw))
