"""Small building blocks of the world model: SimNorm, symlog and two-hot coding of scalars, MLPs, and a batched
ensemble MLP that runs every Q head in one matmul. After Hansen et al., "TD-MPC2: Scalable, Robust World Models for
Continuous Control", ICLR 2024."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SimNorm(nn.Module):
    """Softmax over groups of `group_size` latent units (TD-MPC2, Sec. 3.2).

    Each group lies on a simplex, which bounds the latent and keeps multi-step rollouts from drifting off scale.
    """

    def __init__(self, group_size: int = 8):
        super().__init__()
        self.group_size = group_size

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        x = x.view(*shape[:-1], shape[-1] // self.group_size, self.group_size)
        return F.softmax(x, dim=-1).view(shape)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}"


def symlog(x: Tensor) -> Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: Tensor) -> Tensor:
    return torch.sign(x) * torch.expm1(x.abs())


def two_hot(x: Tensor, num_bins: int, vmin: float = -10.0, vmax: float = 10.0) -> Tensor:
    """Encode scalars `x` [...] as two-hot vectors [..., num_bins] over bins evenly spaced in symlog space.

    Rewards and values vary by orders of magnitude across tasks; classifying over symlog bins keeps one loss scale
    for all of them (TD-MPC2, Sec. 3.3).
    """
    bin_size = (vmax - vmin) / (num_bins - 1)
    pos = (symlog(x).clamp(vmin, vmax) - vmin) / bin_size  # in [0, num_bins - 1]
    # Clamping the lower bin to num_bins-2 keeps the upper neighbour in range; at x == vmax all mass goes up.
    lower = pos.floor().clamp(max=num_bins - 2)
    upper_weight = (pos - lower).unsqueeze(-1)
    lower = lower.long().unsqueeze(-1)
    out = torch.zeros(*x.shape, num_bins, dtype=x.dtype, device=x.device)
    out.scatter_(-1, lower, 1.0 - upper_weight)
    out.scatter_(-1, lower + 1, upper_weight)
    return out


def two_hot_inv(logits: Tensor, vmin: float = -10.0, vmax: float = 10.0) -> Tensor:
    """Decode logits [..., num_bins] to scalars [...]: expectation over the bins, mapped back with symexp."""
    bins = torch.linspace(vmin, vmax, logits.shape[-1], dtype=logits.dtype, device=logits.device)
    return symexp(F.softmax(logits, dim=-1) @ bins)


def soft_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy of logits [..., K] against a distribution [..., K]; returns [...]."""
    return -(target * F.log_softmax(logits, dim=-1)).sum(-1)


class _MishFunction(torch.autograd.Function):
    """Mish, x * tanh(softplus(x)), computed through one sigmoid.

    tanh(softplus(x)) = (1 - u^2) / (1 + u^2) with u = sigmoid(-x). torch's CPU mish kernel is several times slower
    than its sigmoid kernel, and Mish follows every hidden layer, so this halves the activations' share of an update.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        u2 = torch.sigmoid(-x).square_()
        return x * (1 - u2).div_(u2.add_(1))

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return torch.ops.aten.mish_backward(grad, x)


def mish(x: Tensor) -> Tensor:
    return _MishFunction.apply(x)


class Mish(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return mish(x)


def dropout_mask(shape: torch.Size, p: float, generator: torch.Generator | None = None) -> Tensor:
    """Inverted-dropout multiplier of `shape`: 0 with probability p, else 1 / (1 - p), independently per element.

    Instead of one uniform draw per element (torch's CPU generator makes that cost more than the Q heads' matmuls
    at p = 0.01), draw the geometric gaps between dropped elements: about n * p draws, same distribution.
    """
    n = math.prod(shape)
    mask = torch.full((n,), 1.0 / (1.0 - p))
    if p <= 0:
        return mask.view(shape)
    log_keep = math.log1p(-p)
    chunk = int(n * p + 6 * math.sqrt(n * p) + 16)  # almost always enough gaps to pass the end in one draw
    last = -1
    while True:
        u = torch.rand(chunk, generator=generator, dtype=torch.float64)
        positions = last + torch.cumsum(torch.floor(torch.log1p(-u) / log_keep).long() + 1, dim=0)
        mask[positions[positions < n]] = 0.0
        last = int(positions[-1])
        if last >= n:
            return mask.view(shape)


def mlp(in_dim: int, hidden_dims: list[int], out_dim: int, out_act: nn.Module | None = None) -> nn.Sequential:
    """Linear -> LayerNorm -> Mish per hidden layer; the last layer is plain Linear, or Linear -> LayerNorm ->
    `out_act` when the output itself is a normalised latent (encoder and dynamics end in SimNorm)."""
    layers: list[nn.Module] = []
    dims = [in_dim, *hidden_dims]
    for d_in, d_out in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(d_in, d_out), nn.LayerNorm(d_out), Mish()]
    layers.append(nn.Linear(dims[-1], out_dim))
    if out_act is not None:
        layers += [nn.LayerNorm(out_dim), out_act]
    return nn.Sequential(*layers)


class EnsembleLinear(nn.Module):
    """`num_members` independent linear layers, weights [E, in, out], applied with one batched matmul."""

    def __init__(self, num_members: int, in_dim: int, out_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_members, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(num_members, 1, out_dim))

    def forward(self, x: Tensor, members: Tensor | None = None, detach: bool = False) -> Tensor:
        """x: [N, in] shared by all members, or [E, N, in] one slice per member; returns [E, N, out]."""
        weight, bias = self.weight, self.bias
        if members is not None:
            weight, bias = weight[members], bias[members]
        if detach:
            weight, bias = weight.detach(), bias.detach()
        if x.dim() == 2:
            x = x.expand(weight.shape[0], *x.shape)
        return torch.baddbmm(bias, x, weight)

    def extra_repr(self) -> str:
        e, i, o = self.weight.shape
        return f"num_members={e}, in_dim={i}, out_dim={o}"


class EnsembleLayerNorm(nn.Module):
    """LayerNorm with a separate gain and bias per ensemble member; input [E, N, dim]."""

    def __init__(self, num_members: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_members, 1, dim))
        self.bias = nn.Parameter(torch.empty(num_members, 1, dim))

    def forward(self, x: Tensor, members: Tensor | None = None, detach: bool = False) -> Tensor:
        weight, bias = self.weight, self.bias
        if members is not None:
            weight, bias = weight[members], bias[members]
        if detach:
            weight, bias = weight.detach(), bias.detach()
        return torch.addcmul(bias, F.layer_norm(x, x.shape[-1:]), weight)


class EnsembleMLP(nn.Module):
    """An ensemble of same-shaped MLPs (Linear -> LayerNorm -> Mish, plain Linear last) evaluated together.

    One baddbmm per layer replaces a Python loop over heads; `members` picks a subset of heads (e.g. the two random
    Q heads of a TD target) without computing the others. Dropout, if any, follows the first linear layer as in
    TD-MPC2's Q functions, and draws from the caller's generator so runs stay reproducible.
    """

    def __init__(self, num_members: int, in_dim: int, hidden_dims: list[int], out_dim: int, dropout: float = 0.0):
        super().__init__()
        dims = [in_dim, *hidden_dims, out_dim]
        self.linears = nn.ModuleList(EnsembleLinear(num_members, a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.norms = nn.ModuleList(EnsembleLayerNorm(num_members, d) for d in hidden_dims)
        self.num_members = num_members
        self.dropout = dropout

    def forward(
        self,
        x: Tensor,
        members: Tensor | None = None,
        detach: bool = False,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """x: [..., in] shared by all members; returns [E or len(members), ..., out].

        detach=True cuts the gradient to the ensemble's own parameters but keeps it to `x` (the policy loss
        differentiates Q with respect to the action only).
        """
        lead = x.shape[:-1]
        h = x.reshape(-1, x.shape[-1])
        for i, linear in enumerate(self.linears):
            h = linear(h, members, detach)
            if i == len(self.norms):
                break
            if i == 0 and self.dropout > 0 and self.training:
                h = h * dropout_mask(h.shape, self.dropout, generator)
            h = mish(self.norms[i](h, members, detach))
        return h.view(h.shape[0], *lead, h.shape[-1])


@torch.no_grad()
def init_parameters(module: nn.Module, generator: torch.Generator | None) -> None:
    """Initialise every parameter from `generator`: truncated-normal weights (std 0.02, as TD-MPC2), zero biases,
    unit LayerNorm gains; task embeddings uniform in +-0.02. Replaces torch's defaults, which draw from the global
    RNG."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02, generator=generator)
            nn.init.zeros_(m.bias)
        elif isinstance(m, EnsembleLinear):
            nn.init.trunc_normal_(m.weight, std=0.02, generator=generator)
            nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.LayerNorm, EnsembleLayerNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.uniform_(m.weight, -0.02, 0.02, generator=generator)
