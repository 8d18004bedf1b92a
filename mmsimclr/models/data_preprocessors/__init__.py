from .simclr_data_preprocessor import SimCLRDataPreprocessor, gaussian_blur, shift_hue

__all__ = ['SimCLRDataPreprocessor', 'gaussian_blur', 'shift_hue']
