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
    A group is the units {j, j + d/g, j + 2d/g, ...} rather than g adjacent units: the layer before is learned, so
    any fixed assignment of units to groups is equivalent, and torch's CPU softmax over a strided dim is ~20x
    faster than over a last dim of 8.
    """

    def __init__(self, group_size: int = 8):
        super().__init__()
        self.group_size = group_size

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        x = x.view(*shape[:-1], self.group_size, shape[-1] // self.group_size)
        return F.softmax(x, dim=-2).view(shape)

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


def _softplus_denominator(s: Tensor) -> Tensor:
    """1 + (1 - s)^2 for s = sigmoid(x), so that tanh(softplus(x)) = 2 / (1 + (1 - s)^2) - 1."""
    return torch.rsub(s, 2, alpha=2).addcmul_(s, s)


class _MishFunction(torch.autograd.Function):
    """Mish and its derivative from one sigmoid.

    torch's CPU mish kernels are several times slower than its sigmoid kernel, and Mish follows every hidden
    layer: this version halves the activations' share of an update.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        s = torch.sigmoid(x)
        t = _softplus_denominator(s).reciprocal_().mul_(2).sub_(1)  # tanh(softplus(x))
        ctx.save_for_backward(x, s, t)
        return x * t

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        x, s, t = ctx.saved_tensors
        # d/dx x tanh(softplus(x)) = tanh(softplus(x)) + x sigmoid(x) (1 - tanh(softplus(x))^2)
        return grad * torch.addcmul(t, x * s, t.square().neg_().add_(1))


def mish(x: Tensor) -> Tensor:
    """x * tanh(softplus(x)) (Misra, 2019), the activation TD-MPC2 uses after every hidden LayerNorm."""
    if torch.is_grad_enabled() and x.requires_grad:
        return _MishFunction.apply(x)
    # Planning: five ops and no autograd.Function; at planning batch sizes the op count is the cost.
    s = torch.sigmoid(x)
    return torch.addcdiv(x.neg(), x, _softplus_denominator(s), value=2.0)  # x * (2 / denominator - 1)


class Mish(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return mish(x)


def dropped_positions(n: int, p: float, generator: torch.Generator | None = None) -> Tensor:
    """Indices in [0, n) that dropout with rate p zeroes: each independently with probability p.

    Instead of one uniform draw per element (torch's CPU generator makes that cost more than the Q heads' matmuls
    at p = 0.01), draw the geometric gaps between dropped elements: about n * p draws, same distribution.
    """
    if p <= 0:
        return torch.empty(0, dtype=torch.long)
    log_keep = math.log1p(-p)
    chunk = int(n * p + 6 * math.sqrt(n * p) + 16)  # almost always enough gaps to pass the end in one draw
    found, last = [], -1
    while last < n:
        u = torch.rand(chunk, generator=generator, dtype=torch.float64)
        positions = last + torch.cumsum(torch.floor(torch.log1p(-u) / log_keep).long() + 1, dim=0)
        found.append(positions[positions < n])
        last = int(positions[-1])
    return torch.cat(found)


class MLP(nn.Module):
    """Linear -> LayerNorm -> Mish per hidden layer; the last layer is plain Linear, or Linear -> LayerNorm ->
    `out_act` when the output is itself a normalised latent (encoder and dynamics end in SimNorm).

    The first layer may also read a context vector of size `context_dim` (the task embedding). Its weights are
    those of one Linear over [x, context], but the context's share enters as a bias instead of being concatenated
    to every row: planning evaluates hundreds of rows of one task, and this saves a quarter of the first layer.
    """

    def __init__(
        self, in_dim: int, hidden_dims: list[int], out_dim: int, out_act: nn.Module | None = None, context_dim: int = 0
    ):
        super().__init__()
        dims = [in_dim, *hidden_dims, out_dim]
        self.linears = nn.ModuleList(
            nn.Linear(d_in + (context_dim if i == 0 else 0), d_out)
            for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:]))
        )
        self.norms = nn.ModuleList(nn.LayerNorm(d) for d in hidden_dims)
        self.out_norm = nn.LayerNorm(out_dim) if out_act is not None else None
        self.out_act = out_act
        self.in_dim, self.context_dim = in_dim, context_dim

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """x [..., in_dim]; context [context_dim] for all rows, or [..., context_dim] broadcasting against x."""
        first = self.linears[0]
        if self.context_dim:
            weight = first.weight
            context_bias = F.linear(context, weight[:, self.in_dim :], first.bias)
            if context_bias.dim() == 1:
                h = F.linear(x, weight[:, : self.in_dim], context_bias)
            else:
                h = F.linear(x, weight[:, : self.in_dim]) + context_bias
        else:
            h = first(x)
        for linear, norm in zip(self.linears[1:], self.norms):
            h = linear(mish(norm(h)))
        if self.out_act is not None:
            h = self.out_act(self.out_norm(h))
        return h


def _member_params(
    weight: Tensor, bias: Tensor, members: Tensor | None, detach: bool
) -> tuple[Tensor, Tensor]:
    """An ensemble layer's (weight, bias), of all members or of `members` only; detach=True cuts their gradient."""
    if members is not None:  # index_select: ~4x less overhead than weight[members] for this copy
        weight, bias = weight.index_select(0, members), bias.index_select(0, members)
    if detach:
        weight, bias = weight.detach(), bias.detach()
    return weight, bias


class EnsembleLinear(nn.Module):
    """`num_members` independent linear layers, weights [E, in, out], applied with one batched matmul."""

    def __init__(self, num_members: int, in_dim: int, out_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_members, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(num_members, 1, out_dim))

    def params(self, members: Tensor | None = None, detach: bool = False) -> tuple[Tensor, Tensor]:
        return _member_params(self.weight, self.bias, members, detach)

    def forward(self, x: Tensor, members: Tensor | None = None, detach: bool = False) -> Tensor:
        """x: [N, in] shared by all members, or [E, N, in] one slice per member; returns [E, N, out]."""
        weight, bias = self.params(members, detach)
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
        weight, bias = _member_params(self.weight, self.bias, members, detach)
        return torch.addcmul(bias, F.layer_norm(x, x.shape[-1:]), weight)


class EnsembleMLP(nn.Module):
    """An ensemble of same-shaped MLPs (Linear -> LayerNorm -> Mish, plain Linear last) evaluated together.

    One baddbmm per layer replaces a Python loop over heads; `members` picks a subset of heads (e.g. the two random
    Q heads of a TD target) without computing the others. Like MLP, the first layer reads an optional context as a
    bias. Dropout, if any, follows the first linear layer as in TD-MPC2's Q functions, and draws from the caller's
    generator so runs stay reproducible.
    """

    def __init__(
        self,
        num_members: int,
        in_dim: int,
        hidden_dims: list[int],
        out_dim: int,
        dropout: float = 0.0,
        context_dim: int = 0,
    ):
        super().__init__()
        dims = [in_dim, *hidden_dims, out_dim]
        self.linears = nn.ModuleList(
            EnsembleLinear(num_members, d_in + (context_dim if i == 0 else 0), d_out)
            for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:]))
        )
        self.norms = nn.ModuleList(EnsembleLayerNorm(num_members, d) for d in hidden_dims)
        self.num_members = num_members
        self.dropout = dropout
        self.in_dim, self.context_dim = in_dim, context_dim

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        members: Tensor | None = None,
        detach: bool = False,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """x: [..., in] shared by all members, context as in MLP; returns [E or len(members), ..., out].

        detach=True cuts the gradient to the ensemble's own parameters but keeps it to `x` (the policy loss
        differentiates Q with respect to the action only).
        """
        lead = x.shape[:-1]
        h = x.reshape(-1, x.shape[-1])
        weight, bias = self.linears[0].params(members, detach)
        num = weight.shape[0]
        if self.context_dim:
            if context.dim() == 1:
                rows = context.reshape(1, -1)  # one task for all rows: a [1, out] bias
            else:
                rows = context.expand(*lead, -1).reshape(-1, self.context_dim)
            bias = torch.baddbmm(bias, rows.expand(num, *rows.shape), weight[:, self.in_dim :])
            weight = weight[:, : self.in_dim]
        h = torch.baddbmm(bias, h.expand(num, *h.shape), weight)
        if self.dropout > 0 and self.training:
            # Dropout without the usual 1 / (1 - p) rescale: the LayerNorm right after is scale-invariant. Zeroing
            # in place touches only the ~1% dropped entries (baddbmm's backward does not need its output).
            h.view(-1).index_fill_(0, dropped_positions(h.numel(), self.dropout, generator), 0.0)
        for linear, norm in zip(self.linears[1:], self.norms):
            h = linear(mish(norm(h, members, detach)), members, detach)
        return h.view(num, *lead, h.shape[-1])


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
