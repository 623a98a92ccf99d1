from . import transforms
from .coco_conversion import (AREA_RATIO, coco_annotations_to_yolo_rows, coco_categories,
                              format_label_rows, records_to_coco, validate_coco_keypoints,
                              yolo_rows_to_coco_annotations)
from .image_cache import DecodedImageCache
from .metainfo import (data_yaml_metainfo, default_pose_metainfo, is_data_yaml,
                       load_pose_metainfo)
from .yolo_format import (LabelSpec, UnreadableImageError, YOLOLabelError, list_images,
                          parse_label_file, read_data_yaml, read_image_size, scan_labels)
from .yolo_kpt_dataset import YOLODetDataset, YOLOKptDataset

__all__ = [
    'transforms', 'AREA_RATIO', 'coco_annotations_to_yolo_rows', 'coco_categories',
    'format_label_rows', 'records_to_coco', 'validate_coco_keypoints',
    'yolo_rows_to_coco_annotations', 'DecodedImageCache', 'LabelSpec', 'UnreadableImageError',
    'YOLOLabelError', 'list_images', 'parse_label_file', 'read_data_yaml', 'read_image_size',
    'scan_labels',
    'YOLODetDataset', 'YOLOKptDataset', 'default_pose_metainfo', 'data_yaml_metainfo',
    'load_pose_metainfo', 'is_data_yaml'
]
