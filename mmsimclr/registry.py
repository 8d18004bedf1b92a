"""mmsimclr's registries: children of mmpretrain's, scope ``mmsimclr``.

With ``default_scope = 'mmsimclr'`` a config finds our modules first and falls back to mmpretrain's (and from there
to mmengine's), so ``ResNet``, ``ImageNet``, ``LARS``, ``ImageClassifier`` or ``Accuracy`` stay reachable by name.
``locations`` makes building by name import the modules that register into each registry; the visualizer
registries have none of ours (mmpretrain's ``UniversalVisualizer`` and backends are found through the parents, whose
own ``locations`` import them).
"""
from mmengine.registry import Registry
from mmpretrain import registry as mmpretrain_registry


def _child(name: str, parent: Registry, locations: list) -> Registry:
    return Registry(name, parent=parent, scope='mmsimclr', locations=locations)


RUNNERS = _child('runner', mmpretrain_registry.RUNNERS, ['mmsimclr.engine'])
RUNNER_CONSTRUCTORS = _child('runner constructor', mmpretrain_registry.RUNNER_CONSTRUCTORS, ['mmsimclr.engine'])
LOOPS = _child('loop', mmpretrain_registry.LOOPS, ['mmsimclr.engine'])
HOOKS = _child('hook', mmpretrain_registry.HOOKS, ['mmsimclr.engine'])
LOG_PROCESSORS = _child('log processor', mmpretrain_registry.LOG_PROCESSORS, ['mmsimclr.engine'])
OPTIMIZERS = _child('optimizer', mmpretrain_registry.OPTIMIZERS, ['mmsimclr.engine'])
OPTIM_WRAPPERS = _child('optim_wrapper', mmpretrain_registry.OPTIM_WRAPPERS, ['mmsimclr.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = _child('optimizer wrapper constructor',
                                    mmpretrain_registry.OPTIM_WRAPPER_CONSTRUCTORS, ['mmsimclr.engine'])
PARAM_SCHEDULERS = _child('parameter scheduler', mmpretrain_registry.PARAM_SCHEDULERS, ['mmsimclr.engine'])
MODEL_WRAPPERS = _child('model_wrapper', mmpretrain_registry.MODEL_WRAPPERS, ['mmsimclr.engine'])

DATASETS = _child('dataset', mmpretrain_registry.DATASETS, ['mmsimclr.datasets'])
DATA_SAMPLERS = _child('data sampler', mmpretrain_registry.DATA_SAMPLERS, ['mmsimclr.datasets'])
TRANSFORMS = _child('transform', mmpretrain_registry.TRANSFORMS, ['mmsimclr.datasets'])

MODELS = _child('model', mmpretrain_registry.MODELS, ['mmsimclr.models'])
WEIGHT_INITIALIZERS = _child('weight initializer', mmpretrain_registry.WEIGHT_INITIALIZERS, ['mmsimclr.models'])
BATCH_AUGMENTS = _child('batch augment', mmpretrain_registry.BATCH_AUGMENTS, ['mmsimclr.models'])
TASK_UTILS = _child('task util', mmpretrain_registry.TASK_UTILS, ['mmsimclr.models'])

METRICS = _child('metric', mmpretrain_registry.METRICS, ['mmsimclr.evaluation'])
EVALUATORS = _child('evaluator', mmpretrain_registry.EVALUATORS, ['mmsimclr.evaluation'])

VISUALIZERS = _child('visualizer', mmpretrain_registry.VISUALIZERS, [])
VISBACKENDS = _child('vis_backend', mmpretrain_registry.VISBACKENDS, [])
