"""YOLO keypoint datasets (YOLOv7 / Ultralytics layout) for MMPose and MMDetection.

``YOLOKptDataset`` reads a data yaml as-is (or explicit image/label folders), checks and caches
the labels, and yields MMPose bottom-up data infos -- the keys of MMPose's
``BaseCocoStyleDataset`` -- so MMPose's pipelines, codecs and ``CocoMetric`` work unchanged.
``YOLODetDataset`` adds MMDetection's ``instances`` so ``mmdet.LoadAnnotations`` works too.
"""
import json
import os
import os.path as osp
import pickle
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np
from mmengine.dataset import BaseDataset, force_full_init
from mmengine.dist import get_world_size
from mmengine.logging import print_log
from mmpose.datasets.datasets.utils import parse_pose_metainfo

from turtle_plugin.registry import DATASETS
from .coco_conversion import AREA_RATIO, records_to_coco
from .image_cache import (DecodedImageCache, auto_cache_bytes, decoded_bytes,
                          mem_available_bytes)
from .metainfo import data_yaml_metainfo, load_pose_metainfo
from .transforms.kpt_geometry import check_flip_indices
from .yolo_format import (LabelSpec, YOLOLabelError, default_cache_file, label_path_for,
                          list_images, read_data_yaml, scan_labels, split_sources)

__all__ = ['YOLOKptDataset', 'YOLODetDataset']

# Metainfo entries copied into every data info, as MMPose's BaseCocoStyleDataset does.
_METAINFO_KEYS = ('dataset_name', 'upper_body_ids', 'lower_body_ids', 'flip_pairs',
                  'dataset_keypoint_weights', 'flip_indices', 'skeleton_links')


@DATASETS.register_module()
class YOLOKptDataset(BaseDataset):
    """Keypoint dataset in the YOLO layout, one label file per image.

    The split comes from a data yaml (``data_yaml``: YOLOv7 or Ultralytics, with ``path``,
    ``train``/``val``/``test`` as folders, ``.txt`` lists or lists of those, ``names``,
    optionally ``kpt_shape`` and ``flip_idx``) or, without one, from ``data_prefix['img']`` with
    labels in ``data_prefix['label']`` (empty: the ``images/`` -> ``labels/`` sibling rule).
    Label rows are ``cls cx cy w h`` + K * ``(x y)`` or ``(x y v)``, normalised; keypoints at
    ``(0, 0)`` or with ``v = 0`` are not labelled. Parsed labels and image sizes (read from the
    file headers) are cached next to the label folder (or in ``cache_dir``) and re-read for files
    whose mtime or size changed. Error and skip rules: ``docs/data.md``.

    Data infos follow MMPose's bottom-up ``BaseCocoStyleDataset``: ``img_id``, ``img_path``,
    ``width``, ``height``, ``bbox`` (N, 4) xyxy pixels clipped to the image, ``bbox_score``,
    ``category_id`` (N,) 1-based, ``keypoints`` (N, K, 2), ``keypoints_visible`` (N, K) 0/1,
    ``area``, ``num_keypoints``, ``iscrowd``, ``id`` (annotation ids) and ``raw_ann_info`` (the
    COCO annotations, so MMPose's ``CocoMetric`` needs no ann_file), plus the metainfo keys
    MMPose adds (``flip_indices``...). ``to_coco()`` returns the same annotations as a COCO json.
    After loading, ``scan_report`` lists the skipped images, the images without a label file and
    the label warnings that were logged.

    ``image_cache_mb > 0`` gives the dataset an ``image_cache`` (:class:`DecodedImageCache`)
    that ``KptLoadImage`` fills with the images it decoded and resized, for small sets that fit
    in memory (each DataLoader worker holds its own copy; use ``persistent_workers=True``).
    ``image_cache_mb='auto'`` sizes it in each process when that process prepares its first
    sample: the whole set at the sizes the pipeline's ``KptLoadImage`` steps decode it to, if
    that fits once per worker of every training process on the machine in half of its
    available memory, else no cache.

    Args:
        data_root (str): root that relative ``data_yaml`` and ``data_prefix`` paths start from.
        data_yaml (str): the data yaml; empty to use ``data_prefix`` folders.
        split (str): ``'train'``, ``'val'`` or ``'test'`` (data yaml only).
        data_prefix (dict): ``img`` and ``label`` folders when there is no data yaml.
        metainfo (dict, optional): MMPose keypoint metainfo, e.g.
            ``dict(from_file='configs/_base_/datasets/turtle.py')``, or ``dict(from_file=...)``
            naming a data yaml to derive it from (:func:`load_pose_metainfo`); may add
            ``classes``. When omitted it is derived from this dataset's data yaml
            (``kpt_shape``, ``flip_idx``, ``kpt_names``, ``names``: :func:`data_yaml_metainfo`,
            which warns). A yaml's ``flip_idx``, ``kpt_names`` and ``names`` must agree with a
            metainfo given here.
        data_mode (str): ``'bottomup'`` (one sample per image) or ``'topdown'`` (per object).
        coord_tolerance (float): how far normalised values may leave [0, 1] before it is an
            error.
        area_ratio (float): instance area = ``area_ratio * box area`` (used by OKS).
        cache_dir (str, optional): folder for the label cache instead of next to the labels.
        use_cache (bool): read and write the label cache.
        image_cache_mb (float | str): memory budget in MiB (per process) of the decoded-image
            cache used by ``KptLoadImage``; 0 disables it, ``'auto'`` sizes it (above).
        filter_cfg (dict, optional): ``filter_empty_gt`` (drop images without objects; not in
            test mode) and ``min_size`` (drop images with a shorter side below it, pixels).
        indices (int | Sequence[int], optional): keep only these samples.
        serialize_data (bool): serialize the data list (shared memory between workers).
        pipeline (Sequence[dict | Callable]): data pipeline.
        test_mode (bool): evaluation dataset (images without objects are always kept).
        lazy_init (bool): defer reading the labels.
        max_refetch (int): retries when the pipeline drops a sample.
    """

    METAINFO: dict = dict()

    def __init__(self,
                 data_root: str = '',
                 data_yaml: str = '',
                 split: str = 'train',
                 data_prefix: dict = dict(img='', label=''),
                 metainfo: Optional[dict] = None,
                 data_mode: str = 'bottomup',
                 coord_tolerance: float = 0.01,
                 area_ratio: float = AREA_RATIO,
                 cache_dir: Optional[str] = None,
                 use_cache: bool = True,
                 image_cache_mb: Union[float, str] = 0.,
                 filter_cfg: Optional[dict] = None,
                 indices: Optional[Union[int, Sequence[int]]] = None,
                 serialize_data: bool = True,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 test_mode: bool = False,
                 lazy_init: bool = False,
                 max_refetch: int = 1000):
        if data_mode not in ('bottomup', 'topdown'):
            raise ValueError(f"data_mode must be 'bottomup' or 'topdown', got {data_mode!r}")
        self.data_mode = data_mode
        self.scan_report: Dict[str, List[str]] = {}
        self.split = split
        self.coord_tolerance = coord_tolerance
        self.area_ratio = area_ratio
        self.cache_dir = cache_dir
        self.use_cache = use_cache
        if isinstance(image_cache_mb, str) and image_cache_mb != 'auto' \
                or not isinstance(image_cache_mb, str) and image_cache_mb < 0:
            raise ValueError(f"image_cache_mb must be >= 0 or 'auto', got {image_cache_mb!r}")
        self.image_cache_mb = image_cache_mb
        self.image_cache = DecodedImageCache(int(image_cache_mb * 2**20)) \
            if image_cache_mb != 'auto' and image_cache_mb > 0 else None
        self._cache_pid: Optional[int] = None  # the process an 'auto' cache was sized in
        # training processes on this machine, each with its own workers (torchrun sets
        # LOCAL_WORLD_SIZE; else every rank is counted as local, the safe side)
        self._local_ranks = int(os.environ.get('LOCAL_WORLD_SIZE') or get_world_size())
        self._metainfo_blob: Optional[bytes] = None
        data_prefix = dict(dict(img='', label=''), **data_prefix)
        self._sibling_labels = not data_prefix['label']
        super().__init__(
            ann_file=data_yaml,
            metainfo=metainfo,
            data_root=data_root,
            data_prefix=data_prefix,
            filter_cfg=filter_cfg,
            indices=indices,
            serialize_data=serialize_data,
            pipeline=list(pipeline),
            test_mode=test_mode,
            lazy_init=True,
            max_refetch=max_refetch)
        # the fitted sizes KptLoadImage caches, read before anything wraps the pipeline
        self._cache_fit_scales = self._cached_fit_scales() if image_cache_mb == 'auto' else []
        self._data_yaml = read_data_yaml(self.ann_file) if self.ann_file else None
        self._finish_metainfo()
        if not lazy_init:
            self.full_init()

    @classmethod
    def _load_metainfo(cls, metainfo: Optional[dict] = None) -> dict:
        """Parse MMPose keypoint metainfo (``from_file`` or full), keeping ``classes``."""
        if metainfo is None:
            return {}
        if 'from_file' in metainfo or 'keypoint_info' in metainfo:
            return load_pose_metainfo(metainfo)
        metainfo = dict(metainfo)
        if metainfo.get('classes') is not None:
            metainfo['classes'] = tuple(metainfo['classes'])
        return metainfo

    def _finish_metainfo(self) -> None:
        """Reconcile keypoint metainfo, class names and the data yaml; raise on conflicts."""
        data = self._data_yaml
        meta = self._metainfo
        source = meta.get('metainfo_source', 'metainfo')
        kpt_shape = data['kpt_shape'] if data else None
        flip_idx = data['flip_idx'] if data else None
        if 'num_keypoints' not in meta:
            if kpt_shape is None:
                raise YOLOLabelError(
                    'no keypoint definition: pass metainfo=dict(from_file=...) or use a data '
                    'yaml with kpt_shape')
            meta.update(parse_pose_metainfo(data_yaml_metainfo(
                data, meta.get('dataset_name', 'yolo_kpt'))))
            source = f'data yaml {data["path"]}'
        num_keypoints = meta['num_keypoints']
        check_flip_indices(meta['flip_indices'], num_keypoints, f'{source} flip_indices')
        if kpt_shape is not None and kpt_shape[0] != num_keypoints:
            raise YOLOLabelError(f'data yaml {data["path"]} has kpt_shape {list(kpt_shape)} but '
                                 f'{source} defines {num_keypoints} keypoints')
        if flip_idx is not None:
            check_flip_indices(flip_idx, num_keypoints, f'data yaml {data["path"]} flip_idx')
            if list(flip_idx) != list(meta['flip_indices']):
                raise YOLOLabelError(
                    f'data yaml {data["path"]} flip_idx {flip_idx} disagrees with {source} '
                    f'flip_indices {list(meta["flip_indices"])}')
        kpt_names = data['kpt_names'] if data else None
        meta_names = [meta['keypoint_id2name'][i] for i in range(num_keypoints)]
        if kpt_names is not None and list(kpt_names) != meta_names:
            # the same keypoints in another order would train and score under wrong names
            raise YOLOLabelError(
                f'data yaml {data["path"]} kpt_names {list(kpt_names)} disagree with {source} '
                f'keypoint names {meta_names}: make them the same (in the label columns\' '
                f'order) or remove kpt_names from the yaml')
        names = tuple(data['names']) if data else None
        if names and meta.get('classes') and tuple(meta['classes']) != names:
            raise YOLOLabelError(f'metainfo classes {meta["classes"]} disagree with data yaml '
                                 f'{data["path"]} names {names}')
        meta['classes'] = names or tuple(meta.get('classes') or (meta['dataset_name'], ))
        meta['kpt_dim'] = kpt_shape[1] if kpt_shape else None
        keypoint_names = [meta['keypoint_id2name'][i] for i in range(num_keypoints)]
        meta['CLASSES'] = [
            dict(id=i + 1, name=n, supercategory=n, keypoints=keypoint_names,
                 skeleton=[[a + 1, b + 1] for a, b in meta['skeleton_links']])
            for i, n in enumerate(meta['classes'])
        ]

    def _image_and_label_paths(self):
        """Listed images, their label files and the folder COCO file names are relative to."""
        if self._data_yaml is not None:
            img_root = self._data_yaml['root']
            images = list_images(split_sources(self._data_yaml, self.split))
        else:
            img_root = Path(self.data_prefix['img'] or '.')
            if not img_root.is_dir():
                raise YOLOLabelError(f'image folder {img_root} does not exist')
            images = list_images([img_root])
        label_root = None if self._sibling_labels else Path(self.data_prefix['label'])
        labels = [label_path_for(p, img_root, label_root) for p in images]
        if not images:
            where = self.ann_file or img_root
            raise YOLOLabelError(f'no images found for split {self.split!r} of {where}')
        return images, labels, img_root

    def _scan(self) -> tuple:
        images, labels, img_root = self._image_and_label_paths()
        spec = LabelSpec(self._metainfo['num_keypoints'], len(self._metainfo['classes']),
                         self._metainfo['kpt_dim'], self.coord_tolerance)
        cache_file = default_cache_file(labels, self.cache_dir, self.split) \
            if self.use_cache else None
        records, self.scan_report = scan_labels(images, labels, spec, cache_file)
        return records, img_root

    def _build_coco(self) -> tuple:
        records, img_root = self._scan()
        meta = self._metainfo
        names = [meta['keypoint_id2name'][i] for i in range(meta['num_keypoints'])]
        coco = records_to_coco(records, meta['classes'], img_root, names, meta['skeleton_links'],
                               self.area_ratio)
        return coco, img_root

    def to_coco(self) -> Dict:
        """The split as a COCO keypoint json dict (every readable image, before filtering)."""
        return self._build_coco()[0]

    def dump_coco_json(self, path: str) -> str:
        """Write :meth:`to_coco` to ``path`` (e.g. an ``ann_file`` for ``CocoMetric``)."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.to_coco()))
        return str(path)

    def load_data_list(self) -> List[dict]:
        coco, img_root = self._build_coco()
        anns_by_image: Dict[int, List[dict]] = {img['id']: [] for img in coco['images']}
        for ann in coco['annotations']:
            anns_by_image[ann['image_id']].append(ann)
        infos = [
            self.parse_data_info(img, anns_by_image[img['id']], img_root)
            for img in coco['images']
        ]
        if self.data_mode == 'topdown':
            infos = [inst for info in infos for inst in self._split_instances(info)]
        return infos

    def parse_data_info(self, img: Dict, anns: List[Dict], img_root: Path) -> Dict:
        """Bottom-up data info of one image from its COCO image entry and annotations."""
        k = self._metainfo['num_keypoints']
        w, h = img['width'], img['height']
        bbox = np.array([a['bbox'] for a in anns], dtype=np.float32).reshape(-1, 4)
        bbox[:, 2:] += bbox[:, :2]
        bbox[:, [0, 2]] = bbox[:, [0, 2]].clip(0, w)
        bbox[:, [1, 3]] = bbox[:, [1, 3]].clip(0, h)
        kpts = np.array([a['keypoints'] for a in anns], dtype=np.float32).reshape(-1, k, 3)
        file_name = img['file_name']
        return dict(
            img_id=img['id'],
            img_path=file_name if osp.isabs(file_name) else str(img_root / file_name),
            width=w,
            height=h,
            bbox=bbox,
            bbox_score=np.ones(len(anns), dtype=np.float32),
            category_id=np.array([a['category_id'] for a in anns], dtype=np.int64),
            keypoints=kpts[..., :2].copy(),
            keypoints_visible=np.minimum(1, kpts[..., 2]).astype(np.float32),
            area=np.array([a['area'] for a in anns], dtype=np.float32),
            num_keypoints=np.array([a['num_keypoints'] for a in anns], dtype=np.int64),
            iscrowd=np.zeros(len(anns), dtype=np.int64),
            id=[a['id'] for a in anns],
            raw_ann_info=anns)

    @staticmethod
    def _split_instances(info: Dict) -> List[Dict]:
        """Top-down data infos: one per object."""
        out = []
        for i, ann in enumerate(info['raw_ann_info']):
            inst = {k: v for k, v in info.items() if k not in ('id', 'raw_ann_info')}
            for key in ('bbox', 'bbox_score', 'category_id', 'keypoints', 'keypoints_visible',
                        'area', 'num_keypoints', 'iscrowd'):
                inst[key] = info[key][i:i + 1]
            inst.update(id=ann['id'], raw_ann_info=ann)
            out.append(inst)
        return out

    def filter_data(self) -> List[dict]:
        """Apply ``filter_cfg`` as MMDetection does: ``filter_empty_gt`` drops images without
        objects (not in test mode), ``min_size`` images whose shorter side is smaller."""
        if not self.filter_cfg:
            return self.data_list
        min_size = self.filter_cfg.get('min_size', 0)
        drop_empty = self.filter_cfg.get('filter_empty_gt', False) and not self.test_mode
        kept = [
            info for info in self.data_list
            if not (drop_empty and len(info['bbox']) == 0)
            and min(info['width'], info['height']) >= min_size
        ]
        if self.data_list and not kept:
            raise YOLOLabelError(f'filter_cfg {self.filter_cfg} left none of the '
                                 f'{len(self.data_list)} samples of split {self.split!r}')
        return kept

    @force_full_init
    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        # fresh copies of the metainfo entries, as MMPose's deepcopy, from one pickled blob
        # (several times faster; mosaics call this for every extra image)
        if self._metainfo_blob is None:
            self._metainfo_blob = pickle.dumps({k: self._metainfo[k] for k in _METAINFO_KEYS})
        info.update(pickle.loads(self._metainfo_blob))
        return info

    def _cached_fit_scales(self) -> List[Optional[tuple]]:
        """The distinct image entries per file ``KptLoadImage`` steps of the pipeline (and of
        their mosaic / MixUp ``pre_transform``) would cache: their ``fit_scale``."""
        from .transforms import KptLoadImage
        keys, pending = set(), list(getattr(self.pipeline, 'transforms', []))
        while pending:
            transform = pending.pop()
            if isinstance(transform, KptLoadImage):
                keys.add((transform.fit_scale, transform.reduced_decode))
            pending += getattr(getattr(transform, 'pre_transform', None), 'transforms', [])
        return [scale for scale, _ in keys]

    def _size_auto_cache(self) -> None:
        """Give this process the whole set's decoded images, or no cache
        (``image_cache_mb='auto'``); once per process, with the worker count of the
        DataLoader this process works for."""
        from torch.utils.data import get_worker_info
        worker = get_worker_info()
        num_workers = 1 if worker is None else max(worker.num_workers, 1)
        sizes = [(info['width'], info['height'])
                 for info in map(super().get_data_info, range(len(self)))]
        needed = decoded_bytes(sizes, self._cache_fit_scales)
        available = mem_available_bytes()
        budget = auto_cache_bytes(needed, available, num_workers * self._local_ranks)
        self.image_cache = DecodedImageCache(budget) if budget else None
        self._cache_pid = os.getpid()
        if worker is None or worker.id == 0:
            print_log(f"image_cache_mb='auto': the {len(sizes)} images decoded take "
                      f'{needed / 2**20:.1f} MiB per process, {num_workers} worker(s) x '
                      f'{self._local_ranks} rank(s), {available / 2**30:.1f} GiB available: '
                      'cache '
                      + ('on' if budget else 'off'), logger='current')

    @force_full_init
    def prepare_data(self, idx: int) -> Any:
        """Run the pipeline on sample ``idx``; the dataset rides along for mixing transforms."""
        if self.image_cache_mb == 'auto' and self._cache_pid != os.getpid():
            self._size_auto_cache()
        info = self.get_data_info(idx)
        info['dataset'] = self
        return self.pipeline(info)


@DATASETS.register_module()
class YOLODetDataset(YOLOKptDataset):
    """:class:`YOLOKptDataset` whose data infos also carry MMDetection's ``instances``.

    Each instance has ``bbox`` (xyxy pixels), ``bbox_label`` (0-based) and ``ignore_flag`` 0,
    so ``mmdet.LoadAnnotations`` and the rest of MMDetection's pipeline apply.
    """

    def parse_data_info(self, img: Dict, anns: List[Dict], img_root: Path) -> Dict:
        info = super().parse_data_info(img, anns, img_root)
        info['instances'] = [
            dict(bbox=box.tolist(), bbox_label=int(cat) - 1, ignore_flag=0)
            for box, cat in zip(info['bbox'], info['category_id'])
        ]
        return info
