"""``NumClassesCheckHook``: stop before training when the classifier's class count does not match the data.

Image-folder configs cannot know the number of classes in advance; without this check a head with too few outputs
fails deep inside the loss with an index error, and one with too many trains silently with dead outputs.
"""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmsimclr.registry import HOOKS


@HOOKS.register_module()
class NumClassesCheckHook(Hook):
    """Compare ``model.head.num_classes`` with ``len(dataset.metainfo['classes'])`` of the train and val sets."""

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        head_classes = getattr(getattr(model, 'head', None), 'num_classes', None)
        if head_classes is None:
            return
        loaders = [('train', runner.train_dataloader)]
        if getattr(runner, '_val_dataloader', None) is not None and getattr(runner, 'val_loop', None) is not None:
            loaders.append(('val', runner.val_loop.dataloader))
        for split, loader in loaders:
            classes = (getattr(loader.dataset, 'metainfo', None) or {}).get('classes')
            if classes is not None and len(classes) != head_classes:
                raise ValueError(
                    f'The {split} dataset has {len(classes)} classes ({", ".join(list(classes)[:5])}'
                    f'{", ..." if len(classes) > 5 else ""}) but the classifier head has {head_classes} outputs; '
                    f'set --cfg-options model.head.num_classes={len(classes)} '
                    f'model.data_preprocessor.num_classes={len(classes)}')
