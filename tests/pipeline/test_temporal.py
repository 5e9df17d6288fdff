import math

import pytest
import torch

from pipeline.temporal import (
    event_mask,
    frame_centres,
    in_event_mass,
    resample_distribution,
    student_steps_covering,
    to_resolution,
    to_student_steps,
)

SIZES = [(7, 20), (400, 100), (401, 100), (13, 5), (50, 7), (1, 8), (8, 1)]


@pytest.mark.parametrize(("n", "size"), SIZES)
def test_resample_shape_and_unit_mass(n: int, size: int) -> None:
    weights = torch.rand(3, n, generator=torch.Generator().manual_seed(n * 1000 + size)) + 0.01
    out = resample_distribution(weights, size)
    assert out.shape == (3, size)
    assert out.dtype == torch.float32
    assert (out >= 0).all()
    torch.testing.assert_close(out.sum(-1), torch.ones(3), rtol=0, atol=1e-6)


def test_resample_is_exact_identity_when_sizes_match() -> None:
    weights = torch.softmax(torch.randn(4, 33), dim=-1)
    out = resample_distribution(weights, 33)
    assert torch.equal(out, weights)
    assert out.data_ptr() != weights.data_ptr()  # a copy: callers may edit it in place
    w64 = weights.double()
    assert torch.equal(resample_distribution(w64, 33), w64.float())


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_resample_any_float_dtype_returns_float32(dtype: torch.dtype) -> None:
    weights = torch.softmax(torch.randn(2, 50), dim=-1).to(dtype)
    out = resample_distribution(weights, 20)
    assert out.dtype == torch.float32
    ref = resample_distribution(weights.float(), 20)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("n", "size"), [(10, 37), (16, 64), (400, 100), (401, 100), (399, 64)])
def test_resampled_one_hot_peak_stays_in_its_bin(n: int, size: int) -> None:
    # The output bin that contains the input peak's time holds the maximum (either bin when
    # the time falls on a boundary; at the clip's edges linear upsampling clamps, so the
    # maximum can be a plateau over a few bins).
    for k in range(n):
        one_hot = torch.zeros(n)
        one_hot[k] = 1.0
        out = resample_distribution(one_hot, size)
        assert math.isclose(float(out.sum()), 1.0, abs_tol=1e-6)
        position = (k + 0.5) * size / n
        bins = {min(math.floor(position + d), size - 1) for d in (-1e-9, 1e-9)}
        assert max(float(out[b]) for b in bins) >= float(out.max()) - 1e-5, (k, out.argmax())
        # and nothing lies further than one input frame (plus one output bin) away
        times = (torch.arange(size) + 0.5) / size
        assert (times[out > 0] - (k + 0.5) / n).abs().max() < 1 / n + 1 / size


def test_plain_linear_downsampling_would_lose_this_peak() -> None:
    # Why resample_distribution antialiases: point-sampled linear interpolation of
    # 400 -> 100 never samples frame 203, so the peak (and all mass) would vanish.
    one_hot = torch.zeros(1, 1, 400)
    one_hot[..., 203] = 1.0
    plain = torch.nn.functional.interpolate(one_hot, size=100, mode="linear")
    assert float(plain.sum()) == 0.0
    out = resample_distribution(one_hot[0, 0], 100)
    assert int(out.argmax()) == 203 // 4


def test_resample_works_on_batch_layer_rows() -> None:
    weights = torch.softmax(torch.randn(2, 6, 5, 40), dim=-1)  # [B, L, R, n]
    out = resample_distribution(weights, 10)
    assert out.shape == (2, 6, 5, 10)
    torch.testing.assert_close(out[1, 3, 2], resample_distribution(weights[1, 3, 2], 10))
    torch.testing.assert_close(out.sum(-1), torch.ones(2, 6, 5), rtol=0, atol=1e-6)


def test_upsampling_a_uniform_vector_stays_uniform() -> None:
    out = resample_distribution(torch.full((5,), 0.2), 40)
    torch.testing.assert_close(out, torch.full((40,), 1 / 40))


def test_resample_rejects_massless_rows_and_bad_size() -> None:
    with pytest.raises(ValueError, match="no positive mass"):
        resample_distribution(torch.zeros(2, 10), 5)
    with pytest.raises(ValueError, match="size"):
        resample_distribution(torch.ones(10), 0)


def test_frame_centres() -> None:
    torch.testing.assert_close(
        frame_centres(4, 2.0), torch.tensor([0.25, 0.75, 1.25, 1.75], dtype=torch.float64)
    )
    with pytest.raises(ValueError):
        frame_centres(0, 1.0)
    with pytest.raises(ValueError):
        frame_centres(4, 0.0)


def test_event_mask() -> None:
    # 10 bins over 1 s: centres 0.05, 0.15, ..., 0.95
    mask = event_mask(10, 1.0, [(0.2, 0.5), (0.8, 1.0)])
    expected = [False, False, True, True, True, False, False, False, True, True]
    assert mask.tolist() == expected
    assert mask.dtype == torch.bool
    assert not event_mask(10, 1.0, []).any()
    with pytest.raises(ValueError, match="precedes"):
        event_mask(10, 1.0, [(0.5, 0.2)])


def test_in_event_mass_uniform_is_fraction_of_bins_inside() -> None:
    events = [(0.2, 0.5), (0.8, 1.0)]  # 5 of 10 bins
    assert float(in_event_mass(torch.full((10,), 0.1), 1.0, events)) == pytest.approx(0.5)
    # unnormalised weights are measured the same way
    assert float(in_event_mass(torch.full((10,), 7.0), 1.0, events)) == pytest.approx(0.5)
    # a 1 s digit in an 8 s clip at 20 ms frames: chance level is 1/8
    uniform = torch.full((400,), 1 / 400)
    assert float(in_event_mass(uniform, 8.0, [(3.0, 4.0)])) == pytest.approx(50 / 400)


def test_in_event_mass_peaked_inside_is_near_one() -> None:
    weights = torch.full((400,), 1e-6)
    weights[160:190] = 1.0  # 3.2 s - 3.8 s, inside the event
    weights = weights / weights.sum()
    assert float(in_event_mass(weights, 8.0, [(3.0, 4.0)])) > 0.999


def test_in_event_mass_keeps_leading_dims() -> None:
    weights = torch.softmax(torch.randn(2, 3, 20), dim=-1)
    out = in_event_mass(weights, 2.0, [(0.5, 1.0)])
    assert out.shape == (2, 3)
    mask = event_mask(20, 2.0, [(0.5, 1.0)])
    torch.testing.assert_close(out, weights[..., mask].sum(-1))


def test_student_steps_covering_rounds_like_python() -> None:
    durations = [0.01, 0.25, 0.5, 0.625, 0.75, 1.0, 1.5, 2.0]
    steps, padded = 8, 2.0
    expected = [min(steps, max(1, round(steps * d / padded))) for d in durations]
    got = student_steps_covering(torch.tensor(durations, dtype=torch.float64), padded, steps)
    assert got.tolist() == expected == [1, 1, 2, 2, 3, 4, 6, 8]  # 2.5 -> 2: half to even


def test_to_student_steps_equals_one_clip_at_a_time() -> None:
    """The batched call gives, bit for bit, what resampling each clip alone gives, and
    steps that cover padding get no mass."""
    generator = torch.Generator().manual_seed(0)
    vectors = torch.rand(6, 40, generator=generator) + 0.01
    vectors = vectors / vectors.sum(-1, keepdim=True)
    durations = torch.tensor([2.0, 0.5, 2.0, 1.3, 0.05, 0.5], dtype=torch.float64)
    targets = to_student_steps(vectors, durations, 2.0, 25)
    assert targets.shape == (6, 25) and targets.dtype == torch.float32
    for vector, duration, target in zip(vectors, durations.tolist(), targets, strict=True):
        real = min(25, max(1, round(25 * duration / 2.0)))
        assert torch.equal(target[:real], resample_distribution(vector, real))
        assert not target[real:].any()
    torch.testing.assert_close(targets.sum(-1), torch.ones(6))


def test_to_resolution_keeps_each_clips_real_frames_only() -> None:
    generator = torch.Generator().manual_seed(1)
    vectors = torch.rand(3, 2, 30, generator=generator)
    frames = torch.tensor([30, 12, 12])
    binned = to_resolution(vectors, frames, 10)
    for row, n in enumerate(frames.tolist()):
        assert torch.equal(binned[row], resample_distribution(vectors[row, :, :n], 10))
    vectors[1:, :, 12:] = 99.0  # padding frames: never read
    assert torch.equal(to_resolution(vectors, frames, 10), binned)
