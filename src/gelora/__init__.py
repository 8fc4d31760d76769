"""gelora: Geometric Low-Rank Adaptation (Ed-dib et al., arXiv 2412.09250).

LoRA ranks chosen per block from the intrinsic dimension of the hidden states entering and
leaving it.
"""

from gelora.geometry.mle import MLE
from gelora.geometry.twonn import TwoNN
from gelora.lora.layer import LoRALinear
from gelora.ranks.plan import RankPlan

__all__ = ["MLE", "LoRALinear", "RankPlan", "TwoNN"]
__version__ = "0.1.0"
