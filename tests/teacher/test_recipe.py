from pipeline.teacher.recipe import FROM_SCRATCH, PRETRAINED, teacher_recipe
from stages.finetune_teacher import TeacherTrainingOptions


def test_pretrained_weights_get_the_gentle_recipe_and_explicit_values_win():
    assert teacher_recipe(pretrained=True) is PRETRAINED
    assert teacher_recipe(pretrained=False) is FROM_SCRATCH
    filled = PRETRAINED.fill(TeacherTrainingOptions())
    assert (filled.epochs, filled.lr) == (3, 1e-4)
    mine = PRETRAINED.fill(TeacherTrainingOptions(epochs=7, lr=5e-5))
    assert (mine.epochs, mine.lr) == (7, 5e-5)
    scratch = FROM_SCRATCH.fill(TeacherTrainingOptions())
    assert (scratch.epochs, scratch.lr) == (20, 3e-4)


def test_the_recipe_says_what_it_does():
    line = PRETRAINED.describe(PRETRAINED.fill(TeacherTrainingOptions(steps=40)))
    assert line == (
        "recipe: pretrained (lr 0.0001, 40 steps, warm-up over the first 30% of steps, "
        "all weights trained)"
    )
