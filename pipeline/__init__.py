"""tkd library code: audio and features, manifests, teacher and students, attention,
losses, metrics and the teacher cache. The CLI stages in ``stages/`` compose these."""
