"""One training step of the tiny tiger keypoint model, for the world-size test in test_heads.py.

    python ddp_update_worker.py OUT --repeat 2                       # 1 process, batch 8
    python -m torch.distributed.run --nproc_per_node 2 \\
        ddp_update_worker.py OUT --repeat 1                          # 2 processes, batch 4 each

Every process takes the same 4 real frames (the val pipeline: no random augmentation), repeated
``--repeat`` times, builds the model from the same seed and runs one ``train_step`` as the
runner does (``MMDistributedDataParallel`` on CPU with gloo when started by torchrun), with the
config's optimizer (SGD, nesterov) and the weight decay scaled to the total batch. Rank 0 saves
``{parameter name: update}`` and the losses to OUT.
"""
import argparse
import os
from pathlib import Path

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.dist import get_world_size
from mmengine.model import MMDistributedDataParallel
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

REPO = Path(__file__).resolve().parents[2]
NUM_IMAGES = 4


def build_batch(cfg: Config, repeat: int) -> dict:
    from mmpose.registry import DATASETS
    codec = dict(type='YOLOXPoseAnnotationProcessor', input_size=cfg.img_scale)
    pipeline = [p for p in cfg.val_pipeline if p.type != 'PackPoseInputs'] + [
        dict(type='GenerateTarget', encoder=codec), dict(type='PackPoseInputs')]
    dataset = DATASETS.build(dict(cfg.train_dataloader.dataset, pipeline=pipeline,
                                  indices=NUM_IMAGES, use_cache=False))
    samples = [dataset[i] for i in range(NUM_IMAGES)] * repeat
    return dict(inputs=[s['inputs'] for s in samples],
                data_samples=[s['data_samples'] for s in samples])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('out')
    parser.add_argument('--repeat', type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if 'WORLD_SIZE' in os.environ:
        torch_dist.init_process_group(backend='gloo')

    import turtle_plugin  # noqa: F401  registers the plugin's modules
    cfg = Config.fromfile(REPO / 'configs' / 'tiger_kpt_tiny.py')
    cfg.train_dataloader.dataset.data_root = str(REPO / 'data' / 'tiger_sample')
    batch_per_process = NUM_IMAGES * args.repeat
    with DefaultScope.overwrite_default_scope('mmpose'):
        from mmpose.registry import MODELS
        data = build_batch(cfg, args.repeat)
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        model.init_weights()
        model.train()
        optim_cfg = cfg.optim_wrapper
        optim_cfg.paramwise_cfg.batch_size_per_gpu = batch_per_process  # decay for 8 in total
        optim_wrapper = build_optim_wrapper(model, optim_cfg)
        before = {name: p.detach().clone() for name, p in model.named_parameters()}
        if get_world_size() > 1:
            losses = MMDistributedDataParallel(module=model, device_ids=None).train_step(
                data, optim_wrapper)
        else:
            losses = model.train_step(data, optim_wrapper)
    if int(os.environ.get('RANK', 0)) == 0:
        torch.save(dict(world_size=get_world_size(), batch_per_process=batch_per_process,
                        losses={k: v.item() for k, v in losses.items()},
                        updates={name: p.detach() - before[name]
                                 for name, p in model.named_parameters()}), args.out)
    if torch_dist.is_initialized():
        torch_dist.destroy_process_group()


if __name__ == '__main__':
    main()
