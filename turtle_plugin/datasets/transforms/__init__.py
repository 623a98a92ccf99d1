from .filter_annotations import KptFilterAnnotations
from .formatting import KptToDetAnnotations
from .geometric_transforms import KptLetterResize, KptRandomAffine, KptRandomFlip
from .loading import KptLoadImage
from .mix_img_transforms import KptMixUp, KptMosaic, KptMosaic9
from .photometric_transforms import KptHSVRandomAug

__all__ = [
    'KptFilterAnnotations', 'KptToDetAnnotations', 'KptLetterResize', 'KptRandomAffine',
    'KptRandomFlip', 'KptLoadImage', 'KptMixUp', 'KptMosaic', 'KptMosaic9', 'KptHSVRandomAug'
]
