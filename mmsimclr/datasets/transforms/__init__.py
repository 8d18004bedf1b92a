from .center_crop_fraction import CenterCropFraction
from .color_distortion import ColorDistortion
from .color_jitter import ColorJitter, adjust_hue
from .load_image_color import LoadImageColor
from .random_gaussian_blur import RandomGaussianBlur
from .random_resized_crop_flip import RandomResizedCropFlip, sample_crop_box

__all__ = ['CenterCropFraction', 'ColorJitter', 'adjust_hue', 'ColorDistortion', 'LoadImageColor', 'RandomGaussianBlur',
           'RandomResizedCropFlip', 'sample_crop_box']
