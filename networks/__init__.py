"""nn.Modules only: torsos, heads and the networks composed from them."""
from networks.heads import DuelingHead, QHead
from networks.q_network import QNetwork
from networks.torsos import MinAtarTorso, MLPTorso, NatureTorso, make_torso

__all__ = ["DuelingHead", "MLPTorso", "MinAtarTorso", "NatureTorso", "QHead", "QNetwork", "make_torso"]
