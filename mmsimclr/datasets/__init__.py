from .transforms import *  # noqa: F401,F403
from .unlabeled_image_folder import UnlabeledImageFolder

__all__ = ['UnlabeledImageFolder']
