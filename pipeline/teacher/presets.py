"""From-scratch teacher architectures by name (``--config NAME``): ``family`` plus the
Hugging Face config fields. Plain data, kept apart from ``model`` so that the CLI can list the
names without importing ``transformers``."""

from __future__ import annotations

_WAV2VEC2_TINY_CONV = dict(
    conv_dim=(16,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2)
)
PRESETS: dict[str, dict] = {
    "xlsr-300m": dict(
        family="wav2vec2",
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        do_stable_layer_norm=True,
        feat_extract_norm="layer",
        conv_bias=True,
    ),
    "wav2vec2-tiny": dict(
        family="wav2vec2",
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        do_stable_layer_norm=True,
        feat_extract_norm="layer",
        conv_bias=True,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        **_WAV2VEC2_TINY_CONV,
    ),
    "whisper-6l": dict(
        family="whisper",
        d_model=384,
        encoder_layers=6,
        encoder_attention_heads=6,
        encoder_ffn_dim=1536,
        num_mel_bins=80,
    ),
    "whisper-tiny": dict(
        family="whisper",
        d_model=64,
        encoder_layers=2,
        encoder_attention_heads=2,
        encoder_ffn_dim=128,
        num_mel_bins=40,
    ),
}
