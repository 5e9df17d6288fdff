"""Fine-tuning recipes: a pretrained encoder wants a gentler schedule than a fresh one.

A pretrained Whisper encoder fine-tuned at the from-scratch learning rate forgets what it
knew; at 1e-4 for 3 epochs it reaches 94.8 % on noisy digits (issue 12). Both recipes use
the one-cycle schedule, whose first 30 % of steps warm the learning rate up, and train
every weight (the encoder is not frozen). Explicit ``epochs`` / ``lr`` override a recipe.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

WARMUP_FRACTION = 0.3  # OneCycleLR's default pct_start, used by finetune-teacher


@dataclass(frozen=True)
class TeacherRecipe:
    name: str
    epochs: int
    lr: float

    def fill(self, options):
        """``options`` with the recipe's values wherever the user gave none."""
        return replace(
            options,
            epochs=self.epochs if options.epochs is None else options.epochs,
            lr=self.lr if options.lr is None else options.lr,
        )

    def describe(self, options) -> str:
        steps = f"{options.steps} steps" if options.steps else f"{options.epochs} epochs"
        return (
            f"recipe: {self.name} (lr {options.lr:g}, {steps}, warm-up over the first "
            f"{WARMUP_FRACTION:.0%} of steps, all weights trained)"
        )


FROM_SCRATCH = TeacherRecipe("from-scratch", epochs=20, lr=3e-4)
PRETRAINED = TeacherRecipe("pretrained", epochs=3, lr=1e-4)


def teacher_recipe(pretrained: bool) -> TeacherRecipe:
    return PRETRAINED if pretrained else FROM_SCRATCH
