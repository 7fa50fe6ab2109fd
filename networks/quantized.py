"""Int8 copies of Q networks, for agents' action selection only.

The learner trains in float32; an agent acts with a statically quantised copy of the weights it pulled (ActorQ:
Krishnan, Lam et al. 2022, "QuaRL", TMLR), made anew for new weight versions (at most 5 % of the agent's time:
agents/policies.py) and calibrated on the agent's last 64 observations. Weights: int8 per output channel;
activations: uint8 per tensor (8 bits on CPUs with VNNI, else 7 as PyTorch's x86 default), fused with their ReLUs.
The head streams' last layers and the dueling or categorical arithmetic stay float32, so values are never clamped
to the calibrated ranges. The evaluator and --test always play the float32 network.

On an x86 CPU the Nature network's forward pass at batch 32 on one thread takes about a third of float32's
time (bench/actor_throughput.py measures what the agents gain). PyTorch marks its eager quantisation API
deprecated; where this torch has no x86 or fbgemm engine, `int8_unsupported` says so and agents act in
float32.
"""
from __future__ import annotations

import copy
import warnings
from collections import deque

import torch
from torch import nn

from networks.noisy import NoisyLinear
from networks.q_network import QNetwork
from networks.torsos import MinAtarTorso, NatureTorso

CALIBRATION_OBS = 64   # observations an int8 copy's activation ranges are taken from


class RecentObservations:
    """The last `size` observations acted on: what an agent calibrates its next int8 copy on, so that one env's
    agent calibrates on its last 64 steps, not on one observation. It keeps the batches it is given (no copy:
    an agent's batches are fresh arrays each step, never written to afterwards) until newer ones hold `size`."""

    def __init__(self, size: int = CALIBRATION_OBS):
        self.size = size
        self.batches: deque = deque()
        self.held = 0   # rows in `batches`

    def add(self, x: torch.Tensor) -> None:
        """Keep the rows of `x` [B, ...]; drop the oldest batches that the newer ones make unneeded."""
        self.batches.append(x)
        self.held += len(x)
        while self.held - len(self.batches[0]) >= self.size:
            self.held -= len(self.batches.popleft())

    def get(self) -> torch.Tensor:
        """The observations kept, [min(seen, size), ...], oldest first."""
        if not self.batches:
            raise ValueError("no observations yet")
        return torch.cat(list(self.batches))[-self.size:]


def int8_engine() -> str | None:
    """The quantised engine this torch offers for x86 CPUs ("x86", else "fbgemm"), or None."""
    try:
        import torch.ao.quantization  # noqa: F401
    except ImportError:
        return None
    engines = torch.backends.quantized.supported_engines
    return next((e for e in ("x86", "fbgemm") if e in engines), None)


def vnni() -> bool:
    """Whether this CPU sums products of 8-bit integers into 32 bits (VNNI). With it, activations use all 8
    bits; without it, the engine's 16-bit sums of pairs could saturate, so they keep 7 (PyTorch's default)."""
    check = getattr(torch.cpu, "_is_vnni_supported", None)
    return bool(check()) if check is not None else False


def int8_unsupported(net: nn.Module) -> str | None:
    """Why `net` has no int8 copy here (one line), or None when it has one."""
    if int8_engine() is None:
        return "this torch build has no x86 or fbgemm quantised engine"
    if not isinstance(net, QNetwork):
        return "only the feed-forward Q networks of DQN, DDQN and Rainbow have one"
    if not isinstance(net.torso, (NatureTorso, MinAtarTorso)):
        return "only the Nature (Atari) and MinAtar torsos have one"
    if any(isinstance(m, nn.GroupNorm) for m in net.modules()):
        return "the GroupNorm network has none"
    if any(isinstance(m, NoisyLinear) for m in net.modules()):
        return "noisy layers draw new weights every step"
    return None


def _seq(*modules: nn.Module) -> nn.Sequential:
    """Copies of `modules` (Sequentials flattened, Identities dropped) as one Sequential."""
    out = []
    for m in modules:
        parts = list(m) if isinstance(m, nn.Sequential) else [m]
        out += [copy.deepcopy(p) for p in parts if not isinstance(p, nn.Identity)]
    return nn.Sequential(*out)


def _fusable(seq: nn.Sequential) -> list[list[str]]:
    """The (conv or linear, ReLU) pairs of `seq`, by name, for fuse_modules."""
    return [[str(i), str(i + 1)] for i in range(len(seq) - 1)
            if isinstance(seq[i], (nn.Conv2d, nn.Linear)) and isinstance(seq[i + 1], nn.ReLU)]


class _FlattenHWC(nn.Module):
    """[B, C, H, W] -> [B, H * W * C], in (h, w, c) order: a view of a channel-last tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1).reshape(len(x), -1)


def _columns_to_hwc(linear: nn.Linear, channels: int, height: int, width: int) -> None:
    """Reorder `linear`'s input columns from (c, h, w) to (h, w, c), for an input flattened by _FlattenHWC."""
    w = linear.weight.data
    linear.weight.data = w.view(len(w), channels, height, width).permute(0, 2, 3, 1).reshape(len(w), -1).contiguous()


class _Int8Q(nn.Module):
    """The float skeleton that torch.ao quantises: quant -> torso -> head streams but their last layers ->
    dequant -> the streams' last layers and the head's `combine`, in float32."""

    def __init__(self, net: QNetwork):
        super().__init__()
        from torch.ao.quantization import DeQuantStub, QuantStub

        t, h = net.torso, net.head
        self.quant = QuantStub()
        names = ["value", "advantage"] if hasattr(h, "advantage") else ["q"]
        streams = [_seq(getattr(h, n)) for n in names]
        if isinstance(t, NatureTorso):
            conv1 = copy.deepcopy(t.convs[0])
            conv1.weight.data.mul_(1.0 / 255.0)   # the float torso's /255, folded into the weights as it does
            self.torso = _seq(conv1, t.convs[1:], t.fc)
            # the last conv's output is channel-last: flattened in (h, w, c) order it is a view, where nn.Flatten's
            # (c, h, w) order copies it (about 2 us per observation); the next linear layer's columns follow
            flat = next(i for i, m in enumerate(self.torso) if isinstance(m, nn.Flatten))
            self.torso[flat] = _FlattenHWC()
            after = self.torso[flat + 1:]
            for first in ([after[0]] if len(after) else [s[0] for s in streams]):
                _columns_to_hwc(first, channels=64, height=7, width=7)
            self.minatar = False
        else:
            self.torso = _seq(t.conv, t.fc)
            self.minatar = True
        # each stream's last layer stays float32 (qconfig None), so the values themselves are never clamped to
        # the ranges seen in calibration: a value beyond them would tie with the others at the clamp
        self.streams = nn.ModuleList(s[:-1] for s in streams)
        self.lasts = nn.ModuleList(s[-1] for s in streams)
        self.dequant = nn.ModuleList(DeQuantStub() for _ in names)
        self.combine = h.combine   # a bound method of the float head: its arithmetic, no weights
        # uint8 frames (0..255 on Atari, 0/1 on MinAtar) are already quint8 values at scale 1 and zero point 0:
        # with 8-bit activations (VNNI) the input is fixed to those parameters and the frames' bytes are wrapped
        # as they are, without a float copy and a quantisation pass (exact: every byte is representable)
        self.raw_input = vnni()
        self.converted = False   # set once quantised (calibration goes through the QuantStub's observer)

    def sequentials(self) -> list[nn.Sequential]:
        return [self.torso, *self.streams]

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.flatten(1, 2) if self.minatar else obs
        if self.raw_input and self.converted and x.dtype == torch.uint8:
            if not x.is_contiguous(memory_format=torch.channels_last):   # channel-last frames stay so (envs/batch.py)
                x = x.contiguous()
            x = torch._make_per_tensor_quantized_tensor(x, 1.0, 0)
        else:
            x = self.quant(x.float())
        f = self.torso(x)
        return self.combine(*(last(dq(s(f))) for s, dq, last in zip(self.streams, self.dequant, self.lasts)))


def int8_copy(net: QNetwork, calibration: torch.Tensor) -> nn.Module:
    """An int8 copy of `net` (see int8_unsupported), its activation ranges taken from the observations
    `calibration` [B, ...]. Called anew for new weight versions."""
    from torch.ao import quantization as tq

    reason = int8_unsupported(net)
    if reason is not None:
        raise ValueError(f"no int8 copy: {reason}")
    torch.backends.quantized.engine = int8_engine()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")   # the deprecation notices of torch.ao.quantization, every call
        m = _Int8Q(net).eval()
        m.qconfig = tq.QConfig(activation=tq.MinMaxObserver.with_args(reduce_range=not vnni()),
                               weight=tq.default_per_channel_weight_observer)
        for last in m.lasts:
            last.qconfig = None
        if m.raw_input:   # the frames' own bytes: scale 1, zero point 0 (see _Int8Q)
            m.quant.qconfig = tq.QConfig(activation=tq.FixedQParamsObserver.with_args(
                scale=1.0, zero_point=0, dtype=torch.quint8, quant_min=0, quant_max=255), weight=m.qconfig.weight)
        for seq in m.sequentials():
            if _fusable(seq):
                tq.fuse_modules(seq, _fusable(seq), inplace=True)
        tq.prepare(m, inplace=True)
        m(calibration.clone())
        tq.convert(m, inplace=True)
        m.converted = True
    return m.requires_grad_(False)
