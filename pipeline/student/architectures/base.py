"""The contract every student honours, so training, distillation and export code can
treat the six architectures alike."""

from torch import nn


class StudentModel(nn.Module):
    """Base class: features [batch, frames, feature_dim] -> logits [batch, num_classes].

    ``forward`` is the deployable graph and nothing else. What distillation needs is read
    from the submodule named by ``temporal_module`` with a forward hook:

    - attention students (``has_attention``): the module's output is the model's own
      softmax-over-time weights, [batch, heads, T'] (heads = 1 for Att-RNN);
    - the others: the module's output is the context sequence [batch, T', context_dim]
      that an auxiliary attention head reads during training.

    In both cases that output is a single tensor (recurrent layers are wrapped so that
    their (output, state) tuple never reaches a hook).
    """

    # Evaluated (no ``from __future__ import annotations`` here): TorchScript reads these
    # class annotations when it types the instance attributes.
    has_attention: bool = False
    temporal_module: str
    context_dim: int

    def time_steps(self, num_frames: int) -> int:
        """Length T' of the temporal sequence for an input of ``num_frames`` frames."""
        raise NotImplementedError
