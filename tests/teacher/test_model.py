import pytest
import torch

from pipeline.data.manifest import LabelSet
from pipeline.errors import CheckpointError, TkdError
from pipeline.teacher.attention import rollout_vectors
from pipeline.teacher.model import Teacher, build_teacher, init_teacher, teacher_fingerprint
from pipeline.temporal import to_resolution

LABELS = LabelSet(("a", "b", "c"))


@pytest.mark.parametrize("preset", ["whisper-tiny", "wav2vec2-tiny"])
def test_presets_give_logits_and_one_map_per_layer(preset):
    model, extractor = build_teacher(preset, LABELS, clip_seconds=1.0)
    teacher = Teacher(model, extractor)
    output = teacher.attend([torch.randn(16000), torch.randn(8000)])
    assert output.logits.shape == (2, 3)
    assert output.maps.shape[:2] == (2, teacher.num_layers)
    assert output.frames[0] == output.maps.shape[-1]
    assert 24 <= output.frames[1] <= 26  # 0.5 s at 50 frames per second
    torch.testing.assert_close(output.maps.sum(-1), torch.ones(output.maps.shape[:-1]))


def test_wav2vec2_record_is_the_same_alone_or_batched_with_a_longer_clip():
    torch.manual_seed(0)
    model, extractor = build_teacher("wav2vec2-tiny", LABELS, clip_seconds=2.0)
    teacher = Teacher(model, extractor)
    short, long = torch.randn(12000), torch.randn(32000)

    def record(waves):
        output = teacher.attend(waves)
        return to_resolution(rollout_vectors(output.maps, output.frames), output.frames, 20)

    # With the padding masked the two records are the same sums in another order: float32
    # rounding only (measured 4e-9..1.2e-8 on 8 seeds, entries ~0.05 i.e. a few ulps).
    # 1e-6 leaves 100x for other BLAS kernels and still sees a padding leak, which moves
    # entries by 1e-5..1.3e-4 here (unmasked batch, same 8 seeds).
    alone = record([short])[0]
    torch.testing.assert_close(alone, record([short, long])[0], atol=1e-6, rtol=0)

    prepare = teacher.prepare

    def leaking(waves):
        inputs, frames = prepare(waves)
        del inputs["attention_mask"]
        return inputs, frames

    teacher.prepare = leaking  # the same check must see a leak of the padding
    assert (alone - record([short, long])[0]).abs().max() > 1e-6


def test_init_round_trips_a_saved_checkpoint_with_a_new_classifier(tmp_path):
    model, extractor = build_teacher("wav2vec2-tiny", LABELS, clip_seconds=1.0)
    model.save_pretrained(tmp_path)
    extractor.save_pretrained(tmp_path)
    new_labels = LabelSet(("x", "y", "z", "w", "v"))
    loaded, loaded_extractor = init_teacher(tmp_path, new_labels)
    assert loaded.config.num_labels == 5
    assert loaded.config.id2label[4] == "v"
    encoder = "wav2vec2.encoder.layers.0.attention.q_proj.weight"
    torch.testing.assert_close(loaded.state_dict()[encoder], model.state_dict()[encoder])
    assert loaded_extractor.do_normalize  # the checkpoint's own input processing came along


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no config.json"):
        init_teacher(tmp_path, LABELS)
    with pytest.raises(TkdError, match="neither a preset"):
        build_teacher("no-such-preset", LABELS, 1.0)


def test_fingerprint_follows_the_weights(tmp_path):
    model, extractor = build_teacher("whisper-tiny", LABELS, clip_seconds=1.0)
    model.save_pretrained(tmp_path)
    extractor.save_pretrained(tmp_path)
    before = teacher_fingerprint(tmp_path)
    assert teacher_fingerprint(tmp_path) == before
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    model.save_pretrained(tmp_path)
    assert teacher_fingerprint(tmp_path) != before
