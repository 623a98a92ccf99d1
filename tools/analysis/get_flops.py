"""Parameters and FLOPs of a config's model at a given input size.

    python tools/analysis/get_flops.py configs/turtle_kpt.py --shape 256 256

FLOPs are counted by ``mmengine.analysis`` (one fused multiply-add = 1 FLOP, as fvcore; the
original YOLOv7 reports GFLOPS as 2x this). The count is for the training-form model unless
``--deploy`` re-parameterises RepConvs and fuses conv+BN first.
"""
import argparse

import torch
from mmengine.analysis import get_model_complexity_info
from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope


def model_complexity(config: str, shape=(256, 256), deploy: bool = False) -> dict:
    """Build the config's model and count its parameters and FLOPs for one image of ``shape``."""
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    from turtle_plugin.models.layers import fuse_conv_bn
    registry = DefaultScope.get_current_instance().scope_name
    if registry == 'mmpose':
        from mmpose.registry import MODELS
    else:
        from mmdet.registry import MODELS
    model = MODELS.build(cfg.model).eval()
    if deploy:
        model = fuse_conv_bn(model)
    inputs = torch.zeros(1, 3, *shape)
    params = sum(p.numel() for p in model.parameters())
    info = get_model_complexity_info(
        model, inputs=(inputs, None), show_table=False, show_arch=False)  # (inputs, data_samples)
    return dict(params=params, flops=info['flops'], shape=tuple(shape))


def main():
    parser = argparse.ArgumentParser(description='Count parameters and FLOPs of a model')
    parser.add_argument('config')
    parser.add_argument('--shape', type=int, nargs=2, default=[256, 256], help='H W')
    parser.add_argument('--deploy', action='store_true', help='count the fused deploy model')
    args = parser.parse_args()
    result = model_complexity(args.config, args.shape, args.deploy)
    print(f"input {result['shape'][0]}x{result['shape'][1]}: "
          f"{result['params'] / 1e6:.3f} M parameters, {result['flops'] / 1e9:.3f} GFLOPs "
          f"({2 * result['flops'] / 1e9:.3f} GFLOPS as the original YOLOv7 reports)")


if __name__ == '__main__':
    main()
