from .atomic_checkpoint_hook import AtomicCheckpointHook
from .knn_monitor_hook import KNNMonitorHook
from .label_free_monitor_hook import LabelFreeMonitorHook
from .nonfinite_loss_hook import NonFiniteLossError, NonFiniteLossHook
from .num_classes_check_hook import NumClassesCheckHook
from .time_budget_hook import TimeBudgetHook

__all__ = ['AtomicCheckpointHook', 'KNNMonitorHook', 'LabelFreeMonitorHook', 'NonFiniteLossError', 'NonFiniteLossHook', 'NumClassesCheckHook',
           'TimeBudgetHook']
