"""Linear and MLP reward heads as one ensemble module (a leading member dimension, ``baddbmm``)
and the fitted result (``FittedHead``): see the package docstring."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn


class EnsembleMLP(nn.Module):
    """k MLPs ``d → widths… → 1`` (ReLU) with member-leading parameters; none hidden = linear.

    ``forward(x)`` takes ``[k, n, d]`` (each member its own rows) or ``[n, d]`` (the same rows
    for every member) and returns rewards ``[k, n]``. Member j is initialised from
    ``torch.Generator().manual_seed(seeds[j])`` exactly as ``nn.Linear`` would (U(±1/√fan_in)
    for weights and biases), layer by layer, weight before bias, whatever k is.
    """

    def __init__(self, in_dim: int, widths: Sequence[int], seeds: Sequence[int]) -> None:
        super().__init__()
        dims = [int(in_dim), *[int(w) for w in widths], 1]
        k = len(seeds)
        weights, biases = [], []
        for a, b in zip(dims[:-1], dims[1:]):
            weights.append(torch.empty(k, a, b))
            biases.append(torch.empty(k, 1, b))
        for j, s in enumerate(seeds):
            g = torch.Generator().manual_seed(int(s))
            for w, bias in zip(weights, biases):
                bound = 1.0 / float(np.sqrt(w.shape[1]))
                w[j] = (torch.rand(w.shape[1:], generator=g) * 2 - 1) * bound
                bias[j] = (torch.rand(bias.shape[1:], generator=g) * 2 - 1) * bound
        self.weights = nn.ParameterList([nn.Parameter(w) for w in weights])
        self.biases = nn.ParameterList([nn.Parameter(b) for b in biases])
        self.dims = dims

    @classmethod
    def from_parameters(cls, weights: Sequence[Tensor], biases: Sequence[Tensor]) -> EnsembleMLP:
        """A module holding (copies of) the given member-leading parameters, no initialisation."""
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.weights = nn.ParameterList([nn.Parameter(w.detach().clone()) for w in weights])
        new.biases = nn.ParameterList([nn.Parameter(b.detach().clone()) for b in biases])
        new.dims = [int(weights[0].shape[1]), *[int(w.shape[2]) for w in weights]]
        return new

    @property
    def members(self) -> int:
        return self.weights[0].shape[0]

    def hidden(self, x: Tensor) -> Tensor:
        """The representation the output layer reads, ``[k, n, width]`` (the last hidden layer;
        the input itself for a linear head): the head's h for objectives that read features."""
        h = x
        for w, b in list(zip(self.weights, self.biases))[:-1]:
            h = torch.baddbmm(b, h, w) if h.dim() == 3 else torch.matmul(h, w) + b
            h = h.relu_()  # in place: baddbmm's backward does not need its output
        return h if h.dim() == 3 else h.expand(self.members, *h.shape)

    def forward(self, x: Tensor) -> Tensor:
        h = x
        *hidden, (w_out, b_out) = zip(self.weights, self.biases)
        for w, b in hidden:
            h = torch.baddbmm(b, h, w) if h.dim() == 3 else torch.matmul(h, w) + b
            h = h.relu_()  # in place: baddbmm's backward does not need its output
        # The 1-wide output layer as a product and a row sum: a batched matrix-vector product
        # rounds differently for different k, this does not (member j's rewards are the same
        # numbers whether it trains alone or in an ensemble).
        return (h * w_out.transpose(1, 2)).sum(-1) + b_out.squeeze(-1)

    def flops_per_row(self) -> int:
        """Multiply-adds x 2 of one member's forward pass on one input row."""
        return int(sum(2 * a * b for a, b in zip(self.dims[:-1], self.dims[1:])))


# ---------------------------------------------------------------------- fitted head
@dataclass
class FittedHead:
    """A trained ensemble: ``predict(X)`` gives aggregated rewards, ``predict_members(X)`` each
    member's (centred) rewards; ``info`` holds per-member epochs and validation losses."""

    model: EnsembleMLP
    mean: Tensor
    std: Tensor
    offsets: Tensor
    aggregate: str
    info: dict = field(default_factory=dict)

    @torch.no_grad()
    def predict_members(self, X, *, chunk: int = 2048) -> np.ndarray:
        x = as_tensor(X).to(self.mean.dtype)
        outs = []
        for s in range(0, len(x), chunk):
            outs.append(self.model((x[s:s + chunk] - self.mean) / self.std))
        r = torch.cat(outs, dim=1) if outs else torch.zeros(self.model.members, 0)
        return (r - self.offsets[:, None]).numpy().astype(np.float64)

    def predict(self, X) -> np.ndarray:
        r = self.predict_members(X)
        return r.mean(0) if self.aggregate == "mean" else r.min(0)

    def linear_map(self) -> tuple[np.ndarray, np.ndarray]:
        """``(coef [1, d], intercept [1])`` with ``predict(X) == X @ coef.T + intercept`` for a
        one-member linear head (the standardisation and centring folded in): the classifier layer
        of an export (:func:`rewardlab.models.attributes.export_attribute_model`)."""
        if self.model.members != 1 or len(self.model.weights) != 1:
            raise ValueError(f"a linear map needs one linear member, this head has {self.model.members} member(s) "
                             f"and {len(self.model.weights) - 1} hidden layer(s)")
        w = self.model.weights[0].detach()[0, :, 0].double() / self.std.double()
        b = self.model.biases[0].detach()[0, 0, 0].double() - self.offsets[0].double() - (self.mean.double() * w).sum()
        return w.numpy()[None, :], np.array([float(b)])

    def state_dict(self) -> dict[str, Tensor]:
        out = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        out.update({"mean": self.mean, "std": self.std, "offsets": self.offsets})
        return out


def as_tensor(X) -> Tensor:
    if isinstance(X, Tensor):
        return X.detach().to(torch.float32)
    arr = np.ascontiguousarray(X, dtype=np.float32)
    if not arr.flags.writeable:  # e.g. Ray's zero-copy arrays; torch wants writeable memory
        arr = arr.copy()
    return torch.from_numpy(arr)
