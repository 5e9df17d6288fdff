"""Stage two: the on-device students, their front ends and data, the distillation losses,
checkpoints, evaluation and export. Reads the teacher only through ``pipeline.cache``."""
