# mmsimclr modules first, then mmpretrain's, then mmengine's
default_scope = 'mmsimclr'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # CheckpointHook with crash-safe writes (temporary file + rename); same options
    checkpoint=dict(type='AtomicCheckpointHook', interval=10, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
    # NaN/Inf loss or gradients: 'stop' (keep the last good checkpoint) or 'skip' the step
    nan_guard=dict(type='NonFiniteLossHook', action='stop'),
)

env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # nccl on GPUs; tools/train.py switches to gloo when no GPU is visible
    # seconds a collective waits for the other processes before this one stops (a dead or hung rank)
    dist_cfg=dict(backend='nccl', timeout=600),
)

# DDP that also runs on CPU process groups (same as mmengine's on GPUs)
model_wrapper_cfg = dict(type='SimCLRDistributedDataParallel', broadcast_buffers=False,
                         find_unused_parameters=False)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)

log_processor = dict(window_size=10)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=None, deterministic=False)
