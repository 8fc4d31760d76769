"""The geometry of hidden states: sampling them and estimating their intrinsic dimension."""

from gelora.geometry.hidden_states import collect_hidden_states
from gelora.geometry.id_profile import IDProfile, LayerID, estimate_id_profile
from gelora.geometry.mle import MLE
from gelora.geometry.twonn import TwoNN

__all__ = ["MLE", "IDProfile", "LayerID", "TwoNN", "collect_hidden_states", "estimate_id_profile"]
