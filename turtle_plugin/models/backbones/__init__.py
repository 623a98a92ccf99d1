"""Backbones."""
from .yolov7 import YOLOv7Backbone

__all__ = ['YOLOv7Backbone']
