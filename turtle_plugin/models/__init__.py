from . import backbones, detectors, heads, layers, losses, necks, task_modules

__all__ = ['backbones', 'detectors', 'heads', 'layers', 'losses', 'necks', 'task_modules']
