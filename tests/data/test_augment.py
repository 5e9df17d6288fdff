"""Views: drawn from (seed, clip id, view) alone, replayed bit for bit, events followed."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
import torch

from pipeline.data.audio import cached_audio, load_audio
from pipeline.data.augment import (
    SPEED_RATES,
    NoiseDraw,
    NoiseRegion,
    PartnerDraw,
    ViewParams,
    ViewSettings,
    apply,
    change_speed,
    draw_view,
    map_event,
    map_events,
    remix,
)
from pipeline.data.manifest import Clip
from pipeline.data.recipes.noisy_digits import prepare_noisy_digits
from tests.data.recipes.fixtures import make_fsdd, make_noise

RATE = 16_000
ALL = ViewSettings(augment=("speed", "shift", "gain", "mix"))
PARTNERS = ("b", "c", "d")


def clip(clip_id: str = "a", events=((0.8, 1.1),), duration: float = 2.0) -> Clip:
    return Clip(clip_id, f"{clip_id}.wav", ("x",), "train", duration, events=tuple(events))


def noise_wave(seed: int = 0, seconds: float = 2.0) -> torch.Tensor:
    return 0.1 * torch.randn(int(seconds * RATE), generator=torch.Generator().manual_seed(seed))


def impulse(at: int, samples: int = 2 * RATE) -> torch.Tensor:
    wave = torch.zeros(samples)
    wave[at] = 1.0
    return wave


def test_view_zero_is_the_clip_as_it_is() -> None:
    params = draw_view(clip(), 0, seed=3, settings=ALL, partners=PARTNERS)
    assert params.is_identity
    wave = noise_wave()
    assert torch.equal(apply(wave, RATE, params), wave)


def test_same_inputs_give_bit_equal_views() -> None:
    wave, partner = noise_wave(0), noise_wave(1)
    for view in range(1, 5):
        first = draw_view(clip(), view, 7, ALL, partners=PARTNERS)
        again = draw_view(clip(), view, 7, ALL, partners=reversed(PARTNERS))  # order-free
        assert first == again and not first.is_identity
        out = apply(wave, RATE, first, partner_wave=partner)
        assert torch.equal(out, apply(wave.clone(), RATE, again, partner_wave=partner.clone()))
        assert out.shape == wave.shape
        assert not torch.equal(out, wave)


def test_replay_does_not_depend_on_the_thread_count() -> None:
    wave = noise_wave()
    params = draw_view(clip(), 2, 0, ALL, partners=PARTNERS)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = apply(wave, RATE, params, partner_wave=noise_wave(1))
        torch.set_num_threads(2)
        two = apply(wave, RATE, params, partner_wave=noise_wave(1))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)


def test_parameters_differ_across_views_clips_and_seeds() -> None:
    def drawn(p: ViewParams) -> str:
        data = p.to_json()
        del data["view"], data["clip_id"]
        return json.dumps(data, sort_keys=True)

    views = {drawn(draw_view(clip(), v, 0, ALL, partners=PARTNERS)) for v in range(1, 9)}
    assert len(views) == 8
    clips = {drawn(draw_view(clip(c), 1, 0, ALL, partners=PARTNERS)) for c in "pqrstu"}
    assert len(clips) == 6
    seeds = {drawn(draw_view(clip(), 1, s, ALL, partners=PARTNERS)) for s in range(6)}
    assert len(seeds) == 6


def test_one_augmentation_does_not_change_the_others_draws() -> None:
    alone = draw_view(clip(), 3, 0, ViewSettings(augment=("speed",)))
    together = draw_view(clip(), 3, 0, ViewSettings(augment=("speed", "gain")))
    assert alone.speed == together.speed
    assert together.gain_db != 0


@pytest.mark.parametrize("rate", SPEED_RATES)
def test_speed_changes_the_length_by_the_rate(rate: tuple[int, int]) -> None:
    wave = noise_wave()
    assert change_speed(wave, rate).shape[-1] == math.ceil(wave.shape[-1] * rate[1] / rate[0])


def test_the_speed_grid_is_fast() -> None:
    wave = noise_wave()
    start = time.perf_counter()
    for rate in SPEED_RATES:
        change_speed(wave, rate)
    # a coprime pair (17174 -> 16000 Hz) takes seconds per 2 s clip; the grid, milliseconds
    assert time.perf_counter() - start < 1.0


def test_a_shift_moves_an_impulse_by_the_recorded_amount() -> None:
    settings = ViewSettings(augment=("shift",), max_shift_s=0.3)
    shifts = set()
    for view in range(1, 6):
        params = draw_view(clip(), view, 0, settings)
        out = apply(impulse(RATE), RATE, params)
        assert int(out.argmax()) == RATE + params.shift_samples(RATE)
        assert out.sum() == 1.0  # moved, not wrapped or scaled
        shifts.add(params.shift_s)
    assert len(shifts) > 1 and all(abs(s) <= 0.3 for s in shifts)


def test_a_shift_zero_fills_instead_of_wrapping() -> None:
    params = ViewParams("a", 1, shift_s=0.5)
    out = apply(torch.ones(2 * RATE), RATE, params)
    assert out[: RATE // 2].abs().sum() == 0 and out[RATE // 2 :].eq(1).all()


@pytest.mark.parametrize("view", range(1, 7))
def test_event_mapping_agrees_with_where_an_impulse_lands(view: int) -> None:
    settings = ViewSettings(augment=("speed", "shift"), max_shift_s=0.3)
    params = draw_view(clip(), view, 1, settings)
    at = 0.9
    out = apply(impulse(round(at * RATE)), RATE, params)
    onset, _ = map_event((at, at + 0.1), params, 2.0)
    assert abs(int(out.abs().argmax()) - onset * RATE) <= 1


def test_shifts_keep_the_events_inside_the_clip() -> None:
    events = ((0.05, 0.4), (1.5, 1.95))
    settings = ViewSettings(augment=("speed", "shift"), max_shift_s=0.5)
    for view in range(1, 20):
        params = draw_view(clip(events=events), view, 0, settings)
        mapped = map_events(events, params, 2.0)
        rate = float(params.rate)
        assert mapped == [
            (on / rate + params.shift_s, off / rate + params.shift_s) for on, off in events
        ]
    assert map_event((1.8, 1.9), ViewParams("a", 1, shift_s=0.2), 2.0) is None


def test_parameters_round_trip_through_json() -> None:
    params = ViewParams(
        "clip-1",
        3,
        speed=(21, 20),
        shift_s=-0.042,
        gain_db=-2.5,
        noise=NoiseDraw("/noise/hiss.wav", 1.25, -3.5),
        partner=PartnerDraw("clip-9", -4.0),
    )
    assert ViewParams.from_json(json.loads(json.dumps(params.to_json()))) == params
    for view in range(4):
        drawn = draw_view(clip(), view, 0, ALL, partners=PARTNERS)
        assert ViewParams.from_json(json.loads(json.dumps(drawn.to_json()))) == drawn
    assert ViewSettings.from_json(json.loads(json.dumps(ALL.to_json()))) == ALL


def test_mixing_records_the_other_clip_and_needs_its_audio() -> None:
    params = draw_view(clip("b"), 1, 0, ViewSettings(augment=("mix",)), partners=PARTNERS)
    assert params.partner is not None and params.partner.clip_id in {"c", "d"}
    with pytest.raises(ValueError, match="partner_wave"):
        apply(noise_wave(), RATE, params)
    with pytest.raises(ValueError, match="partner clips"):
        draw_view(clip("b"), 1, 0, ViewSettings(augment=("mix",)), partners=["b"])


def test_unknown_augmentation_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown augmentation.*warp"):
        ViewSettings(augment=("speed", "warp"))


@pytest.fixture(scope="module")
def noisy(tmp_path_factory) -> tuple[list[Clip], Path, Path]:
    root = tmp_path_factory.mktemp("augment")
    fsdd, noise = make_fsdd(root, speakers=("ann",)), make_noise(root / "noise", seconds=3.0)
    out = root / "data"
    manifest = prepare_noisy_digits(
        fsdd, noise, out, 1.0, multi_label=True, speakers={"ann"}, split_by="recording"
    )
    return manifest.clips, out, noise


def test_remix_with_the_recorded_draw_rebuilds_the_clip(noisy) -> None:
    clips, out, _ = noisy
    for item in clips[:5]:
        mix = item.mix
        draw = NoiseDraw(
            mix["noise"], mix["noise_start"], mix["snr_db"], tuple(mix["noise_region"])
        )
        rebuilt = remix(item, draw, RATE, lambda path: cached_audio(path, RATE))
        stored = load_audio(out / item.audio, RATE)
        # 16-bit storage and the SNR recorded to 1e-3 dB
        torch.testing.assert_close(rebuilt, stored, rtol=0, atol=2e-4)


def test_remix_views_draw_noise_from_the_given_regions_only(noisy) -> None:
    clips, out, noise = noisy
    region = NoiseRegion(str(noise / "rumble.wav"), 0.5, 2.0)
    settings = ViewSettings(augment=("remix",), snr_db=(0.0, 3.0))
    item = clips[0]
    for view in range(1, 6):
        params = draw_view(item, view, 0, settings, noise_regions=[region])
        assert params.noise.path == region.path
        assert 0.5 <= params.noise.start_s <= 2.0 - item.mix["length"]
        assert 0.0 <= params.noise.snr_db <= 3.0
        wave = apply(
            load_audio(out / item.audio, RATE),
            RATE,
            params,
            clip=item,
            load_audio=lambda path: cached_audio(path, RATE),
        )
        assert wave.shape[-1] == round(item.duration * RATE)
    with pytest.raises(ValueError, match="noise regions"):
        draw_view(item, 1, 0, settings)
    with pytest.raises(ValueError, match="no noisy-mix record"):
        draw_view(clip(), 1, 0, settings, noise_regions=[region])
