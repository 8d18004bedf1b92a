"""One call that makes mmsimclr usable: registries populated, default scope set, stack fixes installed."""
import datetime
import importlib
import warnings

from mmengine.registry import DefaultScope

from .checkpoint import register_checkpoint_loader

#: The modules whose import registers mmpretrain's and mmsimclr's classes.
_REGISTERING_MODULES = ('mmpretrain.datasets', 'mmpretrain.engine', 'mmpretrain.evaluation', 'mmpretrain.models',
                        'mmpretrain.visualization', 'mmsimclr.datasets', 'mmsimclr.engine', 'mmsimclr.evaluation',
                        'mmsimclr.models')


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every mmsimclr (and mmpretrain) module so their registries are filled, and install the weights-only
    checkpoint loader. With ``init_default_scope`` the default scope becomes ``mmsimclr``."""
    # importing these modules fills the registries; named here, not imported at the top, because utils sits
    # below every one of them (the import graph stays acyclic)
    for module in _REGISTERING_MODULES:
        importlib.import_module(module)
    register_checkpoint_loader()

    if not init_default_scope:
        return
    current = DefaultScope.get_current_instance()
    if current is None:
        DefaultScope.get_instance('mmsimclr', scope_name='mmsimclr')
    elif current.scope_name != 'mmsimclr':
        warnings.warn(f'The current default scope "{current.scope_name}" is not "mmsimclr"; a new one named '
                      '"mmsimclr-<time>" is created so that mmsimclr modules are found first.')
        name = f'mmsimclr-{datetime.datetime.now()}'
        DefaultScope.get_instance(name, scope_name='mmsimclr')
