from .atomic_checkpoint_hook import AtomicCheckpointHook
from .knn_monitor_hook import KNNMonitorHook
from .nonfinite_loss_hook import NonFiniteLossError, NonFiniteLossHook
from .num_classes_check_hook import NumClassesCheckHook
from .time_budget_hook import TimeBudgetHook

__all__ = ['AtomicCheckpointHook', 'KNNMonitorHook', 'NonFiniteLossError', 'NonFiniteLossHook', 'NumClassesCheckHook',
           'TimeBudgetHook']
