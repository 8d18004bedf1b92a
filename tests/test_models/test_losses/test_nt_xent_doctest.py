"""The usage example in NTXentLoss's docstring runs and prints what it shows."""
import doctest

import mmsimclr.models.losses.nt_xent_loss as nt_xent_loss


def test_docstring_examples_run():
    result = doctest.testmod(nt_xent_loss, optionflags=doctest.ELLIPSIS, raise_on_error=False)
    assert result.attempted >= 8
    assert result.failed == 0
