"""SimCLRv2's third step: distillation of a fine-tuned teacher into a student on unlabelled images.

Chen et al. 2020, "Big Self-Supervised Models are Strong Semi-Supervised Learners", Sec. 2.3, Eq. (2): the teacher's
class distribution at temperature ``tau`` is the target of the student's at the same temperature,

    L = - mean_x sum_y P_T(y | x; tau) log P_S(y | x; tau),    P(y | x; tau) = softmax(f(x) / tau)_y,

over unlabelled images only (the paper's default; the labels of the training data are never read). The teacher is
fixed: its weights come from ``teacher_checkpoint``, it gets no gradient and stays in eval mode (BN running
statistics), so ``P_T`` is the fine-tuned model's prediction. Sec. 3.1: tau = 0.1 for self-distillation (student of
the teacher's architecture, without the projection head), 1.0 for big-to-small; the schedule, weight decay and batch
are pretraining's, for 400 epochs. Eq. (2) has no ``tau^2`` factor (Hinton et al.'s, which the authors' distillation
colab multiplies in): ``loss_weight`` can add it; under LARS the loss scale barely matters (the trust ratio
normalises the gradient of every adapted layer).

Not implemented: the paper's variant with a labelled term (Eq. 3), the authors' distillation code not being public.
"""
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from mmengine.runner.checkpoint import load_checkpoint
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.structures import DataSample

from mmsimclr.registry import MODELS


@MODELS.register_module()
class SimCLRv2Distiller(ImageClassifier):
    """An ``ImageClassifier`` (the student: ``backbone``, ``neck``, ``head``; ``predict`` / evaluation are its own)
    trained to match a fixed teacher classifier's softened predictions.

    Args:
        backbone, neck, head, data_preprocessor, init_cfg: the student, as ``ImageClassifier``'s. ``head`` must
            return logits from its ``forward`` (``LinearClsHead`` does).
        teacher (dict): config of the teacher, a classifier whose ``forward(x, mode='tensor')`` returns logits
            (``ImageClassifier``, e.g. the fine-tuning model). Its outputs must have the student's number of classes.
        teacher_checkpoint (str, optional): the teacher's weights, loaded *strictly* by :meth:`init_weights` (a
            fine-tuning run's checkpoint: ``state_dict`` with ``backbone.``, ``neck.``, ``head.`` keys). None: the
            teacher keeps whatever it has (tests, or weights loaded by other means).
        temperature (float): ``tau`` > 0. Defaults to 0.1 (self-distillation).
        loss_weight (float): factor on the loss. Defaults to 1.0.

    Input of ``loss``: ``(N, 3, H, W)`` images (the same batch goes to both models); ``data_samples`` are not read.
    Returns ``{'loss': ..., 'agreement': fraction of images whose student and teacher top-1 classes agree}``.
    """

    def __init__(self,
                 backbone: dict,
                 teacher: dict,
                 neck: Optional[dict] = None,
                 head: Optional[dict] = None,
                 teacher_checkpoint: Optional[str] = None,
                 temperature: float = 0.1,
                 loss_weight: float = 1.0,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        if not isinstance(temperature, (int, float)) or temperature <= 0:
            raise ValueError(f'SimCLRv2Distiller: temperature must be > 0, got {temperature!r}')
        super().__init__(backbone, neck=neck, head=head, data_preprocessor=data_preprocessor, init_cfg=init_cfg,
                         **kwargs)
        if head is None:
            raise ValueError('SimCLRv2Distiller: the student needs a head that gives class logits')
        self.teacher = teacher if isinstance(teacher, torch.nn.Module) else MODELS.build(teacher)
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        self.teacher_checkpoint = teacher_checkpoint
        self.temperature = float(temperature)
        self.loss_weight = float(loss_weight)

    def init_weights(self) -> None:
        """The student's and teacher's ``init_cfg`` as usual, then the teacher's checkpoint (strict: a teacher
        with missing or unexpected weights would silently teach noise)."""
        super().init_weights()
        if self.teacher_checkpoint:
            load_checkpoint(self.teacher, self.teacher_checkpoint, map_location='cpu', strict=True,
                            logger='current')

    def train(self, mode: bool = True) -> 'SimCLRv2Distiller':
        super().train(mode)
        self.teacher.eval()  # always: BN running statistics, no dropout
        return self

    @torch.no_grad()
    def teacher_logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """The fixed teacher's logits ``(N, classes)``."""
        return self.teacher(inputs, mode='tensor')

    def distill_loss(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        """Eq. (2) averaged over the batch: cross-entropy from ``softmax(t / tau)`` to ``softmax(s / tau)``."""
        if student_logits.shape != teacher_logits.shape:
            raise ValueError(f'SimCLRv2Distiller: student logits {tuple(student_logits.shape)} and teacher logits '
                             f'{tuple(teacher_logits.shape)} differ; give both the same number of classes')
        target = F.softmax(teacher_logits.float() / self.temperature, dim=1)
        log_prob = F.log_softmax(student_logits.float() / self.temperature, dim=1)
        return -(target * log_prob).sum(dim=1).mean() * self.loss_weight

    def loss(self, inputs: torch.Tensor, data_samples: Optional[List[DataSample]] = None) -> Dict[str, torch.Tensor]:
        student_logits = self.head(self.extract_feat(inputs))
        teacher_logits = self.teacher_logits(inputs)
        loss = self.distill_loss(student_logits, teacher_logits)
        agreement = (student_logits.detach().argmax(1) == teacher_logits.argmax(1)).float().mean()
        return dict(loss=loss, agreement=agreement)


__all__ = ['SimCLRv2Distiller']
