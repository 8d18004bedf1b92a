"""One call that makes mmsimclr usable: registries populated, default scope set, stack fixes installed."""
import datetime
import warnings

from mmengine.registry import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every mmsimclr (and mmpretrain) module so their registries are filled, and install the weights-only
    checkpoint loader. With ``init_default_scope`` the default scope becomes ``mmsimclr``."""
    import mmpretrain.datasets  # noqa: F401
    import mmpretrain.engine  # noqa: F401
    import mmpretrain.evaluation  # noqa: F401
    import mmpretrain.models  # noqa: F401
    import mmpretrain.visualization  # noqa: F401

    import mmsimclr.datasets  # noqa: F401
    import mmsimclr.engine  # noqa: F401
    import mmsimclr.evaluation  # noqa: F401
    import mmsimclr.models  # noqa: F401
    import mmsimclr.visualization  # noqa: F401
    from mmsimclr.utils.checkpoint import register_checkpoint_loader
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
