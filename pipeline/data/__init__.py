"""Stage zero: audio I/O, the manifest format every dataset is written in, the dataset
preparers (``recipes``) and re-mixing of generated clips."""
