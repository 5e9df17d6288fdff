import torch

from pipeline.teacher.attention import (
    maps_to_resolution,
    received_attention,
    restrict_to_frames,
    rollout_vectors,
)
from pipeline.temporal import to_resolution


def _row_stochastic(*shape: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    maps = torch.rand(*shape, generator=generator)
    return maps / maps.sum(-1, keepdim=True)


def test_rollout_matches_hand_computed_product_on_three_frames():
    a1 = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])
    a2 = torch.tensor([[0.2, 0.2, 0.6], [0.7, 0.2, 0.1], [0.3, 0.3, 0.4]])
    eye = torch.eye(3)
    bar1, bar2 = 0.5 * a1 + 0.5 * eye, 0.5 * a2 + 0.5 * eye  # rows already sum to 1
    r1, r2 = bar1, bar2 @ bar1
    maps = torch.stack([a1, a2])[None]
    frames = torch.tensor([3])

    mean_rows = rollout_vectors(maps, frames, "mean-row")[0]
    torch.testing.assert_close(mean_rows[0], r1.mean(0))
    torch.testing.assert_close(mean_rows[1], r2.mean(0))
    first_row = rollout_vectors(maps, frames, "first-row")[0]
    torch.testing.assert_close(first_row[1], r2[0])
    # By hand: row 0 of Ā_2 is [0.6, 0.1, 0.3]; times Ā_1's rows.
    expected = torch.tensor([0.505, 0.18, 0.315])
    torch.testing.assert_close(first_row[1], expected)


def test_every_vector_is_a_distribution():
    maps = _row_stochastic(2, 4, 7, 7)
    frames = torch.tensor([7, 5])
    for vectors in (rollout_vectors(maps, frames), received_attention(maps, frames)):
        torch.testing.assert_close(vectors.sum(-1), torch.ones(2, 4))
        assert (vectors >= 0).all()


def test_padding_never_gets_mass_and_record_is_batch_invariant():
    long = _row_stochastic(1, 3, 9, 9, seed=1)
    short = _row_stochastic(1, 3, 6, 6, seed=2)
    padded = torch.zeros(1, 3, 9, 9)
    padded[..., :6, :6] = short[0]
    padded[..., :6, 6:] = 0.3  # attention to padding that a model without a mask would give
    batch = torch.cat([long, padded])
    frames = torch.tensor([9, 6])

    for reduce in (rollout_vectors, received_attention):
        together = reduce(batch, frames)
        alone = reduce(short, torch.tensor([6]))
        assert together[1, :, 6:].abs().max() == 0
        torch.testing.assert_close(together[1, :, :6], alone[0])
        torch.testing.assert_close(
            to_resolution(together, frames, 10)[1], to_resolution(alone, torch.tensor([6]), 10)[0]
        )


def test_restrict_renormalises_real_rows():
    maps = torch.full((1, 1, 4, 4), 0.25)
    restricted = restrict_to_frames(maps, torch.tensor([2]))
    torch.testing.assert_close(restricted[0, 0, :2, :2], torch.full((2, 2), 0.5))
    assert restricted[0, 0, 2:].abs().max() == 0


def test_maps_to_resolution_rows_sum_to_one():
    maps = _row_stochastic(2, 2, 12, 12)
    resized = maps_to_resolution(maps, torch.tensor([12, 8]), 5)
    assert resized.shape == (2, 2, 5, 5)
    torch.testing.assert_close(resized.sum(-1), torch.ones(2, 2, 5))
