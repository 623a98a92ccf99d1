"""Predictions as plain, JSON-serialisable Python values."""
from typing import Any, Dict, List, Optional

import numpy as np
from mmengine.structures import BaseDataElement

__all__ = ['instances_to_arrays', 'result_to_dict']


def instances_to_arrays(sample: BaseDataElement, score_thr: float = 0.) -> Dict[str, np.ndarray]:
    """The predicted instances of a sample as numpy arrays, those scoring below ``score_thr``
    dropped.

    Args:
        sample (DetDataSample | PoseDataSample): a result of
            :func:`~turtle_plugin.apis.inference`.
        score_thr (float): keep instances with ``score >= score_thr``.

    Returns:
        dict[str, np.ndarray]: ``bboxes`` ``(n, 4)``, ``scores`` ``(n,)``, ``labels`` ``(n,)``
        and, when predicted, ``keypoints`` ``(n, K, 2)`` and ``keypoint_scores`` ``(n, K)``.
    """
    pred = sample.pred_instances
    arrays = {}
    for key in ('bboxes', 'scores', 'labels', 'keypoints', 'keypoint_scores'):
        if key in pred:
            value = getattr(pred, key)
            value = getattr(value, 'tensor', value)  # mmdet box types
            arrays[key] = value.detach().cpu().numpy() if hasattr(value, 'detach') else \
                np.asarray(value)
    keep = arrays['scores'] >= score_thr
    return {key: value[keep] for key, value in arrays.items()}


def result_to_dict(sample: BaseDataElement,
                   metainfo: Optional[dict] = None,
                   score_thr: float = 0.) -> Dict[str, Any]:
    """One image's predictions as a JSON-serialisable dict.

    Args:
        sample (DetDataSample | PoseDataSample): a result of
            :func:`~turtle_plugin.apis.inference` or
            :func:`~turtle_plugin.apis.inference_tiled`.
        metainfo (dict, optional): dataset metainfo (``model.dataset_meta``) for class names
            (``classes``) and keypoint names (``keypoint_id2name``).
        score_thr (float): keep instances with ``score >= score_thr``.

    Returns:
        dict: ``img_path``, ``height``, ``width``, ``keypoint_names`` (keypoint models) and
        ``instances``: per instance ``bbox`` ``[x1, y1, x2, y2]``, ``score``, ``label``,
        ``label_name`` and, for keypoint models, ``keypoints`` ``[[x, y]] * K`` and
        ``keypoint_scores`` ``[s] * K``; original-image pixels.
    """
    metainfo = metainfo or {}
    arrays = instances_to_arrays(sample, score_thr)
    classes = metainfo.get('classes') or ()
    height, width = sample.metainfo['ori_shape'][:2]
    out: Dict[str, Any] = dict(img_path=sample.metainfo.get('img_path'), height=int(height),
                               width=int(width))
    has_kpts = 'keypoints' in arrays
    if has_kpts:
        num_keypoints = arrays['keypoints'].shape[1]
        id2name = metainfo.get('keypoint_id2name') or {}
        out['keypoint_names'] = [id2name.get(i, f'kpt_{i}') for i in range(num_keypoints)]
    instances: List[Dict[str, Any]] = []
    for i in range(len(arrays['scores'])):
        label = int(arrays['labels'][i])
        instance = dict(bbox=[float(v) for v in arrays['bboxes'][i]],
                        score=float(arrays['scores'][i]), label=label,
                        label_name=classes[label] if label < len(classes) else str(label))
        if has_kpts:
            instance['keypoints'] = [[float(x), float(y)] for x, y in arrays['keypoints'][i]]
            instance['keypoint_scores'] = [float(s) for s in arrays['keypoint_scores'][i]]
        instances.append(instance)
    out['instances'] = instances
    return out
