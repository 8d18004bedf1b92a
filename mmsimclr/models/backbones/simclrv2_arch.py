"""The 13 SimCLRv2 models google-research/simclr publishes, with their published numbers.

Source: google-research/simclr ``README.md`` (master, commit 383d414), section "Pre-trained models for SimCLRv2"
(= Table 1 of Chen et al. 2020, "Big Self-Supervised Models are Strong Semi-Supervised Learners",
arXiv:2006.10029). Checkpoint folders are named ``r{depth}_{width}x_sk{0|1}`` (the README's colabs).

- ``params_m``: the "Param (M)" column, in millions, rounded to integers. It counts the ResNet backbone only
  (no projection head, no classifier): :class:`~mmsimclr.models.backbones.ResNetSK` gives 23.5M for R50 1x, 24
  published; a 1000-way linear classifier would add 2.05M x width and the 3-layer head 8.7M at 1x.
- ``ft_1pct``, ``ft_10pct``, ``ft_100pct``: ImageNet top-1 (%) after fine-tuning on 1% / 10% / 100% of the labels;
  ``linear_eval``: top-1 (%) of a linear classifier on the frozen features; ``supervised``: top-1 (%) of the same
  architecture trained with all labels.

SimCLRv2's hyper-parameters for these models (README and ``run.py`` flags): ``sk_ratio`` 0.0625 when SK, a
3-layer projection head (``num_proj_layers=3``, ``proj_out_dim=128``, hidden width = backbone width), fine-tuning
from its first layer (``ft_proj_selector=1``).
"""
from typing import Dict, List, NamedTuple

SK_RATIO = 0.0625


class SimCLRv2Arch(NamedTuple):
    depth: int
    width: int
    sk: bool
    params_m: float
    ft_1pct: float
    ft_10pct: float
    ft_100pct: float
    linear_eval: float
    supervised: float

    @property
    def name(self) -> str:
        """The checkpoint folder name, e.g. ``r152_3x_sk1``."""
        return f'r{self.depth}_{self.width}x_sk{int(self.sk)}'

    def backbone_cfg(self, **kwargs) -> dict:
        """``ResNetSK`` config of this architecture (``kwargs`` added, e.g. ``out_indices``, ``norm_cfg``)."""
        return dict(type='ResNetSK', depth=self.depth, width_multiplier=self.width,
                    sk_ratio=SK_RATIO if self.sk else 0.0, **kwargs)

    @property
    def feat_dim(self) -> int:
        return 2048 * self.width


# depth, width, sk, Param (M), F-T (1%), F-T (10%), F-T (100%), Linear eval, Supervised -- as in the README
SIMCLRV2_ARCHS: List[SimCLRv2Arch] = [
    SimCLRv2Arch(50, 1, False, 24, 57.9, 68.4, 76.3, 71.7, 76.6),
    SimCLRv2Arch(50, 1, True, 35, 64.5, 72.1, 78.7, 74.6, 78.5),
    SimCLRv2Arch(50, 2, False, 94, 66.3, 73.9, 79.1, 75.6, 77.8),
    SimCLRv2Arch(50, 2, True, 140, 70.6, 77.0, 81.3, 77.7, 79.3),
    SimCLRv2Arch(101, 1, False, 43, 62.1, 71.4, 78.2, 73.6, 78.0),
    SimCLRv2Arch(101, 1, True, 65, 68.3, 75.1, 80.6, 76.3, 79.6),
    SimCLRv2Arch(101, 2, False, 170, 69.1, 75.8, 80.7, 77.0, 78.9),
    SimCLRv2Arch(101, 2, True, 257, 73.2, 78.8, 82.4, 79.0, 80.1),
    SimCLRv2Arch(152, 1, False, 58, 64.0, 73.0, 79.3, 74.5, 78.3),
    SimCLRv2Arch(152, 1, True, 89, 70.0, 76.5, 81.3, 77.2, 79.9),
    SimCLRv2Arch(152, 2, False, 233, 70.2, 76.6, 81.1, 77.4, 79.1),
    SimCLRv2Arch(152, 2, True, 354, 74.2, 79.4, 82.9, 79.4, 80.4),
    SimCLRv2Arch(152, 3, True, 795, 74.9, 80.1, 83.1, 79.8, 80.5),
]

SIMCLRV2_ARCHS_BY_NAME: Dict[str, SimCLRv2Arch] = {a.name: a for a in SIMCLRV2_ARCHS}

__all__ = ['SK_RATIO', 'SimCLRv2Arch', 'SIMCLRV2_ARCHS', 'SIMCLRV2_ARCHS_BY_NAME']
