"""Necks."""
from .yolov7_pafpn import YOLOv7PAFPN

__all__ = ['YOLOv7PAFPN']
