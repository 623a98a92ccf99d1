"""turtle_plugin: YOLOv7-family detectors with a keypoint branch for MMDetection and MMPose.

Importing the package (configs do it with ``custom_imports``) registers its modules into the
MMDetection and MMPose registries and lets MMEngine checkpoints load on torch>=2.6.
"""
import mmcv
import mmdet
import mmengine
import mmpose
from mmengine.utils import digit_version

from .version import __version__

MMENGINE_RANGE = ('0.10.0', '1.0.0')
MMCV_RANGE = ('2.0.0', '2.2.0')
MMDET_RANGE = ('3.0.0', '3.4.0')
MMPOSE_RANGE = ('1.1.0', '1.4.0')


def _check_version(name: str, version: str, version_range: tuple) -> None:
    low, high = version_range
    assert digit_version(low) <= digit_version(version) < digit_version(high), (
        f'turtle_plugin {__version__} needs {low} <= {name} < {high}, but {name} {version} is '
        f'installed. Run `bash tools/setup_env.sh` to install the pinned stack, or '
        f'`pip install "{name}>={low},<{high}"`.')


_check_version('mmengine', mmengine.__version__, MMENGINE_RANGE)
_check_version('mmcv', mmcv.__version__, MMCV_RANGE)
_check_version('mmdet', mmdet.__version__, MMDET_RANGE)
_check_version('mmpose', mmpose.__version__, MMPOSE_RANGE)

from . import apis, datasets, engine, evaluation, models  # noqa: E402
from .engine import allow_mmengine_checkpoint_types  # noqa: E402

# MMEngine 0.10.7 calls plain ``torch.load`` on checkpoints, which torch>=2.6 restricts to
# allow-listed types. Extend that allow-list with the few MMEngine / numpy types MMEngine's
# own checkpoints hold, once, when the plugin is imported; arbitrary pickles stay refused.
allow_mmengine_checkpoint_types()

__all__ = ['__version__', 'apis', 'datasets', 'engine', 'evaluation', 'models']
