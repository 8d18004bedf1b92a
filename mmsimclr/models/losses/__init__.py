from .nt_xent_loss import NTXentLoss

__all__ = ['NTXentLoss']
