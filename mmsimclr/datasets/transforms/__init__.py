from .center_crop_fraction import CenterCropFraction
from .color_distortion import ColorDistortion, adjust_hue
from .load_image_color import LoadImageColor
from .random_gaussian_blur import RandomGaussianBlur
from .random_resized_crop_flip import RandomResizedCropFlip, sample_crop_box

__all__ = ['CenterCropFraction', 'adjust_hue', 'ColorDistortion', 'LoadImageColor', 'RandomGaussianBlur',
           'RandomResizedCropFlip', 'sample_crop_box']
