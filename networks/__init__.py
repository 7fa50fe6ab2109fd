"""nn.Modules only: torsos, heads and the networks composed from them."""
from networks.heads import DuelingHead, QHead
from networks.q_network import QNetwork
from networks.torsos import MLPTorso, NatureTorso

__all__ = ["DuelingHead", "MLPTorso", "NatureTorso", "QHead", "QNetwork"]
