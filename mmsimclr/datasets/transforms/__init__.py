from .color_jitter import ColorJitter, adjust_hue

__all__ = ['ColorJitter', 'adjust_hue']
