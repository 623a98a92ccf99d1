"""``default_hooks.NAME=None`` switches off any default hook, the plugin's included.

MMEngine's ``Runner.register_default_hooks`` removes a hook given as ``None`` only when its name
is one of MMEngine's own six (``runtime_info``, ``timer``, ``sampler_seed``, ``logger``,
``param_scheduler``, ``checkpoint``); for any other name it fails on a bare ``assert``. The
plugin's configs add more under ``default_hooks`` (``ema``, ``close_mosaic``,
``kpt_sigma_warmup``, ``divergence_check``, ...), which a user switches off the same way, e.g.
``--cfg-options default_hooks.divergence_check=None``. ``tools/train.py`` and ``tools/test.py``
call :func:`drop_disabled_default_hooks` before building the runner, so those ``None`` entries
are removed there and MMEngine's own are left for the runner to remove.
"""
from typing import List

from mmengine.config import Config

__all__ = ['MMENGINE_DEFAULT_HOOKS', 'drop_disabled_default_hooks']

# the names Runner.register_default_hooks knows (mmengine 0.10)
MMENGINE_DEFAULT_HOOKS = ('runtime_info', 'timer', 'sampler_seed', 'logger', 'param_scheduler',
                          'checkpoint')


def drop_disabled_default_hooks(cfg: Config) -> List[str]:
    """Remove the ``default_hooks`` entries set to ``None`` whose names MMEngine's runner does
    not know; MMEngine's own ``None`` entries stay (the runner removes those hooks itself).

    Args:
        cfg (Config): the config; updated in place.

    Returns:
        list[str]: the names removed, in config order.
    """
    hooks = cfg.get('default_hooks')
    if not hooks:
        return []
    dropped = [name for name, hook in hooks.items()
               if hook is None and name not in MMENGINE_DEFAULT_HOOKS]
    for name in dropped:
        hooks.pop(name)
    return dropped
