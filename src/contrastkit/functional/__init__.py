"""Pure tensor functions: every objective and every negative weighting/mixing.

Nothing here holds state; each function documents its shapes. ``contrastkit.losses`` wraps
them in modules that add configuration, queues and cross-rank gathering.
"""

from contrastkit.functional._validation import set_finite_checks
from contrastkit.functional.contrastive import info_nce, nt_xent, reduce_rows, unit_rows
from contrastkit.functional.crossclr import crossclr
from contrastkit.functional.distributed import all_gather_no_grad, all_gather_with_grad
from contrastkit.functional.mixing import mix_hard_negatives, mochi_info_nce
from contrastkit.functional.model_contrastive import model_contrastive
from contrastkit.functional.mutual_information import jsd_mutual_information, local_global_loss, mi_loss
from contrastkit.functional.restoration import contrastive_regularization

__all__ = [
    "all_gather_no_grad",
    "all_gather_with_grad",
    "contrastive_regularization",
    "crossclr",
    "info_nce",
    "jsd_mutual_information",
    "local_global_loss",
    "mi_loss",
    "mix_hard_negatives",
    "mochi_info_nce",
    "model_contrastive",
    "nt_xent",
    "reduce_rows",
    "set_finite_checks",
    "unit_rows",
]
